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
//! | socket | the URL's path (`redis+unix://`) | the URL's path | none |
//! | db | `db` (or the URL's path) | `REDIS_DB` (or the URL's path) | `0` |
//! | username (ACL) | `username` (or the URL's) | `REDIS_USERNAME` (or the URL's) | none |
//! | password | `password` (or the URL's) | `REDIS_PASSWORD` (or the URL's) | none |
//! | max_connections | `max_connections` | `REDIS_MAX_CONNECTIONS` | `50` |
//! | default_ttl (s; `0`/`null` = no expiry) | `default_ttl` | `REDIS_DEFAULT_TTL` | `3600` |
//! | key_prefix (never empty here) | `key_prefix` | `REDIS_KEY_PREFIX` | `"cache:"` |
//! | connect timeout (ms) | `connect_timeout_ms` | `REDIS_CONNECT_TIMEOUT_MS` | `1000` |
//! | command timeout (ms) | `command_timeout_ms` | `REDIS_COMMAND_TIMEOUT_MS` | `500` |
//! | codec | `codec` | `CACHETTE_CODEC` | `"json"` |
//! | memory backend entry bound | `memory_max_entries` | `CACHETTE_MEMORY_MAX_ENTRIES` | `100000` |
//! | memory backend byte bound | `memory_max_bytes` | `CACHETTE_MEMORY_MAX_BYTES` | none |
//! | circuit breaker: consecutive failures that open it (`0` = off) | `breaker_failures` | `CACHETTE_BREAKER_FAILURES` | `5` |
//! | circuit breaker: open time before a probe (ms) | `breaker_open_ms` | `CACHETTE_BREAKER_OPEN_MS` | `1000` |
//! | largest value a write may store (bytes) | `max_value_bytes` | `CACHETTE_MAX_VALUE_BYTES` | `33554432` (32 MiB) |
//!
//! **Resolution, part by part.** Each layer (file, then environment, then code) changes only
//! the fields it names. A URL ([`crate::endpoint`] lists the accepted forms) is parsed where
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

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::codec::Codec;
use crate::endpoint::{check_host, RedisEndpoint, Transport};
use crate::error::{Error, Result};

/// Default number of seconds a value lives.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "cache:";

