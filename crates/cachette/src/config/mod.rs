//! Configuration: built-in defaults < `config.json` `"redis"` section < environment < code.
//!
//! [`Config::load`] reads `./config.json` (or the file named by `CACHETTE_CONFIG`) and the
//! environment; the builder methods of [`crate::CacheManagerBuilder`] apply on top. When neither
//! a URL, a host nor a port is named anywhere, the manager runs on the embedded memory backend.
//!
//! | field | `config.json` `"redis"` key | environment | default |
//! |---|---|---|---|
//! | enabled | `enabled` | `REDIS_ENABLED` | `true` |
//! | url (decomposed into the parts below) | `url` | `REDIS_URL` | none |
//! | host | `host` (or the URL's) | `REDIS_HOST` (or the URL's) | none (`localhost` if only a port is named) |
//! | port | `port` (or the URL's) | `REDIS_PORT` (or the URL's) | `6379` |
//! | tls | the URL's scheme (`rediss://`) | the URL's scheme | `false` |
//! | TLS: CA file to trust (PEM) | `tls_ca_file` | `REDIS_TLS_CA_FILE` | none (the bundled public roots) |
//! | TLS: client certificate (PEM, mutual TLS) | `tls_cert_file` | `REDIS_TLS_CERT_FILE` | none |
//! | TLS: client key (PEM) | `tls_key_file` | `REDIS_TLS_KEY_FILE` | none |
//! | TLS: **skip certificate verification (development only)** | `tls_insecure` | `REDIS_TLS_INSECURE` | `false` |
//! | socket | the URL's path (`redis+unix://`) | the URL's path | none |
//! | db | `db` (or the URL's path) | `REDIS_DB` (or the URL's path) | `0` |
//! | username (ACL) | `username` (or the URL's) | `REDIS_USERNAME` (or the URL's) | none |
//! | password | `password` (or the URL's) | `REDIS_PASSWORD` (or the URL's) | none |
//! | max_connections | `max_connections` | `REDIS_MAX_CONNECTIONS` | `50` |
//! | default_ttl (s, at most 3153600000 = 100 years; `0`/`null` = no expiry) | `default_ttl` | `REDIS_DEFAULT_TTL` | `3600` |
//! | key_prefix (never empty here) | `key_prefix` | `REDIS_KEY_PREFIX` | `"cache:"` |
//! | connect timeout (ms) | `connect_timeout_ms` | `REDIS_CONNECT_TIMEOUT_MS` | `1000` |
//! | command timeout (ms) | `command_timeout_ms` | `REDIS_COMMAND_TIMEOUT_MS` | `500` |
//! | codec | `codec` | `CACHETTE_CODEC` | `"json"` |
//! | memory backend entry bound | `memory_max_entries` | `CACHETTE_MEMORY_MAX_ENTRIES` | `100000` |
//! | memory backend byte bound (keys + values + 128 per entry; `null` = none) | `memory_max_bytes` | `CACHETTE_MEMORY_MAX_BYTES` | `268435456` (256 MiB) |
//! | circuit breaker: consecutive failures that open it (`0` = off) | `breaker_failures` | `CACHETTE_BREAKER_FAILURES` | `5` |
//! | circuit breaker: open time before a probe (ms) | `breaker_open_ms` | `CACHETTE_BREAKER_OPEN_MS` | `1000` |
//! | largest value a write may store (bytes) | `max_value_bytes` | `CACHETTE_MAX_VALUE_BYTES` | `33554432` (32 MiB) |
//! | Redis Cluster seed nodes (`host:port`; a list, or one comma-separated string) | `cluster_nodes` | `REDIS_CLUSTER_NODES` (comma-separated) | none |
//! | near cache on/off (`true`, `false`, or an object of bounds) | `near_cache` | `CACHETTE_NEAR_CACHE` | off |
//! | near cache: entries / bytes / cap on an entry's life (s) / staleness bound (ms) | `near_cache.max_entries` / `max_bytes` / `max_ttl` / `max_staleness_ms` | `CACHETTE_NEAR_CACHE_MAX_ENTRIES` / `_MAX_BYTES` / `_MAX_TTL` / `_MAX_STALENESS_MS` | `10000` / `67108864` (64 MiB) / none / `1000` |
//! | Redis Sentinel: the sentinels (`host:port`; a list, or one comma-separated string) | `sentinels` | `REDIS_SENTINELS` (comma-separated) | none |
//! | Redis Sentinel: the master name the sentinels monitor | `sentinel_master` | `REDIS_SENTINEL_MASTER` | none |
//! | Redis Sentinel: ACL user name on the sentinels | `sentinel_username` | `REDIS_SENTINEL_USERNAME` | none |
//! | Redis Sentinel: password of the sentinels (`requirepass` of sentinel.conf) | `sentinel_password` | `REDIS_SENTINEL_PASSWORD` | none |
//!
//! **Redis Cluster.** When `cluster_nodes` names at least one seed, the manager runs on the
//! cluster backend ([`crate::backend::cluster`]); the seeds take the place of `url`/`host`/
//! `port`, which then only lend their user name, password and TLS setting (`db` must be 0).
//!
//! **Redis Sentinel.** When `sentinels` and `sentinel_master` are set (both, or neither: one
//! without the other is an error naming the missing field, and so is Sentinel together with
//! `cluster_nodes` or a Unix socket), the manager asks the sentinels for the primary's address
//! and follows its failovers ([`crate::backend::redis`]'s `sentinel` module). Only the host
//! and port come from the sentinels: `db`, `username`, `password` and TLS still come from
//! `url` or the parts (the URL's host and port are not used). The sentinels themselves are
//! reached over plain TCP with `sentinel_username`/`sentinel_password`.
//!
//! **TLS.** The `tls_*` settings apply to `rediss://` connections (crate feature `tls`),
//! standalone and cluster, and are an error with a `redis://` server. The server's
//! certificate is checked against the host name of the URL (or node) and the CA
//! (`tls_ca_file`, else the bundled public roots); the files are read when the manager is
//! built, and one that cannot be read or parsed is an error naming the setting and the path
//! (never the contents). `tls_insecure` turns verification off and is logged at `warn`.
//! See [`TlsOptions`].
//!
//! **Resolution, part by part.** Each layer (file, then environment, then code) changes only
//! the fields it names. A URL ([`RedisEndpoint`] lists the accepted forms) is parsed where
//! it enters and decomposed into host, port, tls, socket, db, username and password, replacing
//! all of them; in the same layer, a part named separately (`REDIS_DB` beside `REDIS_URL`,
//! `"db"` beside `"url"`) overrides the URL's part. So with a URL in `config.json`,
//! `REDIS_DB`, `REDIS_PASSWORD`, `REDIS_USERNAME`, `REDIS_HOST` and `REDIS_PORT` each replace
//! just that part and keep the rest, and the loaded [`Config`] reports what is used (its
//! `url` is `None`). A host or port replaces a Unix socket. In code, a [`Config::url`] set
//! directly wins over every part; `CacheManagerBuilder::url` decomposes like the file does.
//!
//! **Empty and invalid values.** An empty (or blank) environment variable is unset, all of
//! them (`REDIS_PASSWORD` counts only `""` as empty: a password of spaces is kept). An empty
//! `key_prefix` in the file is an error: an empty prefix shares the database with every other
//! client, so it is only chosen in code (`CacheManagerBuilder::key_prefix("")`), and then
//! `clear` refuses (see `CacheManager::delete_pattern_forced`). Every invalid value is an
//! [`ErrorKind::Config`](crate::ErrorKind::Config) error at load time naming its source (the
//! variable, or the file's path) and field: a URL that does not parse (naming the part:
//! scheme, host, port, database, ..., without echoing the URL), a host with a space, a file
//! whose top level is not an object, an unknown key in the `"redis"` section (with the closest
//! known key: `did you mean "host"?`). Other top-level keys of the file are left to the
//! application, and a UTF-8 byte order mark is skipped. Credentials (user name and password)
//! never appear in `Debug` output, descriptions or errors.

