//! The error type of every fallible cachette operation.

use std::fmt;
use std::time::Duration;

/// A specialised `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that branch on the cause.
///
/// Prefer the predicates on [`Error`] ([`Error::is_timeout`], [`Error::is_connection`],
/// [`Error::is_decode`], ...) when you only need a yes/no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend could not be reached, or the connection dropped.
    Connection,
    /// The backend did not answer within the configured timeout.
    Timeout,
    /// The backend answered with an error (wrong type, auth, OOM, ...).
    Backend,
    /// A stored value could not be decoded into the requested type.
    Decode,
    /// A value could not be encoded before storing it.
    Encode,
    /// The configuration is invalid (names the source and field).
    Config,
    /// An argument given by the caller is invalid (an empty key, a zero TTL, ...).
    InvalidInput,
    /// The cache is disabled (`enabled: false`) and the operation needs it.
    Disabled,
    /// A circuit breaker is open and the backend is not being called.
    CircuitOpen,
    /// The user's loader failed, panicked or was cancelled while other callers waited on it.
    Loader,
    /// The server refused the credentials (wrong username or password, a disabled ACL user).
    /// Never retried within a call; counts toward the circuit breaker, which then stops the
    /// attempts.
    Auth,
    /// The server's ACL refused a command, key or channel to this user (`NOPERM`); the
    /// message names the command. The connection is fine and the breaker does not count it.
    /// [`crate::acl::rules`] gives the rules each cachette feature needs.
    Permission,
    /// The TLS handshake with the server failed: its certificate is not signed by a trusted
    /// CA, is for another host name or has expired, or the server refused the client
    /// certificate (or its absence). The message says which check failed. Counted by the
    /// circuit breaker like a connection error, but never retried at once: a certificate
    /// does not fix itself between two attempts.
    Tls,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Backend => "backend error",
            ErrorKind::Decode => "decode error",
            ErrorKind::Encode => "encode error",
            ErrorKind::Config => "configuration error",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Disabled => "cache disabled",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::Loader => "loader error",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::Permission => "permission denied",
            ErrorKind::Tls => "TLS error",
        })
    }
}

/// The error of every fallible cachette operation.
///
/// It is opaque on purpose: inspect it with [`Error::kind`] and the predicates, print it with
/// `Display` (one line, naming the key or config field involved), and reach the underlying error
/// through [`std::error::Error::source`]. No variant ever carries a password or a URL with
/// credentials.
pub struct Error {
    kind: ErrorKind,
    message: String,
    key: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            key: None,
            source: None,
        }
    }

    /// Attaches the (unprefixed or prefixed) key the failed operation was about.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The key the failed operation was about, when there was one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The backend did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// The backend could not be reached or the connection dropped.
    pub fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// A stored value could not be decoded.
    pub fn is_decode(&self) -> bool {
        self.kind == ErrorKind::Decode
    }

    /// The configuration is invalid.
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// The TLS handshake failed (see [`ErrorKind::Tls`]).
    pub fn is_tls(&self) -> bool {
        self.kind == ErrorKind::Tls
    }

    /// A failure of the cache itself (backend unreachable, slow, failing or circuit open), as
    /// opposed to bad data or bad input. Fail-open logic treats these as "run uncached".
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::Backend
                | ErrorKind::CircuitOpen
                | ErrorKind::Auth
                | ErrorKind::Permission
                | ErrorKind::Tls
        )
    }

    /// This error with `prefix` put before its message.
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.message.insert_str(0, prefix);
        self
    }

    pub(crate) fn timeout(what: &str, after: Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            format!("{what} timed out after {} ms", after.as_millis()),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn config(source: &str, field: &str, message: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::Config,
            format!("invalid {field} from {source}: {message}"),
        )
    }

    /// The same kind and message, without the source (for errors kept to be returned later).
    pub(crate) fn without_source(&self) -> Self {
        Error::new(self.kind, self.message.clone())
    }

    pub(crate) fn decode(
        key: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::new(
            ErrorKind::Decode,
            format!("cannot decode cached value: {source}"),
        )
        .with_key(key)
        .with_source(source)
    }

    pub(crate) fn encode(
        key: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::new(ErrorKind::Encode, format!("cannot encode value: {source}"))
            .with_key(key)
            .with_source(source)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cachette {}: {}", self.kind, self.message)?;
        if let Some(key) = &self.key {
            write!(f, " (key {key:?})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written so that a source error that embeds a connection URL cannot leak it
        // through `{:?}`: only the message (which we build ourselves) is shown.
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("key", &self.key)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Removes `user:password@` from anything that looks like a URL: everything from a `://` to
/// the last `@` before the next `://` becomes `***` (a password may hold any character, so no
/// character is trusted to end it; this over-redacts rather than under-redacts).
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail.find("://").unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// So that functions returning `std::io::Result<T>` can use `?` on cachette calls and take
/// `#[cached(hard_timeout = ..., fallback_on_error = false)]`: the kind maps to the closest
/// [`std::io::ErrorKind`] and the cachette error stays available as the source.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Timeout => std::io::ErrorKind::TimedOut,
            ErrorKind::Connection | ErrorKind::CircuitOpen | ErrorKind::Tls => {
                std::io::ErrorKind::NotConnected
            }
            ErrorKind::Decode | ErrorKind::Encode => std::io::ErrorKind::InvalidData,
            ErrorKind::InvalidInput | ErrorKind::Config => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_credentials() {
        assert_eq!(
            redact("failed to reach redis://user:hunter2@127.0.0.1:6379/0 now"),
            "failed to reach redis://***@127.0.0.1:6379/0 now"
        );
        assert_eq!(redact("redis://127.0.0.1:1"), "redis://127.0.0.1:1");
        assert_eq!(redact("no url"), "no url");
    }

    #[test]
    fn display_names_the_key() {
        let e = Error::new(ErrorKind::Decode, "bad").with_key("user:1");
        assert_eq!(e.to_string(), "cachette decode error: bad (key \"user:1\")");
        assert!(e.is_decode());
        assert!(!e.is_backend_failure());
    }

    #[test]
    fn converts_to_io_error_keeping_the_source() {
        let io: std::io::Error =
            Error::timeout("redis command", std::time::Duration::from_millis(5)).into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        let inner = io
            .get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .unwrap();
        assert_eq!(inner.kind(), ErrorKind::Timeout);
        let io: std::io::Error = Error::new(ErrorKind::Decode, "bad").into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
    }
}
