//! Configuration: built-in defaults < `config.json` `"redis"` section < environment < code.
//!
//! [`Config::load`] reads `./config.json` (or the file named by `CACHETTE_CONFIG`) and the
//! environment; the builder methods of [`crate::CacheManagerBuilder`] apply on top. When neither
//! a URL, a host nor a port is named anywhere, the manager runs on the embedded memory backend.
//!
//! | field | `config.json` `"redis"` key | environment | default |
//! |---|---|---|---|
//! | enabled | `enabled` | `REDIS_ENABLED` | `true` |
//! | url | `url` | `REDIS_URL` | none |
//! | host | `host` | `REDIS_HOST` | none (`localhost` if only a port is named) |
//! | port | `port` | `REDIS_PORT` | `6379` |
//! | db | `db` | `REDIS_DB` | `0` |
//! | username (ACL) | `username` | `REDIS_USERNAME` | none |
//! | password | `password` | `REDIS_PASSWORD` | none |
//! | max_connections | `max_connections` | `REDIS_MAX_CONNECTIONS` | `50` |
//! | default_ttl (s, at most 3153600000 = 100 years; `0`/`null` = no expiry) | `default_ttl` | `REDIS_DEFAULT_TTL` | `3600` |
//! | key_prefix | `key_prefix` | `REDIS_KEY_PREFIX` | `"cache:"` |
//! | connect timeout (ms) | `connect_timeout_ms` | `REDIS_CONNECT_TIMEOUT_MS` | `1000` |
//! | command timeout (ms) | `command_timeout_ms` | `REDIS_COMMAND_TIMEOUT_MS` | `500` |
//! | codec | `codec` | `CACHETTE_CODEC` | `"json"` |
//! | memory backend entry bound | `memory_max_entries` | `CACHETTE_MEMORY_MAX_ENTRIES` | `100000` |
//! | memory backend byte bound (keys + values + 128 per entry; `null` = none) | `memory_max_bytes` | `CACHETTE_MEMORY_MAX_BYTES` | `268435456` (256 MiB) |
//! | circuit breaker: consecutive failures that open it (`0` = off) | `breaker_failures` | `CACHETTE_BREAKER_FAILURES` | `5` |
//! | circuit breaker: open time before a probe (ms) | `breaker_open_ms` | `CACHETTE_BREAKER_OPEN_MS` | `1000` |
//!
//! A `url` wins over `host`/`port`/`db`/`username`/`password` set in the same or a lower layer;
//! a `host` set in a higher layer than the `url` wins over it. Empty environment variables are
//! treated as unset. Every invalid value is an [`ErrorKind::Config`](crate::ErrorKind::Config)
//! error that names its source and field. Passwords never appear in `Debug` output or errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::codec::Codec;
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
    /// `false` turns caching off: decorated functions run uncached and direct operations
    /// return [`ErrorKind::Disabled`](crate::ErrorKind::Disabled) errors.
    pub enabled: bool,
    /// A full connection URL (`redis://`, `rediss://`, `redis+unix://`). May hold credentials.
    pub url: Option<String>,
    /// Redis host.
    pub host: Option<String>,
    /// Redis port.
    pub port: Option<u16>,
    /// Database number.
    pub db: i64,
    /// ACL user name.
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            url: None,
            host: None,
            port: None,
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
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("enabled", &self.enabled)
            .field("url", &self.url.as_deref().map(crate::error::redact))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
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
        let doc: Value =
            serde_json::from_str(text).map_err(|e| Error::config(&source, "JSON", e))?;
        let Some(section) = doc.get("redis") else {
            return Ok(());
        };
        let Some(section) = section.as_object() else {
            return Err(Error::config(&source, "redis", "must be an object"));
        };
        let mut sets_url = false;
        let mut sets_host = false;
        for (field, value) in section {
            let bad = |what: &str| Error::config(&source, &format!("redis.{field}"), what);
            match field.as_str() {
                "enabled" => {
                    self.enabled = value
                        .as_bool()
                        .ok_or_else(|| bad("expected true or false"))?
                }
                "url" => {
                    self.url = opt_string(value).map_err(|_| bad("expected a string or null"))?;
                    sets_url = self.url.is_some();
                }
                "host" => {
                    self.host = opt_string(value).map_err(|_| bad("expected a string or null"))?;
                    sets_host = self.host.is_some();
                }
                "port" => {
                    let port = value
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0);
                    self.port = Some(port.ok_or_else(|| bad("expected a port number 1-65535"))?);
                    sets_host = true;
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
                                .map(i128::from)
                                .or_else(|| value.as_u64().map(i128::from))
                                .ok_or_else(|| bad("expected seconds (an integer) or null"))?,
                        )
                        .map_err(&bad)?
                    }
                }
                "key_prefix" => {
                    self.key_prefix = value
                        .as_str()
                        .ok_or_else(|| bad("expected a string"))?
                        .to_owned()
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
                other => {
                    tracing::warn!(field = other, source = %source, "ignoring unknown cachette setting")
                }
            }
        }
        self.resolve_endpoint_layer(sets_url, sets_host);
        Ok(())
    }

    /// Applies environment variables (see the module docs for the names).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &str, what: &str| {
            Error::config(&format!("environment variable {name}"), name, what)
        };
        let mut sets_url = false;
        let mut sets_host = false;
        if let Some(v) = get("REDIS_ENABLED") {
            self.enabled =
                parse_bool(&v).ok_or_else(|| bad("REDIS_ENABLED", "expected true/false/1/0"))?;
        }
        if let Some(v) = get("REDIS_URL") {
            self.url = Some(v);
            sets_url = true;
        }
        if let Some(v) = get("REDIS_HOST") {
            self.host = Some(v);
            sets_host = true;
        }
        if let Some(v) = get("REDIS_PORT") {
            let port = v.trim().parse::<u16>().ok().filter(|p| *p > 0);
            self.port = Some(port.ok_or_else(|| {
                bad(
                    "REDIS_PORT",
                    &format!("expected a port number 1-65535, got {v:?}"),
                )
            })?);
            sets_host = true;
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
            let secs = v.trim().parse::<i128>().map_err(|_| {
                bad(
                    "REDIS_DEFAULT_TTL",
                    &format!("expected seconds (an integer), got {v:?}"),
                )
            })?;
            self.default_ttl = ttl_from_secs(secs).map_err(|m| bad("REDIS_DEFAULT_TTL", m))?;
        }
        if let Some(v) = env("REDIS_KEY_PREFIX") {
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
        self.resolve_endpoint_layer(sets_url, sets_host);
        Ok(())
    }

    /// Within one layer a URL wins; a host or port named in a layer above a URL wins over it.
    pub(crate) fn resolve_endpoint_layer(&mut self, sets_url: bool, sets_host: bool) {
        if sets_host && !sets_url {
            self.url = None;
        }
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
        Ok(())
    }

    /// Whether a Redis server is named (URL, host or port); otherwise the memory backend runs.
    pub fn uses_redis(&self) -> bool {
        self.url.is_some() || self.host.is_some() || self.port.is_some()
    }

    /// The connection URL, credentials included (keep it out of logs), when Redis is named.
    pub fn redis_url(&self) -> Option<String> {
        if let Some(url) = &self.url {
            return Some(url.clone());
        }
        if !self.uses_redis() {
            return None;
        }
        let host = self.host.as_deref().unwrap_or("localhost");
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port = self.port.unwrap_or(6379);
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => {
                format!("{}:{}@", encode_userinfo(u), encode_userinfo(p.expose()))
            }
            (None, Some(p)) => format!(":{}@", encode_userinfo(p.expose())),
            (Some(u), None) => format!("{}@", encode_userinfo(u)),
            (None, None) => String::new(),
        };
        Some(format!("redis://{auth}{host}:{port}/{}", self.db))
    }

    /// A one-line description without credentials (`redis://127.0.0.1:6379/0`, `memory`).
    pub fn describe_backend(&self) -> String {
        match self.redis_url() {
            Some(url) => crate::error::redact(&url),
            None => "memory".to_owned(),
        }
    }
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