mod cluster;
mod near;
mod sentinel;
mod sources;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::backend::redis::endpoint::RedisEndpoint;
use crate::backend::redis::endpoint::{self, check_host, Transport};
pub use crate::backend::redis::tls::TlsOptions;
use crate::codec::Codec;
use crate::error::{Error, Result};
pub use crate::secret::Secret;

/// Default number of seconds a value lives.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "cache:";

/// Everything a [`crate::CacheManager`] is built from.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `false` turns caching off: decorated functions run their bodies uncached, and the
    /// manager's operations succeed without effect (reads miss, writes store nothing, `clear`
    /// deletes nothing); only [`CacheManager::ping`](crate::CacheManager::ping) reports it
    /// (`false`, through an [`ErrorKind::Disabled`](crate::ErrorKind::Disabled) error of the
    /// backend's `ping`).
    pub enabled: bool,
    /// A connection URL set in code (`redis://`, `rediss://`, `redis+unix://`; see
    /// [`RedisEndpoint`]): when set it wins over every part below. [`Config::load`] never
    /// leaves one here: a URL from the file or the environment is decomposed into the parts
    /// (`host`, `port`, `db`, `username`, `password`, `tls`, `socket`), so that they report
    /// what is used. Never printed (`Debug` shows it without credentials).
    pub url: Option<String>,
    /// Redis host (`localhost` when only a port is named).
    pub host: Option<String>,
    /// Redis port (`6379` when `None`).
    pub port: Option<u16>,
    /// Whether the TCP connection uses TLS (`rediss://`; crate feature `tls`).
    pub tls: bool,
    /// CA file, client certificate and key, and the development-only opt-out of verification
    /// of a TLS connection (`tls_ca_file`, `tls_cert_file`, `tls_key_file`, `tls_insecure`).
    /// Not changed by a URL.
    pub tls_options: TlsOptions,
    /// A Unix socket to connect to instead of `host`/`port` (`redis+unix://`).
    pub socket: Option<PathBuf>,
    /// Database number.
    pub db: i64,
    /// ACL user name (never printed, like the password).
    pub username: Option<String>,
    /// Password (never printed).
    pub password: Option<Secret>,
    /// Upper bound on connections to Redis. cachette multiplexes every call over a few
    /// connections: it opens `min(max_connections, 2)`.
    pub max_connections: usize,
    /// TTL of writes that do not name one; `None` stores them without expiry.
    pub default_ttl: Option<Duration>,
    /// Prepended to every key.
    pub key_prefix: String,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for one operation, including a pending reconnect. Enforced per Redis
    /// connection by a watchdog that samples every eighth of it, so an operation gives up
    /// between 1x and about 1.25x this long; one whose connection broke is retried once
    /// within one more timeout.
    pub command_timeout: Duration,
    /// Value encoding.
    pub codec: Codec,
    /// Entry bound of the memory backend.
    pub memory_max_entries: Option<u64>,
    /// Byte bound of the memory backend (default 256 MiB,
    /// [`crate::backend::memory::DEFAULT_MAX_BYTES`]; `None` = no limit).
    pub memory_max_bytes: Option<u64>,
    /// Consecutive Redis failures (connection errors, timeouts) after which the circuit
    /// breaker opens and cache calls fail fast; `0` turns the breaker off.
    pub breaker_failures: u32,
    /// How long the circuit stays open before one call probes the server again.
    pub breaker_open: Duration,
    /// The largest encoded value a write may store, in bytes (default
    /// [`DEFAULT_MAX_VALUE_BYTES`], 32 MiB). Every write path (`set`, `set_raw`, `set_nx`,
    /// `set_many`, warming, read-through stores) checks it before sending, on every backend:
    /// a larger value fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// naming the key and both sizes, and nothing is sent.
    pub max_value_bytes: usize,
    /// Redis Cluster seed nodes (`host:port`, or comma-separated lists of them). When not
    /// empty the manager runs on the cluster backend, which discovers the rest of the
    /// cluster from these; the user name, password and TLS setting above apply to every node.
    pub cluster_nodes: Vec<String>,
    /// The near cache in front of Redis (`None` = off, the default); see
    /// [`NearCacheOptions`](crate::NearCacheOptions).
    pub near_cache: Option<crate::backend::NearCacheOptions>,
    /// Redis Sentinel: the sentinels (`host:port`, or comma-separated lists of them). With
    /// [`sentinel_master`](Config::sentinel_master) the manager reaches the primary they name
    /// and follows its failovers; `db`, the credentials and TLS above still apply to it.
    pub sentinels: Vec<String>,
    /// Redis Sentinel: the name of the master the sentinels monitor (`sentinel monitor NAME`).
    pub sentinel_master: Option<String>,
    /// Redis Sentinel: the ACL user name to log in to the sentinels with (never printed).
    pub sentinel_username: Option<String>,
    /// Redis Sentinel: the password of the sentinels (never printed).
    pub sentinel_password: Option<Secret>,
}

