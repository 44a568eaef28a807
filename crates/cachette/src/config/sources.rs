//! The outside sources of a [`Config`]: the `"redis"` section of `config.json` and the
//! environment. Every value is checked here, where it enters, and a bad one is an error that
//! names its source and field.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::*;

impl Config {
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
                        .map(Secret::new)
                }
                "tls_ca_file" => {
                    self.tls_options.ca_file = opt_path(value).map_err(&bad)?;
                }
                "tls_cert_file" => {
                    self.tls_options.cert_file = opt_path(value).map_err(&bad)?;
                }
                "tls_key_file" => {
                    self.tls_options.key_file = opt_path(value).map_err(&bad)?;
                }
                "tls_insecure" => {
                    self.tls_options.insecure = value
                        .as_bool()
                        .ok_or_else(|| bad("expected true or false"))?
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
                "cluster_nodes" => {
                    let items = host_port_items(value).map_err(&bad)?;
                    self.cluster_nodes = cluster::parse_nodes(items).map_err(|m| bad(&m))?;
                }
                "sentinels" => {
                    let items = host_port_items(value).map_err(&bad)?;
                    self.sentinels = sentinel::parse_sentinels(items).map_err(|m| bad(&m))?;
                }
                "sentinel_master" => {
                    let name = opt_string(value).map_err(|_| bad("expected a string or null"))?;
                    self.sentinel_master = sentinel::check_master_name(name).map_err(&bad)?;
                }
                "sentinel_username" => {
                    self.sentinel_username =
                        opt_string(value).map_err(|_| bad("expected a string or null"))?
                }
                "sentinel_password" => {
                    self.sentinel_password = opt_string(value)
                        .map_err(|_| bad("expected a string or null"))?
                        .map(Secret::new)
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
                "near_cache" => {
                    self.near_cache = near::from_json(value).map_err(|(field, what)| {
                        Error::config(&source, &format!("redis.{field}"), what)
                    })?
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
            self.password = Some(Secret::new(v));
        }
        for (name, slot) in [
            ("REDIS_TLS_CA_FILE", &mut self.tls_options.ca_file),
            ("REDIS_TLS_CERT_FILE", &mut self.tls_options.cert_file),
            ("REDIS_TLS_KEY_FILE", &mut self.tls_options.key_file),
        ] {
            if let Some(v) = get(name) {
                *slot = Some(PathBuf::from(v.trim()));
            }
        }
        if let Some(v) = get("REDIS_TLS_INSECURE") {
            self.tls_options.insecure = parse_bool(&v)
                .ok_or_else(|| bad("REDIS_TLS_INSECURE", "expected true/false/1/0"))?;
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
        // Empty (or blank) is unset like every variable: an empty prefix is a choice made in
        // code only (`CacheManagerBuilder::key_prefix("")`).
        if let Some(v) = get("REDIS_KEY_PREFIX") {
            self.key_prefix = v;
        }
        if let Some(v) = get("REDIS_CLUSTER_NODES") {
            self.cluster_nodes =
                cluster::parse_nodes([v.as_str()]).map_err(|m| bad("REDIS_CLUSTER_NODES", &m))?;
        }
        if let Some(v) = get("REDIS_SENTINELS") {
            self.sentinels =
                sentinel::parse_sentinels([v.as_str()]).map_err(|m| bad("REDIS_SENTINELS", &m))?;
        }
        if let Some(v) = get("REDIS_SENTINEL_MASTER") {
            self.sentinel_master = sentinel::check_master_name(Some(v))
                .map_err(|m| bad("REDIS_SENTINEL_MASTER", m))?;
        }
        if let Some(v) = get("REDIS_SENTINEL_USERNAME") {
            self.sentinel_username = Some(v);
        }
        if let Some(v) = env("REDIS_SENTINEL_PASSWORD").filter(|v| !v.is_empty()) {
            self.sentinel_password = Some(Secret::new(v));
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
        near::apply_env(&mut self.near_cache, &get, parse_bool)?;
        Ok(())
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars (transpositions count as 2).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

/// A list of `host:port` items in the file: `null` (none), one string (which may hold a
/// comma-separated list), or a list of strings.
fn host_port_items(value: &Value) -> std::result::Result<Vec<&str>, &'static str> {
    const EXPECTED: &str = "expected a list of \"host:port\" strings";
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(|v| v.as_str().ok_or(EXPECTED)).collect(),
        _ => Err(EXPECTED),
    }
}

fn opt_string(value: &Value) -> std::result::Result<Option<String>, ()> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(()),
    }
}

/// A file path (a non-empty string) or `null`.
fn opt_path(value: &Value) -> std::result::Result<Option<PathBuf>, &'static str> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if !s.trim().is_empty() => Ok(Some(PathBuf::from(s.trim()))),
        Value::String(_) => Err("expected a file path (not empty) or null"),
        _ => Err("expected a file path (a string) or null"),
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
