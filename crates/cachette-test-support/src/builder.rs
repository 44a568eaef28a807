//! [`RedisServerBuilder`]: extra arguments, password, ACL users, config lines.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use crate::error::SpawnError;
use crate::server::RedisServer;
use crate::tls::{TlsFiles, TlsSettings};

/// Default bound on the wait for the first `PING` answer.
pub(crate) const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Options the crate sets itself and that callers may not override.
pub(crate) const RESERVED: [&str; 6] = ["port", "bind", "daemonize", "dir", "logfile", "tls-port"];

/// Builds a [`RedisServer`] with extra `redis-server` arguments; from [`RedisServer::builder`].
///
/// ```no_run
/// use cachette_test_support::RedisServer;
///
/// let server = RedisServer::builder()
///     .password("pw")
///     .acl_user("alice", ["on", ">alice-pw", "~app:*", "+@all"])
///     .config_line("notify-keyspace-events KEA")
///     .spawn()?;
/// assert_eq!(server.url_for_user("alice", "alice-pw"),
///            format!("redis://alice:alice-pw@127.0.0.1:{}/", server.port()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Clone)]
pub struct RedisServerBuilder {
    pub(crate) args: Vec<OsString>,
    pub(crate) config_lines: Vec<String>,
    pub(crate) password: Option<String>,
    pub(crate) ready_timeout: Duration,
    pub(crate) tls: Option<TlsSettings>,
}

impl Default for RedisServerBuilder {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            config_lines: Vec::new(),
            password: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            tls: None,
        }
    }
}

impl RedisServerBuilder {
    /// A builder with no extra arguments (same as [`RedisServer::builder`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one raw `redis-server` argument, e.g. `.arg("--maxmemory").arg("1mb")`.
    ///
    /// Extra arguments come after the defaults `--save "" --appendonly no` (so they may override
    /// them) and before `--port`, `--bind 127.0.0.1`, `--daemonize no`, `--dir` and `--logfile`,
    /// which this crate owns: passing any of those fails [`spawn`](Self::spawn) with
    /// [`SpawnErrorKind::InvalidConfig`](crate::SpawnErrorKind::InvalidConfig).
    ///
    /// A `--requirepass <pw>` given here is picked up like [`password`](Self::password).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several raw `redis-server` arguments; see [`arg`](Self::arg).
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets `requirepass` (the `default` user's password). [`RedisServer::url`] then carries it
    /// (`redis://:pw@127.0.0.1:PORT/`) and [`RedisServer::cli`] authenticates with it.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds an ACL user: `--user <name> <rules...>`, e.g.
    /// `.acl_user("alice", ["on", ">secret", "~*", "&*", "+@all"])`.
    ///
    /// Connect as it with [`RedisServer::url_for_user`].
    pub fn acl_user<I>(mut self, name: &str, rules: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.args.push("--user".into());
        self.args.push(name.into());
        self.args
            .extend(rules.into_iter().map(|r| OsString::from(r.as_ref())));
        self
    }

    /// Adds a line to a `redis.conf` written in the server's directory and passed as the first
    /// argument, e.g. `.config_line("notify-keyspace-events KEA")`. Command-line arguments
    /// override it.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.config_lines.push(line.into());
        self
    }

    /// Serves TLS too, with certificates generated for this server (see
    /// [`TlsFiles`](crate::TlsFiles)): a CA, a server certificate for `localhost` and
    /// `127.0.0.1` signed by it, a client certificate signed by it, and an unrelated CA.
    /// [`RedisServer::url`] is then `rediss://127.0.0.1:TLS_PORT/`; [`RedisServer::port`]
    /// stays a plain loopback control port (readiness, [`RedisServer::cli`], `INFO`). Client
    /// certificates are optional (checked when presented) unless
    /// [`tls_auth_clients`](Self::tls_auth_clients).
    ///
    /// ```no_run
    /// use cachette_test_support::RedisServer;
    ///
    /// let server = RedisServer::builder().tls().spawn()?;
    /// assert!(server.url().starts_with("rediss://127.0.0.1:"));
    /// let files = server.tls_files().expect("a TLS server");
    /// assert!(files.ca_file.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls(mut self) -> Self {
        self.tls.get_or_insert_with(TlsSettings::default);
        self
    }

    /// [`tls`](Self::tls), with the server certificate issued for `names` (DNS names or IP
    /// addresses) instead of `localhost` and `127.0.0.1`.
    pub fn tls_server_names<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tls
            .get_or_insert_with(TlsSettings::default)
            .server_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// [`tls`](Self::tls), with a server certificate that expired (valid during 2000 only).
    pub fn tls_expired_certificate(mut self) -> Self {
        self.tls.get_or_insert_with(TlsSettings::default).expired = true;
        self
    }

    /// [`tls`](Self::tls), with `--tls-auth-clients yes` when `required` (a client without a
    /// certificate signed by the CA is refused) instead of `optional`.
    pub fn tls_auth_clients(mut self, required: bool) -> Self {
        self.tls
            .get_or_insert_with(TlsSettings::default)
            .auth_clients = required;
        self
    }

    /// [`tls`](Self::tls), serving `files` (made for another server) instead of a set of its
    /// own: the nodes of a TLS cluster share one CA.
    pub(crate) fn tls_shared_files(mut self, files: TlsFiles) -> Self {
        self.tls.get_or_insert_with(TlsSettings::default).shared = Some(files);
        self
    }

    /// How long [`spawn`](Self::spawn) and [`RedisServer::try_restart`] wait for the first
    /// `PING` answer (default 10 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// See [`RedisServer::spawn`].
    pub fn spawn(self) -> Result<RedisServer, SpawnError> {
        RedisServer::from_builder(self)
    }

    /// The password to put in URLs and give `redis-cli`: [`password`](Self::password), else the
    /// last `--requirepass` argument, else the last `requirepass` config line.
    pub(crate) fn effective_password(&self) -> Option<String> {
        if self.password.is_some() {
            return self.password.clone();
        }
        let from_args = self
            .args
            .windows(2)
            .filter(|w| w[0].eq_ignore_ascii_case("--requirepass"))
            .filter_map(|w| w[1].to_str().map(str::to_owned))
            .next_back();
        from_args.or_else(|| {
            self.config_lines
                .iter()
                .filter_map(|line| {
                    let mut words = line.split_whitespace();
                    let directive = words.next()?;
                    directive
                        .eq_ignore_ascii_case("requirepass")
                        .then(|| words.next().map(|pw| pw.trim_matches('"').to_owned()))
                        .flatten()
                })
                .next_back()
        })
    }

    /// The first reserved option found in the arguments or config lines, if any.
    pub(crate) fn reserved_option(&self) -> Option<String> {
        let is_reserved = |name: &str| RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name));
        let in_args = self.args.iter().find_map(|arg| {
            let name = arg.to_str()?.strip_prefix("--")?;
            is_reserved(name).then(|| format!("--{name}"))
        });
        in_args.or_else(|| {
            self.config_lines.iter().find_map(|line| {
                let name = line.split_whitespace().next()?;
                is_reserved(name).then(|| format!("config line `{line}`"))
            })
        })
    }
}

impl fmt::Debug for RedisServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Arguments and config lines can hold passwords.
        f.debug_struct("RedisServerBuilder")
            .field("args", &format_args!("[{} redacted]", self.args.len()))
            .field(
                "config_lines",
                &format_args!("[{} redacted]", self.config_lines.len()),
            )
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ready_timeout", &self.ready_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}