/// The default of [`Config::max_value_bytes`]: 32 MiB. A sixteenth of Redis's default
/// `proto-max-bulk-len` (512 MiB, above which the server refuses a value and closes the
/// connection), and small enough to upload within the default 500 ms command timeout on a
/// 1 Gbit/s link (~270 ms); a larger upload would end as a misleading timeout there.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 32 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            url: None,
            host: None,
            port: None,
            tls: false,
            tls_options: TlsOptions::default(),
            socket: None,
            db: 0,
            username: None,
            password: None,
            max_connections: 50,
            default_ttl: Some(Duration::from_secs(DEFAULT_TTL_SECS)),
            key_prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_millis(1000),
            command_timeout: Duration::from_millis(500),
            codec: Codec::Json,
            memory_max_entries: Some(100_000),
            memory_max_bytes: Some(crate::backend::memory::DEFAULT_MAX_BYTES),
            breaker_failures: 5,
            breaker_open: Duration::from_millis(1000),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            cluster_nodes: Vec::new(),
            near_cache: None,
            sentinels: Vec::new(),
            sentinel_master: None,
            sentinel_username: None,
            sentinel_password: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("enabled", &self.enabled)
            .field(
                "url",
                &self
                    .url
                    .as_deref()
                    .map(|url| match RedisEndpoint::parse(url) {
                        Ok(endpoint) => endpoint.to_string(),
                        Err(_) => "<invalid URL>".to_owned(),
                    }),
            )
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_options", &self.tls_options)
            .field("socket", &self.socket)
            .field("db", &self.db)
            .field("username", &self.username.as_ref().map(|_| Secret::new("")))
            .field("password", &self.password)
            .field("max_connections", &self.max_connections)
            .field("default_ttl", &self.default_ttl)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("codec", &self.codec)
            .field("memory_max_entries", &self.memory_max_entries)
            .field("memory_max_bytes", &self.memory_max_bytes)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_open", &self.breaker_open)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("cluster_nodes", &self.cluster_nodes)
            .field("near_cache", &self.near_cache)
            .field("sentinels", &self.sentinels)
            .field("sentinel_master", &self.sentinel_master)
            .field(
                "sentinel_username",
                &self.sentinel_username.as_ref().map(|_| Secret::new("")),
            )
            .field("sentinel_password", &self.sentinel_password)
            .finish()
    }
}

