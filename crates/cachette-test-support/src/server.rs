//! [`RedisServer`]: one real `redis-server` process on an ephemeral loopback port.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::{cli_binary, server_binary};
use crate::builder::RedisServerBuilder;
use crate::error::{SpawnError, SpawnErrorKind};
use crate::process::{free_port, read_log, signal, Launch, Process};
use crate::resp::{probe, Probe};
use crate::tls::TlsFiles;
use crate::url::redis_url;

/// How many fresh ports [`RedisServer::spawn`] tries when the port is taken under it.
const PORT_ATTEMPTS: usize = 5;
/// How long [`RedisServer::try_restart`] keeps retrying while its port is still taken.
const RESTART_PORT_WAIT: Duration = Duration::from_secs(5);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// Bound on one [`RedisServer::cli`] call (a stopped server would otherwise hang it).
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// A real `redis-server` process on `127.0.0.1` and an ephemeral port, killed on drop.
///
/// Started with `--port N --bind 127.0.0.1 --save "" --appendonly no --daemonize no` in its own
/// temporary directory, which also holds its log (`redis.log`, with the process's stdout and
/// stderr). Every method takes `&self`, so a server can be shared (`Arc`, `static`) while a chaos
/// test kills, restarts or pauses it.
///
/// Dropping it SIGCONTs the process if stopped, SIGKILLs it and waits for it. A server in a
/// `static` is never dropped; a watchdog kills it when the test process exits (see the crate
/// docs).
pub struct RedisServer {
    // Declared first so the process is gone before the directory is removed.
    process: Mutex<Option<Process>>,
    port: u16,
    /// The TLS port and certificate files of a TLS server ([`RedisServerBuilder::tls`]).
    tls: Option<(u16, TlsFiles)>,
    password: Option<String>,
    ready_timeout: Duration,
    launch: Launch,
    /// A server another process started ([`attach`](Self::attach)): never killed from here.
    attached: bool,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server with no extra arguments and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] whose message includes the server's log, when: no `redis-server` binary
    /// is found ([`SpawnErrorKind::BinaryNotFound`]: install `redis-server`, e.g.
    /// `apt-get install redis-server`, or set `REDIS_SERVER_BIN`); the process exits early
    /// ([`SpawnErrorKind::ExitedEarly`]; or [`SpawnErrorKind::PortInUse`] if five fresh ports were
    /// all taken under it); it does not answer `PING` within 10 s ([`SpawnErrorKind::Timeout`]).
    pub fn spawn() -> Result<Self, SpawnError> {
        Self::builder().spawn()
    }

    /// [`spawn`](Self::spawn), panicking with the error and the server's log: for tests.
    ///
    /// # Panics
    ///
    /// If the server cannot be started.
    #[must_use]
    #[allow(clippy::new_without_default)] // `Default` spawning a process would surprise.
    pub fn new() -> Self {
        match Self::spawn() {
            Ok(server) => server,
            Err(e) => panic!("cachette-test-support: could not start redis-server: {e}"),
        }
    }

    /// A handle on a server that another process started on `127.0.0.1:port` and owns (for
    /// example the shared cluster of [`RedisCluster::shared`](crate::RedisCluster::shared)):
    /// [`cli`](Self::cli), [`url`](Self::url) and [`port`](Self::port) work; it counts as
    /// running, and [`kill`](Self::kill) and the other process controls do nothing to it.
    ///
    /// # Errors
    ///
    /// No `redis-server` binary is found (its `redis-cli` runs the commands), or no temporary
    /// directory can be made.
    pub fn attach(port: u16) -> Result<Self, SpawnError> {
        let bin = server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("cachette-redis-attached-")
            .tempdir()
            .map_err(|e| SpawnError::io("creating a temporary directory", e))?;
        let launch = Launch {
            bin,
            dir: dir.path().to_path_buf(),
            log_path: dir.path().join("redis.log"),
            config_file: None,
            extra_args: Vec::new(),
            tls_args: Vec::new(),
        };
        Ok(Self {
            process: Mutex::new(None),
            port,
            tls: None,
            password: None,
            ready_timeout: Duration::from_secs(10),
            launch,
            attached: true,
            _dir: dir,
        })
    }

    /// A builder for extra arguments, a password, ACL users or config lines.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::new()
    }

    pub(crate) fn from_builder(builder: RedisServerBuilder) -> Result<Self, SpawnError> {
        if let Some(option) = builder.reserved_option() {
            return Err(SpawnError::new(
                SpawnErrorKind::InvalidConfig,
                format!(
                    "{option} is set by cachette-test-support itself (port, bind, daemonize, \
                     dir and logfile cannot be overridden)"
                ),
            ));
        }
        let bin = server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("cachette-redis-")
            .tempdir()
            .map_err(|e| SpawnError::io("creating a temporary directory", e))?;
        let password = builder.effective_password();
        let config_file = if builder.config_lines.is_empty() {
            None
        } else {
            let path = dir.path().join("redis.conf");
            let mut text = builder.config_lines.join("\n");
            text.push('\n');
            std::fs::write(&path, text)
                .map_err(|e| SpawnError::io(format!("writing {}", path.display()), e))?;
            Some(path)
        };
        let mut extra_args = builder.args;
        if let Some(pw) = &builder.password {
            extra_args.push("--requirepass".into());
            extra_args.push(pw.into());
        }
        let tls_files = match &builder.tls {
            Some(settings) => Some((TlsFiles::for_server(dir.path(), settings)?, settings)),
            None => None,
        };
        let launch = Launch {
            bin,
            dir: dir.path().to_path_buf(),
            log_path: dir.path().join("redis.log"),
            config_file,
            extra_args,
            tls_args: tls_files
                .as_ref()
                .map(|(files, settings)| files.server_args(settings))
                .unwrap_or_default(),
        };

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let tls_port = match &tls_files {
                Some(_) => Some(free_port_besides(port)?),
                None => None,
            };
            match start(&launch, port, tls_port, builder.ready_timeout) {
                Ok(process) => {
                    return Ok(Self {
                        process: Mutex::new(Some(process)),
                        port,
                        tls: tls_port.zip(tls_files.map(|(files, _)| files)),
                        password,
                        ready_timeout: builder.ready_timeout,
                        launch,
                        attached: false,
                        _dir: dir,
                    })
                }
                Err(e) if e.kind() == SpawnErrorKind::PortInUse => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            SpawnError::new(SpawnErrorKind::PortInUse, "every port attempt failed")
        }))
    }

    /// The TCP port (below 55535); it stays the same across [`restart`](Self::restart). On a
    /// TLS server ([`RedisServerBuilder::tls`]) this is the plain control port, and
    /// [`tls_port`](Self::tls_port) the one clients use.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port of a server built with [`RedisServerBuilder::tls`], else `None`; it stays
    /// the same across [`restart`](Self::restart).
    #[must_use]
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(port, _)| *port)
    }

    /// The certificate files of a server built with [`RedisServerBuilder::tls`], else `None`.
    #[must_use]
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref().map(|(_, files)| files)
    }

    /// `redis://127.0.0.1:PORT/` (with the password) on the plain port, also for a TLS server.
    #[must_use]
    pub fn plain_url(&self) -> String {
        redis_url(self.port, None, self.password.as_deref(), None)
    }

    /// The URL of the TLS port with `host` in place of `127.0.0.1` (e.g. `localhost`, to
    /// check the certificate against a name), or `None` on a plain server.
    #[must_use]
    pub fn tls_url_for_host(&self, host: &str) -> Option<String> {
        let port = self.tls_port()?;
        let url = redis_url(port, None, self.password.as_deref(), None);
        let url = url.replacen("redis://", "rediss://", 1);
        Some(url.replacen("127.0.0.1", host, 1))
    }

    /// Always `"127.0.0.1"`.
    #[must_use]
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `redis://127.0.0.1:PORT/`, or `redis://:PASSWORD@127.0.0.1:PORT/` with a password
    /// (percent-encoded); `rediss://127.0.0.1:TLS_PORT/` on a TLS server.
    #[must_use]
    pub fn url(&self) -> String {
        match self.tls_url_for_host("127.0.0.1") {
            Some(url) => url,
            None => self.plain_url(),
        }
    }

    /// [`url`](Self::url) selecting database `db`: `redis://127.0.0.1:PORT/DB`.
    #[must_use]
    pub fn url_with_db(&self, db: i64) -> String {
        redis_url(self.port, None, self.password.as_deref(), Some(db))
    }

    /// `redis://USER:PASSWORD@127.0.0.1:PORT/` for an ACL user (see
    /// [`RedisServerBuilder::acl_user`]), percent-encoded.
    #[must_use]
    pub fn url_for_user(&self, user: &str, password: &str) -> String {
        redis_url(self.port, Some(user), Some(password), None)
    }

    /// The `default` user's password, if one was set (builder `password`, `--requirepass` or a
    /// `requirepass` config line).
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's temporary working directory (removed on drop).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.launch.dir
    }

    /// The current process id, or `None` after [`kill`](Self::kill).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Process::pid)
    }

    /// The log: `redis.log`, into which the process's stdout and stderr also go. It accumulates
    /// across [`restart`](Self::restart)s.
    #[must_use]
    pub fn log(&self) -> String {
        read_log(&self.launch.log_path)
    }

    /// Whether the process exists: started and neither killed nor exited. A stopped
    /// ([`stop_process`](Self::stop_process)) server is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.attached || self.lock().as_mut().is_some_and(|p| !p.has_exited())
    }

    /// Whether the process is stopped by [`stop_process`](Self::stop_process).
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.lock().as_ref().is_some_and(Process::is_stopped)
    }

    /// SIGKILLs the server and waits for it: connections drop, the port is closed and the data
    /// is gone. A no-op if already killed.
    pub fn kill(&self) {
        drop(self.lock().take());
    }

    /// [`kill`](Self::kill)s the server if it is running, then starts it again on the same port
    /// with the same arguments, and waits until it answers `PING`. Data is not kept.
    ///
    /// # Panics
    ///
    /// With the error and the log, if [`try_restart`](Self::try_restart) fails.
    pub fn restart(&self) {
        if let Err(e) = self.try_restart() {
            panic!(
                "cachette-test-support: could not restart redis-server on port {}: {e}",
                self.port
            );
        }
    }

    /// [`restart`](Self::restart), returning the error instead of panicking. While the port is
    /// still taken (e.g. by a lingering socket) it retries for up to 5 s.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn), except that the port never changes.
    pub fn try_restart(&self) -> Result<(), SpawnError> {
        let mut guard = self.lock();
        drop(guard.take());
        let deadline = Instant::now() + RESTART_PORT_WAIT;
        loop {
            match start(&self.launch, self.port, self.tls_port(), self.ready_timeout) {
                Ok(process) => {
                    *guard = Some(process);
                    return Ok(());
                }
                Err(e) if e.kind() == SpawnErrorKind::PortInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGSTOPs the server: it keeps its port and connections but answers nothing until
    /// [`continue_process`](Self::continue_process), so clients time out.
    ///
    /// # Panics
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn stop_process(&self) {
        self.with_running("stop_process", |p| p.stop());
    }

    /// SIGCONTs a server stopped by [`stop_process`](Self::stop_process).
    ///
    /// # Panics
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn continue_process(&self) {
        self.with_running("continue_process", |p| p.resume());
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` and returns its stdout without the trailing
    /// newline; authenticates with [`password`](Self::password) if set (via `REDISCLI_AUTH`).
    ///
    /// Output is `redis-cli`'s non-terminal ("raw") format: `OK`, a bare value, an empty string
    /// for nil, `ERR ...` for an error reply (which does not panic).
    ///
    /// ```no_run
    /// # let server = cachette_test_support::RedisServer::new();
    /// server.cli(["SET", "app:k", "not json"]);
    /// assert_eq!(server.cli(["GET", "app:k"]), "not json");
    /// ```
    ///
    /// # Panics
    ///
    /// If `redis-cli` cannot be run, exits unsuccessfully (e.g. the server is down) or takes
    /// more than 10 s (e.g. the server is stopped). Use [`cli_output`](Self::cli_output) to
    /// handle those.
    pub fn cli<I>(&self, args: I) -> String
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        match self.cli_output(args) {
            Ok(out) if out.status.success() => {
                let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                if stdout.ends_with('\n') {
                    stdout.pop();
                }
                stdout
            }
            Ok(out) => panic!(
                "cachette-test-support: redis-cli on port {} failed ({}): {}{}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!(
                "cachette-test-support: could not run redis-cli on port {}: {e}",
                self.port
            ),
        }
    }

    /// `total_connections_received` from `INFO stats`: the connections the server accepted
    /// since it started, the `redis-cli` connection of this query included (and, on a TLS
    /// server, only TLS clients whose handshake succeeded).
    ///
    /// # Panics
    ///
    /// As [`cli`](Self::cli), or if the reply has no such field.
    #[must_use]
    pub fn connections_received(&self) -> u64 {
        let info = self.cli(["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.trim().strip_prefix("total_connections_received:"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!("cachette-test-support: no total_connections_received in INFO: {info}")
            })
    }

    /// Runs `redis-cli` like [`cli`](Self::cli) and returns its whole output, whatever its exit
    /// status.
    ///
    /// # Errors
    ///
    /// If `redis-cli` cannot be started (`REDIS_CLI_BIN`, a `redis-cli` next to the server
    /// binary, or one on `PATH`), or does not finish within 10 s (it is then killed).
    pub fn cli_output<I>(&self, args: I) -> io::Result<Output>
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        let bin = cli_binary(&self.launch.bin);
        let mut command = Command::new(&bin);
        command
            .args(["-h", self.host(), "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.password {
            Some(pw) => command.env("REDISCLI_AUTH", pw),
            None => command.env_remove("REDISCLI_AUTH"),
        };
        let child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(CLI_TIMEOUT) {
            Ok(result) => result,
            Err(_) => {
                let _ = signal(pid, "KILL");
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-cli did not finish within {CLI_TIMEOUT:?}"),
                ))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Process>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_running(&self, what: &str, f: impl FnOnce(&mut Process) -> io::Result<()>) {
        let mut guard = self.lock();
        let Some(process) = guard.as_mut() else {
            panic!(
                "cachette-test-support: {what} on port {}: the server was killed",
                self.port
            );
        };
        if process.has_exited() {
            panic!(
                "cachette-test-support: {what} on port {}: the server has exited",
                self.port
            );
        }
        if let Err(e) = f(process) {
            panic!("cachette-test-support: {what} on port {}: {e}", self.port);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGCONT if stopped, SIGKILL, wait (see `Process`'s `Drop`); then the directory goes.
        self.kill();
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dir", &self.launch.dir)
            .finish_non_exhaustive()
    }
}

/// A free port other than `taken` (the kernel may hand the same one out twice, since
/// [`free_port`] does not hold it).
fn free_port_besides(taken: u16) -> Result<u16, SpawnError> {
    for _ in 0..8 {
        let port = free_port()?;
        if port != taken {
            return Ok(port);
        }
    }
    Err(SpawnError::new(
        SpawnErrorKind::NoFreePort,
        "no second free loopback port for TLS",
    ))
}

/// Starts a process on `port` and waits until it answers `PING`.
///
/// [`SpawnErrorKind::PortInUse`] when the process failed to bind, or when another server answers
/// on the port (its `process_id` is not ours).
fn start(
    launch: &Launch,
    port: u16,
    tls_port: Option<u16>,
    ready_timeout: Duration,
) -> Result<Process, SpawnError> {
    let log_start = read_log(&launch.log_path).len();
    let mut process = Process::start(launch, port, tls_port).map_err(|e| {
        SpawnError::io(
            format!("starting {} on port {port}", launch.bin.display()),
            e,
        )
    })?;
    let deadline = Instant::now() + ready_timeout;
    loop {
        if process.has_exited() {
            drop(process);
            let log = read_log(&launch.log_path);
            let new_lines = log.get(log_start..).unwrap_or(&log);
            let (kind, message) = if new_lines.contains("Address already in use") {
                (
                    SpawnErrorKind::PortInUse,
                    format!("redis-server could not bind 127.0.0.1:{port}: address already in use"),
                )
            } else {
                (
                    SpawnErrorKind::ExitedEarly,
                    format!("redis-server on port {port} exited before answering PING"),
                )
            };
            return Err(SpawnError::new(kind, message).with_log(log));
        }
        match probe(port) {
            Probe::Pong { pid: Some(pid) } if pid != process.pid() => {
                drop(process);
                return Err(SpawnError::new(
                    SpawnErrorKind::PortInUse,
                    format!("another redis-server (pid {pid}) answers on port {port}"),
                )
                .with_log(read_log(&launch.log_path)));
            }
            answer if answer.is_ready() => return Ok(process),
            _ => {}
        }
        if Instant::now() >= deadline {
            let pid = process.pid();
            drop(process);
            return Err(SpawnError::new(
                SpawnErrorKind::Timeout,
                format!(
                    "redis-server (pid {pid}) on port {port} did not answer PING within \
                     {ready_timeout:?}"
                ),
            )
            .with_log(read_log(&launch.log_path)));
        }
        thread::sleep(PROBE_INTERVAL);
    }
}
