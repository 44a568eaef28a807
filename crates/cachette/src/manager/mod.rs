//! [`CacheManager`]: the typed, namespaced face of a backend.

mod builder;
mod read_through;
mod shared;
mod tags;
pub(crate) mod warm;

pub use builder::{BackendLayer, CacheManagerBuilder};
pub use warm::{Warm, WarmProgress, WarmReport};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::breaker::CircuitBreaker;
use crate::backend::info::ServerInfo;
use crate::backend::{Backend, DirectRedis, KeyTtl, MemoryBackend, MemoryConfig};
use crate::codec::Codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::load::fills::Fills;
use crate::load::lease::Leases;
use crate::load::state::{FastPath, State};
use crate::load::tags::is_marked;
use crate::stats::{Counters, Stats};
use crate::ttl::Ttl;

/// The cache: typed get/set with TTLs, pattern operations, batches and server info, over the
/// embedded memory backend or Redis.
///
/// Cheap to clone (an `Arc` inside); clones share the backend, prefix and counters. Every key
/// given to a method is relative to the manager's key prefix (default `cache:`), and every key
/// returned is without it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cachette::{CacheManager, Ttl};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// let cache = CacheManager::memory();
/// cache.set("user:1", &serde_json::json!({"name": "Ada"}), Duration::from_secs(300)).await?;
/// let user: Option<serde_json::Value> = cache.get("user:1").await?;
/// assert_eq!(user.unwrap()["name"], "Ada");
/// assert_eq!(cache.delete_pattern("user:*").await?, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// Every operation returns [`Error`]: [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) or [`ErrorKind::Connection`](crate::ErrorKind::Connection) when
/// the backend is slow or down (bounded by the command timeout), [`ErrorKind::Decode`](crate::ErrorKind::Decode) naming
/// the key when a stored value does not decode, [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty key,
/// a zero TTL or a value larger than [`Config::max_value_bytes`] (naming the key and both
/// sizes; nothing is sent). A server's error reply (`WRONGTYPE`, `NOPERM`, `OOM`, ...) or a
/// reply of an unexpected type is [`ErrorKind::Backend`](crate::ErrorKind::Backend): it never drops the connection and
/// never counts toward the circuit breaker. Nothing panics.
#[derive(Clone)]
pub struct CacheManager {
    inner: Arc<State>,
}

impl fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheManager")
            .field("backend", &self.inner.description)
            .field("prefix", &self.inner.prefix)
            .field("default_ttl", &self.inner.default_ttl)
            .field("codec", &self.inner.codec)
            .field("enabled", &self.inner.enabled)
            .finish()
    }
}

impl CacheManager {
    /// A builder starting from built-in defaults (memory backend, prefix `cache:`, TTL 1 h).
    /// Use [`Config::load`]`()?.builder()` to start from `config.json` and the environment.
    pub fn builder() -> CacheManagerBuilder {
        Config::default().builder()
    }

    /// The manager described by `config.json` and the environment ([`Config::load`]): Redis
    /// when one is named, the embedded memory backend otherwise.
    ///
    /// # Errors
    /// An invalid configuration, naming its source and field.
    pub fn from_env() -> Result<CacheManager> {
        Config::load()?.builder().build()
    }

    /// A manager on a fresh embedded memory backend with default settings.
    ///
    /// # Panics
    /// Never: outside a tokio runtime it still works, with lazy reclamation of expired keys.
    pub fn memory() -> CacheManager {
        let config = Config::default();
        let memory = MemoryBackend::new(MemoryConfig::default());
        CacheManager {
            inner: Arc::new(State {
                backend: Arc::new(memory.clone()),
                fast: FastPath::Memory(memory),
                prefix_pattern: crate::glob::escape(&config.key_prefix),
                prefix: config.key_prefix,
                default_ttl: config.default_ttl,
                codec: config.codec,
                enabled: true,
                counters: Counters::new(),
                description: "memory".to_owned(),
                flights: Arc::default(),
                fills: Fills::default(),
                shared_backend: false,
                leases: Leases::Local,
                breaker: None,
                redis_config: None,
                direct: None,
                max_value_bytes: config.max_value_bytes,
                near: None,
            }),
        }
    }