/// A secret string (a password): compared and used normally, printed as `"***"`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

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
    /// [`crate::endpoint`]): when set it wins over every part below. [`Config::load`] never
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
    /// Byte bound of the memory backend.
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
            memory_max_bytes: None,
            breaker_failures: 5,
            breaker_open: Duration::from_millis(1000),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
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
        config.apply_env(env)?;
        Ok(config)
    }

    /// Applies the `"redis"` section of a JSON document (a missing section changes nothing).
    pub fn apply_json(&mut self, path: &Path, text: &str) -> Result<()> {
        let source = format!("config file {}", path.display());
        // A UTF-8 byte order mark (Windows editors write one) is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc: Value =
            serde_json::from_str(text).map_err(|e| Error::config(&source, "JSON", e))?;
        let Some(doc) = doc.as_object() else {
            return Err(Error::config(
                &source,
                "JSON",
                "the top level must be an object ({\"redis\": {...}})",
            ));
        };
        let Some(section) = doc.get("redis") else {
            return Ok(());
        };
        let Some(section) = section.as_object() else {
            return Err(Error::config(&source, "redis", "must be an object"));
        };
        // The URL first: the separate parts of the same layer override its parts.
        match section.get("url") {
            None | Some(Value::Null) => {}
            Some(Value::String(url)) => {
                self.apply_endpoint(RedisEndpoint::parse_from(url, &source, "redis.url")?);
            }
            Some(_) => {
                return Err(Error::config(
                    &source,
                    "redis.url",
                    "expected a string or null",
                ))
            }
        }
        for (field, value) in section {
            let bad = |what: &str| Error::config(&source, &format!("redis.{field}"), what);
            match field.as_str() {
                "enabled" => {
                    self.enabled = value
                        .as_bool()
                        .ok_or_else(|| bad("expected true or false"))?
                }
                "url" => {}
                "host" => {
                    let host = opt_string(value).map_err(|_| bad("expected a string or null"))?;
                    if let Some(host) = host {
                        self.host = Some(check_host(&host).map_err(&bad)?);
                        self.socket = None;
                    }
                }
                "port" => {
                    let port = value
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0);
                    self.port = Some(port.ok_or_else(|| bad("expected a port number 1-65535"))?);
                    self.socket = None;
                }
                "db" => {
                    self.db = value
                        .as_i64()
                        .filter(|d| *d >= 0)
                        .ok_or_else(|| bad("expected a non-negative integer"))?
                }
                "username" => {
                    self.username =
                        opt_string(value).map_err(|_| bad("expected a string or null"))?
                }
                "password" => {
                    self.password = opt_string(value)
                        .map_err(|_| bad("expected a string or null"))?
                        .map(Secret)
                }
                "max_connections" => {
                    self.max_connections = value
                        .as_u64()
                        .filter(|n| *n > 0)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| bad("expected a positive integer"))?
                }
                "default_ttl" => {
                    self.default_ttl = if value.is_null() {
                        None
                    } else {
                        ttl_from_secs(
                            value
                                .as_i64()
                                .ok_or_else(|| bad("expected seconds (an integer) or null"))?,
                        )
                        .map_err(&bad)?
                    }
                }
                "key_prefix" => {
                    let prefix = value.as_str().ok_or_else(|| bad("expected a string"))?;
                    if prefix.is_empty() {
                        return Err(bad(
                            "must not be empty (an empty prefix shares the database with every \
                             other application: choose it in code with \
                             CacheManagerBuilder::key_prefix(\"\"))",
                        ));
                    }
                    self.key_prefix = prefix.to_owned();
                }
                "connect_timeout_ms" => {
                    self.connect_timeout = positive_ms(value.as_u64())
                        .ok_or_else(|| bad("expected a positive number of milliseconds"))?
                }
                "command_timeout_ms" => {
                    self.command_timeout = positive_ms(value.as_u64())
                        .ok_or_else(|| bad("expected a positive number of milliseconds"))?
                }
                "codec" => {
                    self.codec = value
                        .as_str()
                        .and_then(Codec::parse)
                        .ok_or_else(|| bad(CODEC_EXPECTED))?
                }
                "memory_max_entries" => {
                    self.memory_max_entries =
                        opt_u64(value).map_err(|_| bad("expected a positive integer or null"))?
                }
                "memory_max_bytes" => {
                    self.memory_max_bytes =
                        opt_u64(value).map_err(|_| bad("expected a positive integer or null"))?
                }
                "breaker_failures" => {
                    self.breaker_failures = value
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad("expected a non-negative integer (0 = off)"))?
                }
                "breaker_open_ms" => {
                    self.breaker_open = positive_ms(value.as_u64())
                        .ok_or_else(|| bad("expected a positive number of milliseconds"))?
                }
                "max_value_bytes" => {
                    self.max_value_bytes = value
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("expected a positive number of bytes"))?
                }
                other => {
                    let hint = match closest(other, JSON_FIELDS) {
                        Some(known) => format!("unknown field (did you mean \"{known}\"?)"),
                        None => format!("unknown field (known: {})", JSON_FIELDS.join(", ")),
                    };
                    return Err(bad(&hint));
                }
            }
        }
        Ok(())
    }

    /// Applies environment variables (see the module docs for the names).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &str, what: &str| {
            Error::config(&format!("environment variable {name}"), name, what)
        };
        if let Some(v) = get("REDIS_ENABLED") {
            self.enabled =
                parse_bool(&v).ok_or_else(|| bad("REDIS_ENABLED", "expected true/false/1/0"))?;
        }
        // The URL first: the separate parts of the same layer override its parts.
        if let Some(v) = get("REDIS_URL") {
            let source = "environment variable REDIS_URL";
            self.apply_endpoint(RedisEndpoint::parse_from(&v, source, "REDIS_URL")?);
        }
        if let Some(v) = get("REDIS_HOST") {
            self.host = Some(check_host(&v).map_err(|m| bad("REDIS_HOST", m))?);
            self.socket = None;
        }
        if let Some(v) = get("REDIS_PORT") {
            let port = v.trim().parse::<u16>().ok().filter(|p| *p > 0);
            self.port = Some(port.ok_or_else(|| {
                bad(
                    "REDIS_PORT",
                    &format!("expected a port number 1-65535, got {v:?}"),
                )
            })?);
            self.socket = None;
        }
        if let Some(v) = get("REDIS_DB") {
            self.db = v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| {
                    bad(
                        "REDIS_DB",
                        &format!("expected a non-negative integer, got {v:?}"),
                    )
                })?;
        }
        if let Some(v) = get("REDIS_USERNAME") {
            self.username = Some(v);
        }
        // A password is taken as is (spaces included); only an empty one is unset.
        if let Some(v) = env("REDIS_PASSWORD").filter(|v| !v.is_empty()) {
            self.password = Some(Secret(v));
        }
        if let Some(v) = get("REDIS_MAX_CONNECTIONS") {
            self.max_connections = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    bad(
                        "REDIS_MAX_CONNECTIONS",
                        &format!("expected a positive integer, got {v:?}"),
                    )
                })?;
        }
        if let Some(v) = get("REDIS_DEFAULT_TTL") {
            let secs = v.trim().parse::<i64>().map_err(|_| {
                bad(
                    "REDIS_DEFAULT_TTL",
                    &format!("expected seconds (an integer), got {v:?}"),
                )
            })?;
            self.default_ttl = ttl_from_secs(secs).map_err(|m| bad("REDIS_DEFAULT_TTL", m))?;
        }
        // Empty (or blank) is unset like every variable: an empty prefix is a choice made in
        // code only (`CacheManagerBuilder::key_prefix("")`).
        if let Some(v) = get("REDIS_KEY_PREFIX") {
            self.key_prefix = v;
        }
        if let Some(v) = get("REDIS_CONNECT_TIMEOUT_MS") {
            self.connect_timeout = positive_ms(v.trim().parse().ok()).ok_or_else(|| {
                bad(
                    "REDIS_CONNECT_TIMEOUT_MS",
                    &format!("expected a positive number of milliseconds, got {v:?}"),
                )
            })?;
        }
        if let Some(v) = get("REDIS_COMMAND_TIMEOUT_MS") {
            self.command_timeout = positive_ms(v.trim().parse().ok()).ok_or_else(|| {
                bad(
                    "REDIS_COMMAND_TIMEOUT_MS",
                    &format!("expected a positive number of milliseconds, got {v:?}"),
                )
            })?;
        }
        if let Some(v) = get("CACHETTE_CODEC") {
            self.codec =
                Codec::parse(v.trim()).ok_or_else(|| bad("CACHETTE_CODEC", CODEC_EXPECTED))?;
        }
        if let Some(v) = get("CACHETTE_MEMORY_MAX_ENTRIES") {
            self.memory_max_entries = Some(
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        bad("CACHETTE_MEMORY_MAX_ENTRIES", "expected a positive integer")
                    })?,
            );
        }
        if let Some(v) = get("CACHETTE_MEMORY_MAX_BYTES") {
            self.memory_max_bytes = Some(
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        bad("CACHETTE_MEMORY_MAX_BYTES", "expected a positive integer")
                    })?,
            );
        }
        if let Some(v) = get("CACHETTE_BREAKER_FAILURES") {
            self.breaker_failures = v.trim().parse::<u32>().map_err(|_| {
                bad(
                    "CACHETTE_BREAKER_FAILURES",
                    &format!("expected a non-negative integer (0 = off), got {v:?}"),
                )
            })?;
        }
        if let Some(v) = get("CACHETTE_BREAKER_OPEN_MS") {
            self.breaker_open = positive_ms(v.trim().parse().ok()).ok_or_else(|| {
                bad(
                    "CACHETTE_BREAKER_OPEN_MS",
                    &format!("expected a positive number of milliseconds, got {v:?}"),
                )
            })?;
        }
        if let Some(v) = get("CACHETTE_MAX_VALUE_BYTES") {
            self.max_value_bytes = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    bad(
                        "CACHETTE_MAX_VALUE_BYTES",
                        &format!("expected a positive number of bytes, got {v:?}"),
                    )
                })?;
        }
        Ok(())
    }

    /// Replaces every part of the endpoint (transport, host, port, db, credentials) by those
    /// of `endpoint`, and clears [`Config::url`]: this is how a URL from any source is applied.
    pub fn apply_endpoint(&mut self, endpoint: RedisEndpoint) {
        self.url = None;
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
            return RedisEndpoint::parse_from(url, "code", "url").map(Some);
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
                    None => crate::endpoint::DEFAULT_PORT,
                },
                tls: self.tls,
            },
        };
        let mut endpoint = RedisEndpoint::tcp("localhost", crate::endpoint::DEFAULT_PORT);
        endpoint.transport = transport;
        endpoint.db = self.db;
        endpoint.username = self.username.clone();
        endpoint.password = self.password.clone();
        Ok(Some(endpoint))
    }

    /// Checks the values that no parser checked (e.g. those set in code).
    pub fn validate(&self) -> Result<()> {
        if self.default_ttl == Some(Duration::ZERO) {
            return Err(Error::config(
                "code",
                "default_ttl",
                "must be positive (use None for no expiry)",
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
        Ok(())
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
        match self.endpoint() {
            Ok(Some(endpoint)) => endpoint.to_string(),
            Ok(None) => "memory".to_owned(),
            Err(_) => "an invalid Redis endpoint".to_owned(),
        }
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
];

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars (transpositions count as 2).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

const CODEC_EXPECTED: &str = if cfg!(feature = "msgpack") {
    "expected \"json\" or \"msgpack\""
} else {
    "expected \"json\" (\"msgpack\" needs the msgpack feature)"
};

fn opt_string(value: &Value) -> std::result::Result<Option<String>, ()> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(()),
    }
}

fn opt_u64(value: &Value) -> std::result::Result<Option<u64>, ()> {
    match value {
        Value::Null => Ok(None),
        v => v.as_u64().filter(|n| *n > 0).map(Some).ok_or(()),
    }
}

fn positive_ms(ms: Option<u64>) -> Option<Duration> {
    ms.filter(|ms| *ms > 0).map(Duration::from_millis)
}

fn ttl_from_secs(secs: i64) -> std::result::Result<Option<Duration>, &'static str> {
    match secs {
        s if s < 0 => Err("must not be negative (0 means no expiry)"),
        0 => Ok(None),
        s => Ok(Some(Duration::from_secs(s.unsigned_abs()))),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

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
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_use_memory_backend() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert!(!c.uses_redis());
        assert_eq!(c.endpoint().unwrap(), None);
        assert_eq!(c.key_prefix, "cache:");
        assert_eq!(c.default_ttl, Some(Duration::from_secs(3600)));
        assert_eq!(c.describe_backend(), "memory");
    }

    #[test]
    fn precedence_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            r#"{"redis": {"enabled": true, "host": "filehost", "port": 6380, "db": 2,
                "password": null, "max_connections": 10, "default_ttl": 60, "key_prefix": "xcore:"}}"#,
        );
        let c = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap();
        assert_eq!(c.describe_backend(), "redis://filehost:6380/2");
        assert_eq!(c.key_prefix, "xcore:");
        assert_eq!(c.default_ttl, Some(Duration::from_secs(60)));
        assert_eq!(c.max_connections, 10);

        let c = Config::load_from(
            Some((path.clone(), true)),
            env(&[
                ("REDIS_PORT", "7000"),
                ("REDIS_PASSWORD", "p@ss:w/rd"),
                ("REDIS_DEFAULT_TTL", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.describe_backend(), "redis://***@filehost:7000/2");
        let endpoint = c.endpoint().unwrap().unwrap();
        assert_eq!(endpoint.password.unwrap().expose(), "p@ss:w/rd");
        assert_eq!(c.default_ttl, None);

        let c = Config::load_from(
            Some((path, true)),
            env(&[("REDIS_URL", "redis://envhost:1/3")]),
        )
        .unwrap();
        assert_eq!(c.describe_backend(), "redis://envhost:1/3");
    }

    #[test]
    fn env_host_beats_file_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, r#"{"redis": {"url": "redis://fileurl:1/0"}}"#);
        let c = Config::load_from(Some((path, true)), env(&[("REDIS_HOST", "envhost")])).unwrap();
        // Only the host changes: the URL's port (and db, credentials) stay.
        assert_eq!(c.describe_backend(), "redis://envhost:1/0");
    }

    #[test]
    fn bad_values_name_source_and_field() {
        let e = Config::load_from(None, env(&[("REDIS_PORT", "abc")])).unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("REDIS_PORT"), "{e}");
        let e = Config::load_from(None, env(&[("REDIS_DEFAULT_TTL", "-5")])).unwrap_err();
        assert!(e.to_string().contains("REDIS_DEFAULT_TTL"), "{e}");
        assert!(e.to_string().contains("negative"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, r#"{"redis": {"port": "x"}"#);
        let e = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        assert!(e.to_string().contains("JSON"), "{e}");
        let path = write(&dir, r#"{"redis": {"default_ttl": -1}}"#);
        let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
        assert!(e.to_string().contains("redis.default_ttl"), "{e}");

        let e =
            Config::load_from(Some((dir.path().join("missing.json"), true)), env(&[])).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
        // An absent ./config.json is fine.
        Config::load_from(Some((dir.path().join("missing.json"), false)), env(&[])).unwrap();
    }

    #[test]
    fn password_never_printed() {
        let c = Config::load_from(
            None,
            env(&[
                ("REDIS_HOST", "h"),
                ("REDIS_PASSWORD", "hunter2"),
                ("REDIS_USERNAME", "app"),
            ]),
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!c.describe_backend().contains("hunter2"));
        let c =
            Config::load_from(None, env(&[("REDIS_URL", "redis://app:hunter2@h:1/0")])).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!c.describe_backend().contains("hunter2"));
    }

    #[test]
    fn circuit_breaker_settings() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.breaker_failures, 5);
        assert_eq!(c.breaker_open, Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            r#"{"redis": {"breaker_failures": 3, "breaker_open_ms": 250}}"#,
        );
        let c = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap();
        assert_eq!(c.breaker_failures, 3);
        assert_eq!(c.breaker_open, Duration::from_millis(250));
        let c = Config::load_from(
            Some((path, true)),
            env(&[
                ("CACHETTE_BREAKER_FAILURES", "0"),
                ("CACHETTE_BREAKER_OPEN_MS", "40"),
            ]),
        )
        .unwrap();
        assert_eq!(c.breaker_failures, 0);
        assert_eq!(c.breaker_open, Duration::from_millis(40));
        let e = Config::load_from(None, env(&[("CACHETTE_BREAKER_FAILURES", "-1")])).unwrap_err();
        assert!(e.to_string().contains("CACHETTE_BREAKER_FAILURES"), "{e}");
        let e = Config::load_from(None, env(&[("CACHETTE_BREAKER_OPEN_MS", "0")])).unwrap_err();
        assert!(e.to_string().contains("CACHETTE_BREAKER_OPEN_MS"), "{e}");
        let path = write(&dir, r#"{"redis": {"breaker_open_ms": "x"}}"#);
        let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
        assert!(e.to_string().contains("redis.breaker_open_ms"), "{e}");
    }

    #[test]
    fn disabled_mode_and_port_only() {
        let c = Config::load_from(
            None,
            env(&[("REDIS_ENABLED", "false"), ("REDIS_PORT", "7001")]),
        )
        .unwrap();
        assert!(!c.enabled);
        assert_eq!(c.describe_backend(), "redis://localhost:7001/0");
        let e = Config::load_from(None, env(&[("REDIS_ENABLED", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("REDIS_ENABLED"));
    }

    /// Issue 9 item 8: environment > file holds part by part beside a URL in the file.
    #[test]
    fn env_parts_override_a_file_url_part_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            r#"{"redis": {"url": "redis://fileuser:filepw@filehost:6390/5"}}"#,
        );
        let load = |vars: &[(&str, &str)]| {
            let c = Config::load_from(Some((path.clone(), true)), env(vars)).unwrap();
            let e = c.endpoint().unwrap().unwrap();
            (c, e)
        };
        let (c, e) = load(&[]);
        assert_eq!(c.url, None, "a loaded URL is decomposed");
        assert_eq!(
            (c.host.as_deref(), c.port, c.db),
            (Some("filehost"), Some(6390), 5)
        );
        assert_eq!(e.username.as_deref(), Some("fileuser"));
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));

        let (c, e) = load(&[("REDIS_DB", "3")]);
        assert_eq!(c.db, 3);
        assert_eq!(e.db, 3);
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));
        assert_eq!(c.describe_backend(), "redis://***@filehost:6390/3");

        let (_, e) = load(&[("REDIS_PASSWORD", "envpw")]);
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("envpw"));
        assert_eq!((e.username.as_deref(), e.db), (Some("fileuser"), 5));

        let (_, e) = load(&[("REDIS_USERNAME", "envuser")]);
        assert_eq!(e.username.as_deref(), Some("envuser"));
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));

        let (c, e) = load(&[("REDIS_PORT", "7000")]);
        assert_eq!(c.describe_backend(), "redis://***@filehost:7000/5");
        assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));

        let (c, _) = load(&[("REDIS_HOST", "envhost")]);
        assert_eq!(c.describe_backend(), "redis://***@envhost:6390/5");

        // A URL in the environment replaces the file's endpoint as a whole; the parts named
        // beside it in the environment override its parts.
        let (c, e) = load(&[("REDIS_URL", "redis://envurl:1/2"), ("REDIS_DB", "4")]);
        assert_eq!(c.describe_backend(), "redis://envurl:1/4");
        assert_eq!((e.username, e.password), (None, None));

        // Within the file too: separate parts override the file's URL.
        let path2 = write(
            &dir,
            r#"{"redis": {"url": "redis://:pw@h:1/5", "db": 6, "port": 2}}"#,
        );
        let c = Config::load_from(Some((path2, true)), env(&[])).unwrap();
        assert_eq!(c.describe_backend(), "redis://***@h:2/6");
    }

    /// Issue 9 item 3: an empty (or blank) variable is unset, REDIS_KEY_PREFIX included; an
    /// empty prefix cannot come from the file.
    #[test]
    fn empty_variables_are_unset_and_the_file_cannot_empty_the_prefix() {
        let all_empty: Vec<(&str, &str)> = ENV_VARS.iter().map(|v| (*v, "")).collect();
        let c = Config::load_from(None, env(&all_empty)).unwrap();
        assert_eq!(c, Config::default());
        let c = Config::load_from(None, env(&[("REDIS_KEY_PREFIX", "  ")])).unwrap();
        assert_eq!(c.key_prefix, "cache:");
        let c = Config::load_from(None, env(&[("REDIS_KEY_PREFIX", "app:")])).unwrap();
        assert_eq!(c.key_prefix, "app:");

        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, r#"{"redis": {"key_prefix": ""}}"#);
        let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("redis.key_prefix"), "{e}");
        assert!(e.to_string().contains("empty"), "{e}");
    }

    /// Issue 9 item 9: invalid values are errors at load time naming the source and field.
    #[test]
    fn load_errors_name_the_source_and_field() {
        for (var, value, what) in [
            ("REDIS_URL", "not a url", "not a URL"),
            ("REDIS_URL", "http://h:1/0", "scheme"),
            ("REDIS_URL", "redis://h:99999/0", "port"),
            ("REDIS_URL", "redis://h:1/zero", "database"),
            ("REDIS_HOST", "a b", "host"),
            ("REDIS_HOST", "h/x", "host"),
        ] {
            let e = Config::load_from(None, env(&[(var, value)])).unwrap_err();
            let text = e.to_string();
            assert!(e.is_config(), "{text}");
            assert!(
                text.contains(&format!("environment variable {var}")),
                "{text}"
            );
            assert!(text.contains(what), "{var}={value}: {text}");
        }
        let dir = tempfile::tempdir().unwrap();
        for (json, field, what) in [
            ("[]", "JSON", "top level must be an object"),
            ("42", "JSON", "top level must be an object"),
            (
                r#"{"redis": {"hots": "h"}}"#,
                "redis.hots",
                "did you mean \"host\"",
            ),
            (
                r#"{"redis": {"key_prefx": "a:"}}"#,
                "redis.key_prefx",
                "\"key_prefix\"",
            ),
            (
                r#"{"redis": {"zzzzzz": 1}}"#,
                "redis.zzzzzz",
                "known: enabled",
            ),
            (r#"{"redis": {"url": "redis://h:0"}}"#, "redis.url", "port"),
            (r#"{"redis": {"url": 5}}"#, "redis.url", "string"),
            (r#"{"redis": {"host": "a b"}}"#, "redis.host", "host"),
        ] {
            let path = write(&dir, json);
            let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
            let text = e.to_string();
            assert!(e.is_config(), "{text}");
            assert!(text.contains("config.json"), "{json}: {text}");
            assert!(text.contains(field), "{json}: {text}");
            assert!(text.contains(what), "{json}: {text}");
        }
        // Other top-level keys belong to the application; a BOM is not an error.
        let path = write(&dir, "\u{feff}{\"app\": 1, \"redis\": {\"port\": 7000}}");
        let c = Config::load_from(Some((path, true)), env(&[])).unwrap();
        assert_eq!(c.port, Some(7000));
    }

    #[test]
    fn suggestions_pick_the_closest_field() {
        assert_eq!(closest("hots", JSON_FIELDS), Some("host"));
        assert_eq!(closest("PORT", JSON_FIELDS), Some("port"));
        assert_eq!(closest("passwort", JSON_FIELDS), Some("password"));
        assert_eq!(
            closest("max_conections", JSON_FIELDS),
            Some("max_connections")
        );
        assert_eq!(closest("qqqqqqqq", JSON_FIELDS), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    fn arbitrary_text() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            proptest::string::string_regex("[ -~]{0,24}").unwrap(),
            proptest::string::string_regex("[0-9 :/@%-]{0,12}").unwrap(),
            proptest::prelude::any::<String>(),
        ]
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            arbitrary_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map(arbitrary_text(), inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Fuzzing the environment: any values never panic, and a rejection names the variable
        /// it came from.
        #[test]
        fn any_environment_loads_or_names_the_variable(
            values in proptest::collection::vec(
                (proptest::sample::select(ENV_VARS), arbitrary_text()), 0..6)
        ) {
            let vars: Vec<(&str, &str)> =
                values.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match Config::load_from(None, env(&vars)) {
                Ok(c) => { let _ = (format!("{c:?}"), c.describe_backend(), c.endpoint()); }
                Err(e) => {
                    proptest::prop_assert!(e.is_config());
                    let text = e.to_string();
                    proptest::prop_assert!(
                        values.iter().any(|(k, _)| text.contains(&format!("environment variable {k}"))),
                        "{}", text
                    );
                }
            }
        }

        /// Fuzzing the file: any JSON (known and unknown fields of any type) never panics, and
        /// a rejection names the file and the field.
        #[test]
        fn any_config_file_loads_or_names_the_field(
            fields in proptest::collection::vec(
                (proptest::prop_oneof![
                    proptest::sample::select(JSON_FIELDS).prop_map(str::to_owned),
                    arbitrary_text(),
                ], arbitrary_json()), 0..5),
            top in arbitrary_json(),
            wrap in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let doc = if wrap {
                let section: serde_json::Map<String, Value> = fields.into_iter().collect();
                serde_json::json!({ "redis": section }).to_string()
            } else {
                top.to_string()
            };
            let path = write(&dir, &doc);
            match Config::load_from(Some((path, true)), env(&[])) {
                Ok(c) => { let _ = (format!("{c:?}"), c.describe_backend(), c.endpoint()); }
                Err(e) => {
                    proptest::prop_assert!(e.is_config());
                    let text = e.to_string();
                    proptest::prop_assert!(text.contains("config.json"), "{}", text);
                    proptest::prop_assert!(
                        text.contains("invalid redis") || text.contains("invalid JSON"),
                        "{}", text
                    );
                }
            }
        }
    }
}