/// The environment variables [`Config::load`] reads.
pub const ENV_VARS: &[&str] = &[
    "REDIS_ENABLED",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_TLS_CA_FILE",
    "REDIS_TLS_CERT_FILE",
    "REDIS_TLS_KEY_FILE",
    "REDIS_TLS_INSECURE",
    "REDIS_MAX_CONNECTIONS",
    "REDIS_DEFAULT_TTL",
    "REDIS_KEY_PREFIX",
    "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_COMMAND_TIMEOUT_MS",
    "CACHETTE_CODEC",
    "CACHETTE_MEMORY_MAX_ENTRIES",
    "CACHETTE_MEMORY_MAX_BYTES",
    "CACHETTE_BREAKER_FAILURES",
    "CACHETTE_BREAKER_OPEN_MS",
    "CACHETTE_MAX_VALUE_BYTES",
    "REDIS_CLUSTER_NODES",
    "CACHETTE_NEAR_CACHE",
    "CACHETTE_NEAR_CACHE_MAX_ENTRIES",
    "CACHETTE_NEAR_CACHE_MAX_BYTES",
    "CACHETTE_NEAR_CACHE_MAX_TTL",
    "CACHETTE_NEAR_CACHE_MAX_STALENESS_MS",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_USERNAME",
    "REDIS_SENTINEL_PASSWORD",
];