    /// The counters of the near cache, when the manager has one
    /// ([`CacheManagerBuilder::near_cache`]).
    pub fn near_stats(&self) -> Option<crate::NearStats> {
        self.inner.near.as_ref().map(|n| n.stats())
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The default TTL (`None` = no expiry).
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// The value encoding.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// Whether caching is enabled.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The backend's name (`"memory"`, `"redis"`, `"disabled"`).
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Where the values live, without credentials (`redis://127.0.0.1:6379/0`, `memory`).
    pub fn describe(&self) -> &str {
        &self.inner.description
    }

    /// The backend, for operations the manager does not wrap.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// This manager's counters (reads, writes, errors, stampede control) and the state of
    /// its circuit breaker.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.snapshot();
        if let Some(breaker) = &self.inner.breaker {
            stats.circuit = breaker.state();
            stats.circuit_opens = breaker.opens();
            stats.short_circuits = breaker.short_circuits();
        }
        stats.near = self.near_stats();
        stats
    }

    /// The configuration and the server or cluster it names, without the wrappers around it,
    /// when the manager runs on Redis it was configured with (for
    /// [`CacheManager::stats_publisher`] and the statistics hash).
    pub(crate) fn direct_redis(&self) -> Option<(&Config, &DirectRedis)> {
        Some((
            self.inner.redis_config.as_ref()?,
            self.inner.direct.as_ref()?,
        ))
    }

