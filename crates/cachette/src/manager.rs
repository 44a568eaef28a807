//! [`CacheManager`]: the typed, namespaced face of a backend.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{
    Backend, KeyTtl, MemoryBackend, MemoryConfig, NullBackend, RedisBackend, RedisOptions,
};
use crate::breaker::{BreakerPolicy, CircuitBreaker};
use crate::coalesce::Flights;
use crate::codec::Codec;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::info::ServerInfo;
use crate::lock::Leases;
use crate::stats::{Counters, Stats};
use crate::ttl::Ttl;

/// How many connections cachette opens at most: each one is multiplexed, so a couple of them
/// carry any number of concurrent calls.
const MULTIPLEXED_CONNECTIONS: usize = 1;

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
/// Every operation returns [`Error`]: [`ErrorKind::Timeout`] or [`ErrorKind::Connection`] when
/// the backend is slow or down (bounded by the command timeout), [`ErrorKind::Decode`] naming
/// the key when a stored value does not decode, [`ErrorKind::InvalidInput`] for an empty key or
/// a zero TTL. Nothing panics.
#[derive(Clone)]
pub struct CacheManager {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    /// The built-in backends again, for a `get` that does not box its future.
    fast: FastPath,
    prefix: String,
    prefix_pattern: String,
    default_ttl: Option<Duration>,
    codec: Codec,
    enabled: bool,
    counters: Counters,
    description: String,
    /// Keys being loaded right now (request coalescing; touched only on misses).
    flights: Arc<Flights>,
    /// Cross-process leases and their wake-ups.
    leases: Leases,
    /// The breaker around the backend, when there is one.
    breaker: Option<Arc<CircuitBreaker>>,
    /// The configuration, when the manager runs on the Redis server it names (for
    /// [`CacheManager::stats_publisher`]).
    redis_config: Option<Config>,
}

enum FastPath {
    Memory(MemoryBackend),
    Redis(RedisBackend),
    /// Redis behind the circuit breaker.
    Guarded(Arc<CircuitBreaker>, RedisBackend),
    None,
}

impl FastPath {
    async fn get(&self, backend: &Arc<dyn Backend>, key: &str) -> Result<Option<Bytes>> {
        match self {
            FastPath::Memory(m) => {
                // A memory read never waits: cooperate with tokio's task budget so a loop of
                // reads still yields (see `MemoryBackend::get`).
                crate::backend::memory::cooperate().await;
                Ok(m.get_now(key))
            }
            FastPath::Redis(r) => r.get_value(key).await,
            FastPath::Guarded(b, r) if b.is_closed() => {
                let result = r.get_value(key).await;
                b.record_closed(&result);
                result
            }
            FastPath::Guarded(b, r) => Box::pin(b.guard(r.get_value(key))).await,
            FastPath::None => backend.get(key).await,
        }
    }
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

/// Builds a [`CacheManager`]; obtained from [`CacheManager::builder`] (built-in defaults) or
/// [`Config::builder`] (a loaded configuration). Its setters win over every other source.
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheManagerBuilder {
    config: Config,
    backend: Option<Arc<dyn Backend>>,
    memory: Option<MemoryConfig>,
    #[cfg(feature = "metrics")]
    metrics: bool,
}

impl Config {
    /// A [`CacheManagerBuilder`] starting from this configuration.
    pub fn builder(self) -> CacheManagerBuilder {
        CacheManagerBuilder {
            config: self,
            backend: None,
            memory: None,
            #[cfg(feature = "metrics")]
            metrics: false,
        }
    }
}

impl CacheManagerBuilder {
    /// Connects to Redis at `url` (`redis://[user[:password]@]host:port/db`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.config.url = Some(url.into());
        self
    }

    /// Uses the embedded memory backend even if a Redis server is configured.
    pub fn memory(mut self) -> Self {
        self.config.url = None;
        self.config.host = None;
        self.config.port = None;
        self
    }

    /// Uses the memory backend with explicit bounds.
    pub fn memory_config(mut self, memory: MemoryConfig) -> Self {
        self.memory = Some(memory);
        self.memory()
    }

