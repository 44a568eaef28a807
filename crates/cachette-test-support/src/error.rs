//! The error returned when a server cannot be started.

use std::error::Error;
use std::fmt;
use std::io;

/// What went wrong while starting a `redis-server`; see [`SpawnError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// No `redis-server` binary was found (`REDIS_SERVER_BIN` or `PATH`).
    BinaryNotFound,
    /// No free loopback port below 55535 was found.
    NoFreePort,
    /// The port was taken by someone else, on every attempt.
    PortInUse,
    /// The process exited before answering `PING` (bad arguments, for example).
    ExitedEarly,
    /// The process did not answer `PING` within the readiness timeout.
    Timeout,
    /// The builder was given an option this crate owns (`--port`, `--bind`, `--daemonize`,
    /// `--dir`, `--logfile`).
    InvalidConfig,
    /// An I/O error while preparing or starting the process.
    Io,
}

/// Why a `redis-server` could not be started.
///
/// `Display` and `Debug` both print the message followed by the server's log, so
/// `spawn().unwrap()` in a test shows what the server said.
pub struct SpawnError {
    kind: SpawnErrorKind,
    message: String,
    log: String,
    source: Option<io::Error>,
}

impl SpawnError {
    pub(crate) fn new(kind: SpawnErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            log: String::new(),
            source: None,
        }
    }

    pub(crate) fn io(message: impl Into<String>, source: io::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(SpawnErrorKind::Io, message)
        }
    }

    pub(crate) fn with_log(mut self, log: String) -> Self {
        self.log = log;
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> SpawnErrorKind {
        self.kind
    }

    /// The server's log (its log file, stdout and stderr) at the time of the failure; empty if
    /// the process never started.
    #[must_use]
    pub fn log(&self) -> &str {
        &self.log
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if !self.log.trim().is_empty() {
            write!(
                f,
                "\n--- redis-server log ---\n{}\n--- end of log ---",
                self.log.trim_end()
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpawnError {
    // The Display form, so `unwrap()`/`expect()` print the log readably rather than as one
    // escaped string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpawnError({:?}): {self}", self.kind)
    }
}

impl Error for SpawnError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn Error + 'static))
    }
}