    /// The circuit breaker around the backend, if the manager has one (Redis built from the
    /// configuration, unless `breaker_failures` is 0).
    pub fn circuit_breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.inner.breaker.as_ref()
    }

    /// Supersedes every fill of `full` before a write or an eviction of it: in this process
    /// (their tickets), and in every process sharing the backend (their leases, which a
    /// `lock = true` fill checks after storing). See the `fills` module for the ordering.
    async fn supersede(&self, full: &[String]) -> Result<()> {
        for key in full {
            self.inner.fills.supersede(key);
        }
        self.remove_leases(full).await
    }

    /// Removes the leases of `full` (keys) so that a `lock = true` fill in another process
    /// does not keep its value.
    async fn remove_leases(&self, full: &[String]) -> Result<()> {
        if !self.inner.shared_backend || full.is_empty() {
            return Ok(());
        }
        let leases: Vec<String> = full
            .iter()
            .map(|k| crate::load::lease::lease_key(k))
            .collect();
        self.inner.backend.delete_many(&leases).await.map(|_| ())
    }

    /// The live counters (shared by every clone of this manager).
    pub fn counters(&self) -> &Counters {
        self.inner.counters()
    }

    /// The full key stored in the backend for `key` (prefix included).
    pub fn full_key(&self, key: &str) -> String {
        self.inner.full_key(key)
    }

    pub(crate) fn checked_key(&self, key: &str) -> Result<String> {
        self.inner.checked_key(key)
    }

    pub(crate) fn check_value_size(&self, full: &str, len: usize) -> Result<()> {
        self.inner.check_value_size(full, len)
    }

    /// Resolves a TTL policy against the default and applies the one TTL rule of every
    /// backend ([`crate::ttl::check`]): positive, at most [`crate::ttl::MAX_TTL`] (100 years),
    /// rounded up to whole milliseconds.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) saying what is wrong with the TTL.
    pub fn resolve_ttl(&self, ttl: impl Into<Ttl>) -> Result<Option<Duration>> {
        self.inner.resolve_ttl(ttl)
    }

    /// [`resolve_ttl`](Self::resolve_ttl) for a write to `full`; the error names the key.
    fn key_ttl(&self, full: &str, ttl: impl Into<Ttl>) -> Result<Option<Duration>> {
        self.resolve_ttl(ttl).map_err(|e| e.with_key(full))
    }

    fn count<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if e.is_decode() {
                self.inner.counters.decode_error();
            } else {
                self.inner.counters.error();
            }
        }
        result
    }

    /// The value at `key`, decoded as `T`; `None` if absent or expired.
    ///
    /// # Errors
    /// A backend failure, or [`ErrorKind::Decode`](crate::ErrorKind::Decode) naming the key if the stored bytes are not a
    /// `T` (the value is left in place).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.checked_key(key)?;
        let read = match self.inner.fast.get(&self.inner.backend, &full).await {
            // A tagged value: served only while its tags are current (two more round trips).
            Ok(Some(bytes)) if is_marked(&bytes) => {
                Box::pin(self.inner.check_marked(&full, bytes)).await
            }
            read => read,
        };
        let result = match read {
            Ok(Some(bytes)) => {
                self.inner.counters.hit();
                self.inner.codec.decode(&full, &bytes).map(Some)
            }
            Ok(None) => {
                self.inner.counters.miss();
                Ok(None)
            }
            Err(e) => Err(e.with_key(full)),
        };
        self.count(result)
    }

    /// The raw bytes at `key` (no decoding). For a value stored with tags: the codec's bytes,
    /// without the tag mark, and only while its tags are current (as [`get`](Self::get)).
    pub async fn get_raw(&self, key: &str) -> Result<Option<Bytes>> {
        let full = self.checked_key(key)?;
        let read = match self.inner.fast.get(&self.inner.backend, &full).await {
            Ok(Some(bytes)) if is_marked(&bytes) => {
                Box::pin(self.inner.check_marked(&full, bytes)).await
            }
            read => read,
        };
        let result = read.map_err(|e| e.with_key(full));
        if let Ok(v) = &result {
            self.inner
                .counters
                .add_reads(u64::from(v.is_some()), u64::from(v.is_none()));
        }
        self.count(result)
    }

    /// Stores `value` at `key` with `ttl` ([`Ttl::Default`], [`Ttl::Never`] or a `Duration`).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let full = self.checked_key(key)?;
        let ttl = self.key_ttl(&full, ttl)?;
        let bytes = self.inner.codec.encode(&full, value)?;
        self.write_raw(full, Bytes::from(bytes), ttl).await
    }

    /// Stores raw bytes at `key` (no encoding).
    ///
    /// # Errors
    /// Besides those of [`set`](Self::set): [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// for bytes starting with `"\t\r"`, the mark of a tagged value (see [`set_tagged`](Self::set_tagged)).
    pub async fn set_raw(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let full = self.checked_key(key)?;
        let ttl = self.key_ttl(&full, ttl)?;
        let value = value.into();
        if is_marked(&value) {
            return Err(Error::invalid(
                "raw values must not start with \"\\t\\r\", the mark of a tagged value",
            )
            .with_key(full));
        }
        self.write_raw(full, value, ttl).await
    }

    async fn write_raw(&self, full: String, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.check_value_size(&full, value.len())?;
        self.inner.fills.supersede(&full);
        let result = self
            .inner
            .backend
            .set(&full, value, ttl)
            .await
            .map_err(|e| e.with_key(full));
        if result.is_ok() {
            self.inner.counters.write(1);
        }
        self.count(result)
    }

    /// Stores `value` only if `key` is absent; returns whether it was stored.
    pub async fn set_nx<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<bool> {
        let full = self.checked_key(key)?;
        let ttl = self.key_ttl(&full, ttl)?;
        let bytes = self.inner.codec.encode(&full, value)?;
        self.check_value_size(&full, bytes.len())?;
        self.inner.fills.supersede(&full);
        let result = self
            .inner
            .backend
            .set_nx(&full, Bytes::from(bytes), ttl)
            .await
            .map_err(|e| e.with_key(full));
        if let Ok(true) = result {
            self.inner.counters.write(1);
        }
        self.count(result)
    }

    /// Removes `key`; returns whether it existed.
    ///
    /// A read-through fill of `key` in flight (in this manager, or with `lock` in any process
    /// sharing the backend) is superseded: it does not store its value afterwards.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let full = self.checked_key(key)?;
        let keys = [full];
        if let Err(e) = self.supersede(&keys).await {
            return self.count(Err(e));
        }
        let [full] = keys;
        let result = self
            .inner
            .backend
            .delete(&full)
            .await
            .map_err(|e| e.with_key(full));
        self.count(result)
    }

    /// Removes several keys; returns how many existed. Supersedes their fills in flight, as
    /// [`delete`](Self::delete) does.
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        let full = keys
            .iter()
            .map(|k| self.checked_key(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if let Err(e) = self.supersede(&full).await {
            return self.count(Err(e));
        }
        let result = self.inner.backend.delete_many(&full).await;
        self.count(result)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let full = self.checked_key(key)?;
        let result = self
            .inner
            .backend
            .exists(&full)
            .await
            .map_err(|e| e.with_key(full));
        self.count(result)
    }

    /// Sets the TTL of an existing key; `false` if the key does not exist.
    /// [`Ttl::Never`] makes it persistent.
    pub async fn expire(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool> {
        let full = self.checked_key(key)?;
        let result = match self.key_ttl(&full, ttl)? {
            Some(ttl) => self.inner.backend.expire(&full, ttl).await,
            None => match self.inner.backend.persist(&full).await {
                // PERSIST answers 0 for a key without TTL too; report whether the key exists.
                Ok(false) => self.inner.backend.exists(&full).await,
                other => other,
            },
        };
        self.count(result.map_err(|e| e.with_key(full)))
    }

    /// The remaining lifetime of `key`: missing, persistent, or the time left.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let full = self.checked_key(key)?;
        let result = self
            .inner
            .backend
            .ttl(&full)
            .await
            .map_err(|e| e.with_key(full));
        self.count(result)
    }

    fn full_pattern(&self, pattern: &str) -> String {
        let mut full = String::with_capacity(self.inner.prefix_pattern.len() + pattern.len());
        full.push_str(&self.inner.prefix_pattern);
        full.push_str(pattern);
        full
    }

    /// Removes every key under this prefix that matches the Redis glob `pattern`
    /// (`user:*`, `post:?`, `id:[0-9]`, `\*` for a literal star); returns how many.
    /// Runs as incremental `SCAN` + batched `UNLINK` on Redis: never `KEYS`.
    ///
    /// Supersedes the read-through fills in flight of every matching key, as
    /// [`delete`](Self::delete) does: on a backend other processes can share (Redis, or one
    /// given to [`CacheManagerBuilder::backend`]) their leases go first, which is one more
    /// scan, of `{pattern}#lock{*}`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the prefix is empty and `pattern` does not start with
    /// a literal character (`*`, `?*`, `[a-z]*`, ...): it could match keys of every
    /// application in the database. Use [`delete_pattern_forced`](Self::delete_pattern_forced)
    /// if that is what you mean.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        if self.inner.prefix.is_empty() && !starts_with_literal(pattern) {
            return Err(Error::invalid(format!(
                "refusing to delete keys matching {pattern:?} with an empty key prefix: it could \
                 delete every key of the database, not only this cache's \
                 (use delete_pattern_forced if you mean it)"
            )));
        }
        self.delete_pattern_forced(pattern).await
    }

    /// [`delete_pattern`](Self::delete_pattern) without the empty-prefix guard: with an empty
    /// prefix, `delete_pattern_forced("*")` deletes every key of the database (still never
    /// `FLUSHDB`).
    pub async fn delete_pattern_forced(&self, pattern: &str) -> Result<u64> {
        let full = self.full_pattern(pattern);
        self.inner.fills.supersede_matching(&full);
        if let Err(e) = self.remove_pattern_leases(&full).await {
            return self.count(Err(e));
        }
        let result = self.inner.backend.delete_pattern(&full).await;
        self.count(result)
    }

    /// Removes the leases of the keys matching `full` before the keys themselves.
    async fn remove_pattern_leases(&self, full: &str) -> Result<()> {
        if !self.inner.shared_backend {
            return Ok(());
        }
        // The lease of `K` is `K#lock{T}` with an alphanumeric `T` (`key::companion_key`):
        // it matches `{pattern}#lock{*}` when `K` matches `{pattern}`.
        let suffix = crate::load::lease::LOCK_SUFFIX;
        let mut leases = String::with_capacity(full.len() + suffix.len() + 3);
        leases.push_str(full);
        leases.push_str(suffix);
        leases.push_str("{*}");
        self.inner.backend.delete_pattern(&leases).await.map(|_| ())
    }

    /// Every key under this prefix matching the Redis glob `pattern`, without the prefix,
    /// sorted. Runs as incremental `SCAN` on Redis.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        let result = self.inner.backend.keys(&self.full_pattern(pattern)).await;
        let mut keys: Vec<String> = self
            .count(result)?
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix(self.inner.prefix.as_str())
                    .map(str::to_owned)
            })
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    /// Removes every key under this manager's prefix, and nothing else (never `FLUSHDB`);
    /// returns how many.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the prefix is empty (that would be every key of the
    /// database); [`delete_pattern_forced("*")`](Self::delete_pattern_forced) does that
    /// explicitly.
    pub async fn clear(&self) -> Result<u64> {
        self.delete_pattern("*").await
    }

    /// Structured server information ([`ServerInfo`]).
    pub async fn info(&self) -> Result<ServerInfo> {
        let result = self.inner.backend.info().await;
        self.count(result)
    }

    /// Whether the backend answers within the command timeout. Never errors, never hangs.
    pub async fn ping(&self) -> bool {
        self.inner.backend.ping().await.is_ok()
    }

    /// The values of `keys`, in order (`None` for missing ones), in one round trip (`MGET`);
    /// two more when some of them were stored with tags (their tags are checked as
    /// [`get`](Self::get) does, all in the same two round trips).
    ///
    /// # Errors
    /// A backend failure, or a decode error naming the first key whose value is not a `T`.
    pub async fn get_many<T: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<T>>> {
        let full = keys
            .iter()
            .map(|k| self.checked_key(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let mut raw = self.count(self.inner.backend.get_many(&full).await)?;
        if raw.iter().flatten().any(|v| is_marked(v)) {
            raw = self.count(self.checked_many(&full, raw).await)?;
        }
        let hits = raw.iter().filter(|v| v.is_some()).count() as u64;
        self.inner.counters.add_reads(hits, raw.len() as u64 - hits);
        let decoded = raw
            .into_iter()
            .zip(&full)
            .map(|(v, key)| v.map(|b| self.inner.codec.decode(key, &b)).transpose())
            .collect();
        self.count(decoded)
    }

    /// Stores every `(key, value)` with the same TTL, in one pipelined round trip.
    pub async fn set_many<K, V, I>(&self, items: I, ttl: impl Into<Ttl>) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        let ttl = self.resolve_ttl(ttl)?;
        let encoded = self.encode_items(items)?;
        let n = encoded.len() as u64;
        for (full, _) in &encoded {
            self.inner.fills.supersede(full);
        }
        let result = self.inner.backend.set_many(&encoded, ttl).await;
        if result.is_ok() {
            self.inner.counters.write(n);
        }
        self.count(result)
    }
}
impl CacheManager {
    /// The full key and encoded value of every item, each key checked and each value held to
    /// `max_value_bytes`; the first item that fails stops the batch before anything is sent.
    pub(crate) fn encode_items<K, V, I>(&self, items: I) -> Result<Vec<(String, Bytes)>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        items
            .into_iter()
            .map(|(k, v)| {
                let full = self.checked_key(k.as_ref())?;
                let bytes = self.inner.codec.encode(&full, &v)?;
                self.check_value_size(&full, bytes.len())?;
                Ok((full, Bytes::from(bytes)))
            })
            .collect()
    }
}