    /// Uses a backend of your own (or a shared one).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The prefix of every key (default `cache:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// The TTL of writes that use [`Ttl::Default`]; `None` = no expiry. Checked by `build()`
    /// against the range of [`crate::ttl::check`] (positive, at most 100 years; rounded up to
    /// whole milliseconds).
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.config.default_ttl = ttl;
        self
    }

    /// The value encoding.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Time allowed for one operation (default 500 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// Time allowed to connect (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Opens the circuit breaker around Redis after `failures` consecutive connection errors
    /// or timeouts, for `open_for` before a probe; `failures = 0` turns it off (default 5
    /// failures, 1 s).
    pub fn circuit_breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.config.breaker_failures = failures;
        self.config.breaker_open = open_for;
        self
    }

    /// Upper bound on connections.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// `true`: the backend records the latency, payload size and errors of every operation
    /// through the `metrics` facade (crate feature `metrics`; default `false`): it is wrapped
    /// in a [`MeteredBackend`](crate::metrics::MeteredBackend) labelled with this manager's
    /// namespace (its key prefix). That costs a clock read, a histogram sample and a boxed
    /// future per operation, so it is opt-in; the hit/miss/... counters reach the recorder
    /// through [`MetricsReporter`](crate::metrics::MetricsReporter) either way, at no cost to
    /// cache calls.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// `false` builds a disabled manager (reads miss, writes do nothing).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Builds the manager. Does not connect: Redis is reached on first use and reconnected
    /// whenever it comes back, so a service starts even while its cache is down (check with
    /// [`CacheManager::ping`] if you want to fail fast).
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid configuration or URL, or outside a tokio runtime.
    pub fn build(self) -> Result<CacheManager> {
        let config = self.config;
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "CacheManager must be built inside a tokio runtime",
            ));
        }
        let mut leases = Leases::Local;
        let mut breaker = None;
        let mut redis_config = None;
        let (backend, fast, description): (Arc<dyn Backend>, FastPath, String) = if !config.enabled
        {
            (Arc::new(NullBackend), FastPath::None, "disabled".to_owned())
        } else if let Some(backend) = self.backend {
            let name = backend.name().to_owned();
            (backend, FastPath::None, name)
        } else if let Some(url) = config.redis_url() {
            let options = RedisOptions {
                url,
                connections: config.max_connections.min(MULTIPLEXED_CONNECTIONS),
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
            };
            let redis = RedisBackend::connect_lazy(&options)?;
            redis_config = Some(config.clone());
            leases = Leases::redis(
                &options.url,
                &config.key_prefix,
                config.connect_timeout,
                config.command_timeout,
            );
            if config.breaker_failures > 0 {
                let b = Arc::new(CircuitBreaker::new(
                    Arc::new(redis.clone()),
                    BreakerPolicy::new(config.breaker_failures, config.breaker_open),
                ));
                breaker = Some(b.clone());
                (
                    b.clone() as Arc<dyn Backend>,
                    FastPath::Guarded(b, redis),
                    config.describe_backend(),
                )
            } else {
                (
                    Arc::new(redis.clone()),
                    FastPath::Redis(redis),
                    config.describe_backend(),
                )
            }
        } else {
            let memory = self.memory.unwrap_or_else(|| MemoryConfig {
                max_entries: config.memory_max_entries,
                max_bytes: config.memory_max_bytes,
                ..MemoryConfig::default()
            });
            let memory = MemoryBackend::new(memory);
            (
                Arc::new(memory.clone()),
                FastPath::Memory(memory),
                "memory".to_owned(),
            )
        };
        #[cfg(feature = "metrics")]
        let (backend, fast) = if self.metrics && config.enabled {
            let metered: Arc<dyn Backend> = Arc::new(
                crate::metrics::MeteredBackend::with_namespace(backend, &config.key_prefix),
            );
            (metered, FastPath::None)
        } else {
            (backend, fast)
        };
        Ok(CacheManager {
            inner: Arc::new(Inner {
                backend,
                fast,
                prefix_pattern: crate::glob::escape(&config.key_prefix),
                prefix: config.key_prefix,
                default_ttl: config.default_ttl.map(crate::ttl::round_up_to_millis),
                codec: config.codec,
                enabled: config.enabled,
                counters: Counters::new(),
                description,
                flights: Arc::default(),
                leases,
                breaker,
                redis_config,
            }),
        })
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
            inner: Arc::new(Inner {
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
                leases: Leases::Local,
                breaker: None,
                redis_config: None,
            }),
        }
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
        stats
    }

    /// A [`StatsPublisherBuilder`](crate::publish::StatsPublisherBuilder) for this manager's
    /// Redis server and prefix, with its timeouts, that also publishes this manager's own
    /// counters (as `manager`). Start it with `.start()`; `cachette stats` then shows the
    /// hit rates of every decorated function in every process that publishes.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the manager does not run on a Redis server it was configured
    /// with (memory backend, or a backend of your own: use
    /// [`StatsPublisher::builder`](crate::publish::StatsPublisher::builder)).
    ///
    /// # Examples
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::CacheManager::from_env()?;
    /// let publisher = cache.stats_publisher()?.start()?; // every 5 s, until dropped
    /// # drop(publisher);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats_publisher(&self) -> Result<crate::publish::StatsPublisherBuilder> {
        let config = self.inner.redis_config.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "statistics are published to Redis, and this manager does not run on one",
            )
        })?;
        Ok(config.stats_publisher()?.manager("manager", self))
    }

    /// The circuit breaker around the backend, if the manager has one (Redis built from the
    /// configuration, unless `breaker_failures` is 0).
    pub fn circuit_breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.inner.breaker.as_ref()
    }

    pub(crate) fn flights(&self) -> &Arc<Flights> {
        &self.inner.flights
    }

    pub(crate) fn leases(&self) -> &Leases {
        &self.inner.leases
    }

    /// `get` of a full key through the fastest path to the backend.
    pub(crate) async fn get_full(&self, full: &str) -> Result<Option<Bytes>> {
        self.inner.fast.get(&self.inner.backend, full).await
    }

    /// The live counters (shared by every clone of this manager).
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The full key stored in the backend for `key` (prefix included).
    pub fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.inner.prefix.len() + key.len());
        full.push_str(&self.inner.prefix);
        full.push_str(key);
        full
    }

    pub(crate) fn checked_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(Error::invalid("cache keys must not be empty"));
        }
        Ok(self.full_key(key))
    }

    /// Resolves a TTL policy against the default and applies the one TTL rule of every
    /// backend ([`crate::ttl::check`]): positive, at most [`crate::ttl::MAX_TTL`] (100 years),
    /// rounded up to whole milliseconds.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] saying what is wrong with the TTL.
    pub fn resolve_ttl(&self, ttl: impl Into<Ttl>) -> Result<Option<Duration>> {
        ttl.into()
            .resolve(self.inner.default_ttl)
            .map(|d| crate::ttl::check(d).map_err(Error::invalid))
            .transpose()
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
    /// A backend failure, or [`ErrorKind::Decode`] naming the key if the stored bytes are not a
    /// `T` (the value is left in place).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.checked_key(key)?;
        let result = match self.inner.fast.get(&self.inner.backend, &full).await {
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

    /// The raw bytes at `key` (no decoding).
    pub async fn get_raw(&self, key: &str) -> Result<Option<Bytes>> {
        let full = self.checked_key(key)?;
        let result = self
            .inner
            .fast
            .get(&self.inner.backend, &full)
            .await
            .map_err(|e| e.with_key(full));
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
    pub async fn set_raw(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let full = self.checked_key(key)?;
        let ttl = self.key_ttl(&full, ttl)?;
        self.write_raw(full, value.into(), ttl).await
    }

    async fn write_raw(&self, full: String, value: Bytes, ttl: Option<Duration>) -> Result<()> {
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
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let full = self.checked_key(key)?;
        let result = self
            .inner
            .backend
            .delete(&full)
            .await
            .map_err(|e| e.with_key(full));
        self.count(result)
    }

    /// Removes several keys; returns how many existed.
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        let full = keys
            .iter()
            .map(|k| self.checked_key(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
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
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let result = self
            .inner
            .backend
            .delete_pattern(&self.full_pattern(pattern))
            .await;
        self.count(result)
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

    /// The values of `keys`, in order (`None` for missing ones), in one round trip (`MGET`).
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
        let raw = self.count(self.inner.backend.get_many(&full).await)?;
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
        let encoded = items
            .into_iter()
            .map(|(k, v)| {
                let full = self.checked_key(k.as_ref())?;
                let bytes = self.inner.codec.encode(&full, &v)?;
                Ok((full, Bytes::from(bytes)))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = encoded.len() as u64;
        let result = self.inner.backend.set_many(&encoded, ttl).await;
        if result.is_ok() {
            self.inner.counters.write(n);
        }
        self.count(result)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