impl Config {
    /// Defaults, then `config.json` (`./config.json`, or the path in `CACHETTE_CONFIG`, which
    /// must then exist), then the environment.
    ///
    /// # Errors
    /// A malformed file or an invalid value, naming its source and field.
    pub fn load() -> Result<Config> {
        let file = match std::env::var_os("CACHETTE_CONFIG") {
            Some(path) if !path.is_empty() => Some((PathBuf::from(path), true)),
            _ => Some((PathBuf::from("config.json"), false)),
        };
        Config::load_from(file, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with an explicit file (`(path, must_exist)`) and environment lookup,
    /// for tests and for programs that keep their settings elsewhere.
    pub fn load_from(
        file: Option<(PathBuf, bool)>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let mut config = Config::default();
        let file_source = file
            .as_ref()
            .map(|(path, _)| format!("config file {}", path.display()));
        if let Some((path, must_exist)) = file {
            match std::fs::read_to_string(&path) {
                Ok(text) => config.apply_json(&path, &text)?,
                Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::config(
                        &format!("config file {}", path.display()),
                        "file",
                        e,
                    ))
                }
            }
        }
        let set_in_env = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
        let (sentinels_in_env, master_in_env) = (
            set_in_env("REDIS_SENTINELS"),
            set_in_env("REDIS_SENTINEL_MASTER"),
        );
        config.apply_env(env)?;
        // Both Sentinel settings or neither: the error names the source of the one given.
        config.validate_sentinel(|field| {
            let (var, in_env) = match field {
                "sentinels" => ("REDIS_SENTINELS", sentinels_in_env),
                _ => ("REDIS_SENTINEL_MASTER", master_in_env),
            };
            match (&file_source, in_env) {
                (Some(source), false) => (source.clone(), format!("redis.{field}")),
                _ => (format!("environment variable {var}"), var.to_owned()),
            }
        })?;
        Ok(config)
    }

    /// Replaces every part of the endpoint (transport, host, port, db, credentials) by those
    /// of `endpoint`, and clears [`Config::url`]: this is how a URL from any source is applied.
    /// The TLS options are replaced only when `endpoint` carries some (a parsed URL never
    /// does).
    pub fn apply_endpoint(&mut self, endpoint: RedisEndpoint) {
        self.url = None;
        if !endpoint.tls_options.is_default() {
            self.tls_options = endpoint.tls_options;
        }
        match endpoint.transport {
            Transport::Tcp { host, port, tls } => {
                self.host = Some(host);
                self.port = Some(port);
                self.tls = tls;
                self.socket = None;
            }
            Transport::Unix(path) => {
                self.host = None;
                self.port = None;
                self.tls = false;
                self.socket = Some(path);
            }
        }
        self.db = endpoint.db;
        self.username = endpoint.username;
        self.password = endpoint.password;
    }

    /// Parses a [`Config::url`] set in code into the parts (it then wins over every part).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the part of the URL that is wrong.
    pub(crate) fn decompose_url(&mut self) -> Result<()> {
        if let Some(url) = self.url.take() {
            self.apply_endpoint(RedisEndpoint::parse_from(&url, "code", "url")?);
        }
        Ok(())
    }

    /// The Redis server this configuration names (from [`Config::url`] if it is set, else from
    /// the parts), or `None` for the memory backend.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an invalid URL or host set in code.
    pub fn endpoint(&self) -> Result<Option<RedisEndpoint>> {
        if let Some(url) = &self.url {
            let mut endpoint = RedisEndpoint::parse_from(url, "code", "url")?;
            endpoint.tls_options = self.tls_options.clone();
            return Ok(Some(endpoint));
        }
        if !self.uses_redis() {
            return Ok(None);
        }
        let transport = match &self.socket {
            Some(path) => Transport::Unix(path.clone()),
            None => Transport::Tcp {
                host: match &self.host {
                    Some(h) => check_host(h).map_err(|m| Error::config("code", "host", m))?,
                    None => "localhost".to_owned(),
                },
                port: match self.port {
                    Some(0) => return Err(Error::config("code", "port", "must be 1-65535")),
                    Some(p) => p,
                    None => endpoint::DEFAULT_PORT,
                },
                tls: self.tls,
            },
        };
        let mut endpoint = RedisEndpoint::tcp("localhost", endpoint::DEFAULT_PORT);
        endpoint.transport = transport;
        endpoint.db = self.db;
        endpoint.username = self.username.clone();
        endpoint.password = self.password.clone();
        endpoint.tls_options = self.tls_options.clone();
        Ok(Some(endpoint))
    }

    /// Checks the values that no parser checked (e.g. those set in code).
    pub fn validate(&self) -> Result<()> {
        if let Some(Err(message)) = self.default_ttl.map(crate::ttl::check) {
            return Err(Error::config(
                "code",
                "default_ttl",
                format!("{message}; use None for no expiry"),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::config("code", "max_connections", "must be positive"));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::config(
                "code",
                "timeout",
                "timeouts must be positive",
            ));
        }
        if self.breaker_failures > 0 && self.breaker_open.is_zero() {
            return Err(Error::config(
                "code",
                "breaker_open",
                "must be positive while the breaker is on",
            ));
        }
        if self.db < 0 {
            return Err(Error::config("code", "db", "must be non-negative"));
        }
        if self.max_value_bytes == 0 {
            return Err(Error::config("code", "max_value_bytes", "must be positive"));
        }
        self.validate_sentinel_in_code()?;
        self.validate_tls()
    }