/// Whether a glob pattern starts with a literal character (so that it cannot match every key).
fn starts_with_literal(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    match chars.next() {
        None => true, // matches only the empty key
        Some('*' | '?' | '[') => false,
        Some('\\') => chars.next().is_some(),
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[tokio::test]
    async fn only_a_manager_on_its_configured_redis_has_a_stats_publisher() {
        let err = CacheManager::memory().stats_publisher().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let redis = CacheManager::builder()
            .url("redis://127.0.0.1:1/")
            .key_prefix("app:")
            .build()
            .expect("builds lazily");
        let publisher = redis
            .stats_publisher()
            .expect("a Redis manager can publish");
        assert!(format!("{publisher:?}").contains("app:"));
    }

    /// Structural guard for the hot path: every await layer stores (and moves) the futures
    /// below it, so a stray `async` wrapper or an inlined reconnect multiplies what each `get`
    /// copies around (a 7.9 KB future once cost a 64-way GET load ~5 % in `memmove`). Sizes
    /// are deterministic for a compiler version; the bound leaves room for its variations.
    #[tokio::test]
    async fn the_redis_get_future_stays_small() {
        let cache = CacheManager::builder()
            .url("redis://127.0.0.1:1/")
            .build()
            .expect("builds lazily");
        assert_eq!(cache.backend_name(), "redis");
        let FastPath::Guarded(_, redis) = &cache.inner.fast else {
            panic!("a Redis manager has the guarded fast path");
        };
        let get = cache.get::<serde_json::Value>("k");
        let raw = redis.get_value("k");
        assert!(
            std::mem::size_of_val(&raw) <= 1024,
            "{}",
            std::mem::size_of_val(&raw)
        );
        assert!(
            std::mem::size_of_val(&get) <= 1280,
            "{}",
            std::mem::size_of_val(&get)
        );
    }
}
