//! The state every clone of a [`CacheManager`](crate::CacheManager) shares, and the
//! byte-level operations the read-through runs on: the backend (with its unboxed fast path),
//! namespacing, the codec, the TTL rule, counters, and the registries of stampede control
//! (flights in coalescing, fills in flight, leases). The manager is a typed face over it; the
//! read-through in this folder works on it directly, so it never names the manager.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::breaker::CircuitBreaker;
use crate::backend::near::NearBackend;
use crate::backend::{Backend, DirectRedis, MemoryBackend, RedisBackend};
use crate::codec::Codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::load::coalesce::Flights;
use crate::load::fills::Fills;
use crate::load::lease::Leases;
use crate::stats::Counters;
use crate::ttl::Ttl;

pub(crate) struct State {
    pub(crate) backend: Arc<dyn Backend>,
    /// The built-in backends again, for a `get` that does not box its future.
    pub(crate) fast: FastPath,
    pub(crate) prefix: String,
    pub(crate) prefix_pattern: String,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) codec: Codec,
    pub(crate) enabled: bool,
    pub(crate) counters: Counters,
    pub(crate) description: String,
    /// Keys being loaded right now (request coalescing; touched only on misses).
    pub(crate) flights: Arc<Flights>,
    /// Read-through fills in flight, superseded by writes and evictions of their key.
    pub(crate) fills: Fills,
    /// Whether other managers or processes can write this backend (Redis, or a backend given
    /// to the builder): evictions then also remove leases (see `supersede`).
    pub(crate) shared_backend: bool,
    /// Cross-process leases and their wake-ups.
    pub(crate) leases: Leases,
    /// The breaker around the backend, when there is one.
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
    /// The configuration, when the manager runs on the Redis server or cluster it names (for
    /// [`CacheManager::stats_publisher`]); set together with `direct`.
    pub(crate) redis_config: Option<Config>,
    /// That server or cluster without the wrappers around it, for the commands the backend
    /// trait does not name (the statistics hash).
    pub(crate) direct: Option<DirectRedis>,
    /// [`Config::max_value_bytes`], checked before every write.
    pub(crate) max_value_bytes: usize,
    /// The near cache in front of Redis, when there is one (for its statistics).
    pub(crate) near: Option<Arc<NearBackend>>,
}

pub(crate) enum FastPath {
    Memory(MemoryBackend),
    Redis(RedisBackend),
    /// Redis behind the circuit breaker.
    Guarded(Arc<CircuitBreaker>, RedisBackend),
    /// Redis behind the near cache (and the breaker, if any).
    Near(Arc<NearBackend>),
    None,
}

impl FastPath {
    pub(crate) async fn get(&self, backend: &Arc<dyn Backend>, key: &str) -> Result<Option<Bytes>> {
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
            // A hit completes without awaiting; a miss (a round trip anyway) is boxed out of
            // line so the hit path's future stays small.
            FastPath::Near(n) => match n.hit(key) {
                Some(value) => {
                    // Like a memory read: never waits, so spend tokio's budget now and then.
                    crate::backend::memory::cooperate().await;
                    Ok(Some(value))
                }
                None => Box::pin(n.miss(key)).await,
            },
            FastPath::None => backend.get(key).await,
        }
    }
}

impl State {
    pub(crate) fn flights(&self) -> &Arc<Flights> {
        &self.flights
    }
    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }
    pub(crate) fn fills(&self) -> &Fills {
        &self.fills
    }
    /// `get` of a full key through the fastest path to the backend.
    pub(crate) async fn get_full(&self, full: &str) -> Result<Option<Bytes>> {
        self.fast.get(&self.backend, full).await
    }
    /// Refuses a value larger than [`Config::max_value_bytes`] before it is sent: an
    /// [`ErrorKind::InvalidInput`] error naming the key and both sizes.
    pub(crate) fn check_value_size(&self, full: &str, len: usize) -> Result<()> {
        let max = self.max_value_bytes;
        if len > max {
            return Err(Error::invalid(format!(
                "value of {len} bytes is larger than max_value_bytes ({max} bytes)"
            ))
            .with_key(full));
        }
        Ok(())
    }
    pub(crate) fn checked_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(Error::invalid("cache keys must not be empty"));
        }
        Ok(self.full_key(key))
    }
    /// The live counters (shared by every clone of this manager).
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
    /// The full key stored in the backend for `key` (prefix included).
    pub(crate) fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }
    /// Resolves a TTL policy against the default and applies the one TTL rule of every
    /// backend ([`crate::ttl::check`]): positive, at most [`crate::ttl::MAX_TTL`] (100 years),
    /// rounded up to whole milliseconds.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] saying what is wrong with the TTL.
    pub(crate) fn resolve_ttl(&self, ttl: impl Into<Ttl>) -> Result<Option<Duration>> {
        ttl.into()
            .resolve(self.default_ttl)
            .map(|d| crate::ttl::check(d).map_err(Error::invalid))
            .transpose()
    }

    /// The value encoding.
    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// The backend (behind its wrappers).
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}