    /// Whether a Redis server is named (URL, host or port); otherwise the memory backend runs.
    pub fn uses_redis(&self) -> bool {
        self.url.is_some() || self.host.is_some() || self.port.is_some() || self.socket.is_some()
    }

    /// The connection URL, credentials included, when Redis is named.
    #[deprecated(
        since = "0.1.0",
        note = "a URL string carries the password into whatever formats it: use Config::endpoint"
    )]
    pub fn redis_url(&self) -> Option<String> {
        let endpoint = self.endpoint().ok()??;
        let (scheme, host, port) = match &endpoint.transport {
            Transport::Tcp { host, port, tls } => (
                if *tls { "rediss" } else { "redis" },
                if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                },
                *port,
            ),
            Transport::Unix(path) => {
                let mut url = format!("redis+unix://{}?db={}", path.display(), endpoint.db);
                if let Some(u) = &endpoint.username {
                    url.push_str(&format!("&user={}", encode_userinfo(u)));
                }
                if let Some(p) = &endpoint.password {
                    url.push_str(&format!("&pass={}", encode_userinfo(p.expose())));
                }
                return Some(url);
            }
        };
        let auth = match (&endpoint.username, &endpoint.password) {
            (Some(u), Some(p)) => {
                format!("{}:{}@", encode_userinfo(u), encode_userinfo(p.expose()))
            }
            (None, Some(p)) => format!(":{}@", encode_userinfo(p.expose())),
            (Some(u), None) => format!("{}@", encode_userinfo(u)),
            (None, None) => String::new(),
        };
        Some(format!("{scheme}://{auth}{host}:{port}/{}", endpoint.db))
    }

    /// A one-line description without credentials (`redis://***@127.0.0.1:6379/0`, `memory`).
    pub fn describe_backend(&self) -> String {
        if self.uses_cluster() {
            return self.describe_cluster();
        }
        if self.uses_sentinel() {
            return self.describe_sentinel();
        }
        match self.endpoint() {
            Ok(Some(endpoint)) => endpoint.to_string(),
            Ok(None) => "memory".to_owned(),
            Err(_) => "an invalid Redis endpoint".to_owned(),
        }
    }
}

impl Config {
    /// TLS settings only make sense for a `rediss://` server: naming a CA or a client
    /// certificate for a plain one would silently send the traffic unencrypted.
    fn validate_tls(&self) -> Result<()> {
        let named = self.uses_redis() || self.uses_cluster() || self.uses_sentinel();
        if !named || self.tls_options.is_default() {
            return Ok(());
        }
        let tls = match &self.url {
            Some(url) => RedisEndpoint::parse_from(url, "code", "url")?.is_tls(),
            None => self.tls && self.socket.is_none(),
        };
        if tls {
            return Ok(());
        }
        let field = if self.tls_options.ca_file.is_some() {
            "tls_ca_file"
        } else if self.tls_options.cert_file.is_some() {
            "tls_cert_file"
        } else if self.tls_options.key_file.is_some() {
            "tls_key_file"
        } else {
            "tls_insecure"
        };
        Err(Error::config(
            "the configuration",
            field,
            "TLS settings are given but the Redis server is not reached over TLS \
             (use a rediss:// URL)",
        ))
    }
}

/// The keys of the `"redis"` section of `config.json`.
pub const JSON_FIELDS: &[&str] = &[
    "enabled",
    "url",
    "host",
    "port",
    "db",
    "username",
    "password",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure",
    "max_connections",
    "default_ttl",
    "key_prefix",
    "connect_timeout_ms",
    "command_timeout_ms",
    "codec",
    "memory_max_entries",
    "memory_max_bytes",
    "breaker_failures",
    "breaker_open_ms",
    "max_value_bytes",
    "cluster_nodes",
    "near_cache",
    "sentinels",
    "sentinel_master",
    "sentinel_username",
    "sentinel_password",
];

/// Percent-encodes the characters that would break the userinfo part of a URL.
fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