/// Seconds of a configured default TTL: `0` = no expiry, else 1..=[`crate::ttl::MAX_TTL_SECS`].
fn ttl_from_secs(secs: i128) -> std::result::Result<Option<Duration>, &'static str> {
    const TOO_LONG: &str = "must be at most 3153600000 seconds (100 years; 0 means no expiry)";
    const _: () = assert!(crate::ttl::MAX_TTL_SECS == 3_153_600_000);
    match secs {
        s if s < 0 => Err("must not be negative (0 means no expiry)"),
        0 => Ok(None),
        s => match u64::try_from(s) {
            Ok(s) if s <= crate::ttl::MAX_TTL_SECS => Ok(Some(Duration::from_secs(s))),
            _ => Err(TOO_LONG),
        },
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
        assert_eq!(c.redis_url(), None);
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
        assert_eq!(c.redis_url().unwrap(), "redis://filehost:6380/2");
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
        assert_eq!(
            c.redis_url().unwrap(),
            "redis://:p%40ss%3Aw%2Frd@filehost:7000/2"
        );
        assert_eq!(c.default_ttl, None);

        let c = Config::load_from(
            Some((path, true)),
            env(&[("REDIS_URL", "redis://envhost:1/3")]),
        )
        .unwrap();
        assert_eq!(c.redis_url().unwrap(), "redis://envhost:1/3");
    }

    #[test]
    fn env_host_beats_file_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, r#"{"redis": {"url": "redis://fileurl:1/0"}}"#);
        let c = Config::load_from(Some((path, true)), env(&[("REDIS_HOST", "envhost")])).unwrap();
        assert_eq!(c.redis_url().unwrap(), "redis://envhost:6379/0");
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
        assert_eq!(c.redis_url().unwrap(), "redis://localhost:7001/0");
        let e = Config::load_from(None, env(&[("REDIS_ENABLED", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("REDIS_ENABLED"));
    }
}
