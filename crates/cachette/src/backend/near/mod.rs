//! The near cache: an in-process tier in front of Redis, kept coherent by the server.
//!
//! `NearBackend` is a backend wrapper. A read is served from the tier (`tier.rs`) when
//! the tier holds the key and its invalidation channels vouch for it (see
//! `tracking.rs`; one channel for a standalone server or the primary Sentinel names, one per
//! primary on a cluster, see `cluster.rs`); otherwise it reads the value and its remaining TTL
//! from Redis in one round trip (`GET` + `PTTL`, pipelined) and offers the reply to the tier, which keeps
//! it no longer than its TTL at the server (and the configured cap). Every write and eviction
//! through this backend forgets the key locally before it returns; writes by anyone else reach
//! the tier through the channel.
//!
//! What a reader can see, in one rule: **a read never returns a value older than the last
//! write that completed [`NearCacheOptions::max_staleness`] before the read began** (in
//! practice the server's invalidation arrives within a round trip). The tier serves nothing
//! while its channel is down, and is flushed whenever the channel drops, reconnects, or
//! announces a `FLUSHALL`/`FLUSHDB`.
//!
//! Lease and metadata keys (`…#lock{T}`, `…#meta{T}`, see [`crate::key::companion_key`]) and
//! missing keys are never held in the tier.

mod cluster;
pub(crate) mod tier;
pub(crate) mod tracking;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::join_all;
use tokio::time::Instant;

pub(crate) use self::tier::Shared;
use self::tier::{Tier, TierBounds};
use self::tracking::{ChannelOptions, Liveness, Target};
use super::breaker::CircuitBreaker;
use super::info::ServerInfo;
use super::redis::endpoint::RedisEndpoint;
use super::{Backend, ClusterBackend, KeyTtl, RedisBackend, ScanPage};
use crate::error::{Error, ErrorKind, Result};

/// Settings of the near cache (off unless given to
/// [`CacheManagerBuilder::near_cache`](crate::CacheManagerBuilder::near_cache) or configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearCacheOptions {
    /// Most entries held (default 10 000).
    pub max_entries: usize,
    /// Most bytes held, keys and values (default 64 MiB).
    pub max_bytes: usize,
    /// The longest an entry is held, whatever its TTL at the server (default: no cap; an entry
    /// never outlives its TTL at the server).
    pub max_ttl: Option<Duration>,
    /// How much older than the newest completed write a hit may be, at most (default 1 s,
    /// at least 2 heartbeats of 100 ms). In practice an invalidation arrives within a round
    /// trip; this bound holds when the channel stalls or the process is starved.
    pub max_staleness: Duration,
}

impl Default for NearCacheOptions {
    fn default() -> Self {
        NearCacheOptions {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            max_ttl: None,
            max_staleness: Duration::from_secs(1),
        }
    }
}

impl NearCacheOptions {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the setting.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::new(ErrorKind::Config, what.to_owned()));
        if self.max_entries == 0 {
            return bad("near_cache.max_entries must be at least 1");
        }
        if self.max_bytes == 0 {
            return bad("near_cache.max_bytes must be at least 1");
        }
        if self.max_ttl == Some(Duration::ZERO) {
            return bad("near_cache.max_ttl must be positive");
        }
        if self.max_staleness < 2 * tracking::HEARTBEAT {
            return bad("near_cache.max_staleness must be at least 200 ms (two heartbeats)");
        }
        Ok(())
    }
}

/// A snapshot of a near cache's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct NearStats {
    /// Reads answered by the tier.
    pub hits: u64,
    /// Reads the tier could not answer (they went to Redis).
    pub misses: u64,
    /// Keys forgotten because they changed (here or, through the server, elsewhere).
    pub invalidations: u64,
    /// Times the whole tier was emptied (channel lost, `FLUSHALL`, pattern deletions).
    pub flushes: u64,
    /// Replies not kept because their key changed while they were on the way.
    pub discarded: u64,
    /// Entries evicted to respect the bounds.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (keys and values).
    pub bytes: u64,
    /// Whether the invalidation channel vouches for the tier right now.
    pub live: bool,
    /// Whether the server refused the invalidation channel at the last attempt (an ACL
    /// without `HELLO` or `CLIENT TRACKING`, a server before Redis 6, a provider that
    /// disables tracking): the tier then stays off and every read goes to Redis; the reason is
    /// logged once at `WARN`. The channel keeps trying, with back-off.
    pub refused: bool,
}

/// The Redis a near cache sits in front of.
pub(crate) enum Upstream {
    /// A standalone server, or the primary the sentinels name (`backend` was built by
    /// `RedisBackend::connect_sentinel`; `endpoint` then has the primary's settings but not its
    /// address).
    Redis {
        backend: RedisBackend,
        endpoint: RedisEndpoint,
    },
    /// A Redis Cluster: one invalidation channel per primary (see `cluster.rs`).
    Cluster(ClusterBackend),
}

/// The near-cache wrapper around a Redis backend.
pub(crate) struct NearBackend {
    /// The backend behind the tier (Redis, behind its breaker): every other operation.
    inner: Arc<dyn Backend>,
    /// The same Redis without wrappers, for the `GET` + `PTTL` of a miss (one round trip).
    source: Source,
    breaker: Option<Arc<CircuitBreaker>>,
    tier: Arc<Tier>,
    liveness: Arc<Liveness>,
}

impl fmt::Debug for NearBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearBackend")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Where a miss reads.
enum Source {
    Redis(RedisBackend),
    Cluster(ClusterBackend),
}

/// Lease and metadata keys end in `#lock{T}` / `#meta{T}`.
fn is_companion(key: &str) -> bool {
    key.ends_with('}')
        && key
            .rfind('#')
            .is_some_and(|i| key[i..].starts_with("#lock{") || key[i..].starts_with("#meta{"))
}

impl NearBackend {
    /// Wraps `inner` (which must be `upstream`, possibly behind `breaker`) and starts the
    /// invalidation channels of `upstream` for keys under `prefix`. Must be called inside a
    /// tokio runtime.
    pub(crate) fn new(
        inner: Arc<dyn Backend>,
        upstream: Upstream,
        breaker: Option<Arc<CircuitBreaker>>,
        prefix: String,
        options: NearCacheOptions,
        timeouts: (Duration, Duration),
    ) -> Result<NearBackend> {
        options.check()?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "the near cache must be built inside a tokio runtime",
            )
        })?;
        let tier = Arc::new(Tier::new(TierBounds {
            max_entries: options.max_entries,
            max_bytes: options.max_bytes,
            max_ttl: options.max_ttl,
        }));
        let liveness = Arc::new(Liveness::new());
        let channel = ChannelOptions {
            prefix,
            connect_timeout: timeouts.0,
            command_timeout: timeouts.1,
            max_staleness: options.max_staleness,
            flush_on_start: false,
        };
        let source = match upstream {
            Upstream::Redis { backend, endpoint } => {
                let target = match backend.sentinels() {
                    Some(sentinels) => Target::Sentinel(sentinels),
                    None => Target::Fixed(endpoint),
                };
                let id = liveness.join(None);
                handle.spawn(tracking::run(
                    Arc::downgrade(&tier),
                    Arc::downgrade(&liveness),
                    id,
                    target,
                    channel,
                ));
                Source::Redis(backend)
            }
            Upstream::Cluster(cluster) => {
                handle.spawn(cluster::follow(
                    cluster.clone(),
                    Arc::downgrade(&tier),
                    Arc::downgrade(&liveness),
                    ChannelOptions {
                        flush_on_start: true,
                        ..channel
                    },
                ));
                Source::Cluster(cluster)
            }
        };
        Ok(NearBackend {
            inner,
            source,
            breaker,
            tier,
            liveness,
        })
    }

    /// The counters and sizes of the tier.
    pub(crate) fn stats(&self) -> NearStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.tier.counters;
        let (entries, bytes) = self.tier.size();
        NearStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
            flushes: c.flushes.load(Relaxed),
            discarded: c.discarded.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            entries: entries as u64,
            bytes: bytes as u64,
            live: self.liveness.is_live(),
            refused: self.liveness.is_refused(),
        }
    }

    /// Whether the tier may be used for `key` now.
    #[inline]
    fn serves(&self, key: &str) -> bool {
        self.serves_at(key, Instant::now())
    }

    /// Whether the tier may be used for `key` at `now` (the clock read already: a hit reads
    /// it once, for this and for the entry's expiry).
    #[inline]
    fn serves_at(&self, key: &str, now: Instant) -> bool {
        self.liveness.is_live_at(now) && !is_companion(key)
    }

    /// `GET key`: from the tier, or from Redis (offering the reply to the tier).
    pub(crate) async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        match self.hit(key) {
            Some(value) => {
                // A hit never waits: spend tokio's budget now and then, so a loop of hits
                // still lets the channel's heartbeat (and everything else) run.
                crate::backend::memory::cooperate().await;
                Ok(Some(value))
            }
            None => self.miss(key).await,
        }
    }

    /// The tier's value of `key`, if it may serve it now (no I/O, no await).
    #[inline]
    pub(crate) fn hit(&self, key: &str) -> Option<Bytes> {
        let now = Instant::now();
        if self.serves_at(key, now) {
            self.tier.get_at(key, now)
        } else {
            None
        }
    }

    /// The tier's value of `key` for a typed read, if it may serve it now (no I/O, no await).
    #[inline]
    pub(crate) fn hit_shared<T: std::any::Any + Send + Sync>(&self, key: &str) -> Shared<T> {
        let now = Instant::now();
        if self.serves_at(key, now) {
            self.tier.get_shared(key, now)
        } else {
            Shared::Missing
        }
    }

    /// A clone of the tier's copy of `key` decoded as `T`, if it may serve it now and a typed
    /// read kept one (a hit); else `None`, not counted (no I/O, no await).
    #[inline]
    pub(crate) fn hit_cloned<T: std::any::Any + Send + Sync + Clone>(
        &self,
        key: &str,
    ) -> Option<T> {
        let now = Instant::now();
        if self.serves_at(key, now) {
            self.tier
                .get_decoded::<T>(key, now)
                .map(|value| T::clone(&value))
        } else {
            None
        }
    }

    /// Keeps `decoded`, the value `bytes` of `key` decoded, for the next typed reads (when the
    /// tier still holds exactly these bytes).
    pub(crate) fn attach<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        bytes: &Bytes,
        decoded: Arc<T>,
    ) {
        if self.serves(key) {
            self.tier.attach(key, bytes, decoded);
        }
    }

    /// A read the tier did not answer ([`hit`](Self::hit) returned `None`): from Redis,
    /// offering the reply to the tier when it may keep it.
    pub(crate) async fn miss(&self, key: &str) -> Result<Option<Bytes>> {
        if !self.serves(key) {
            return self.inner.get(key).await;
        }
        let fetch = self.tier.begin(key);
        let (value, ttl, from) = self.guarded(self.read(key)).await?;
        let value = value.map(Bytes::from);
        if let (Some(v), Some(ttl)) = (&value, remaining(ttl)) {
            if self.liveness.covers(from.as_deref()) {
                self.tier.complete(fetch, v, ttl);
            }
        }
        Ok(value)
    }

    /// `GET` and `PTTL` of `key` in one round trip, and the cluster node that answered.
    async fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, i64, Option<String>)> {
        match &self.source {
            Source::Redis(redis) => {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
                let (value, ttl) = redis.pipeline(&pipe, 0).await?;
                Ok((value, ttl, None))
            }
            Source::Cluster(cluster) => {
                let (value, ttl, from) = cluster.get_with_ttl(key).await?;
                Ok((value, ttl, Some(from)))
            }
        }
    }

    /// `op` (a call to the source) through the breaker, if there is one.
    async fn guarded<T>(&self, op: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match &self.breaker {
            Some(b) if b.is_closed() => {
                let result = op.await;
                b.record_closed(&result);
                result
            }
            Some(b) => b.guard(op).await,
            None => op.await,
        }
    }

    fn forget(&self, key: &str) {
        self.tier.invalidate(key);
    }

    fn forget_all(&self, keys: &[String]) {
        for key in keys {
            self.tier.invalidate(key);
        }
    }
}

/// A `PTTL` reply as the tier's TTL: `Some(None)` no expiry, `Some(Some(d))` expires in `d`,
/// `None` the key is gone.
fn remaining(pttl: i64) -> Option<Option<Duration>> {
    match pttl {
        -1 => Some(None),
        ms if ms > 0 => Some(Some(Duration::from_millis(ms.unsigned_abs()))),
        _ => None,
    }
}

#[async_trait]
impl Backend for NearBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_value(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if !self.liveness.is_live() {
            return self.inner.get_many(keys).await;
        }
        let mut out: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let hit = if is_companion(key) {
                None
            } else {
                self.tier.get(key)
            };
            if hit.is_none() {
                missing.push(i);
            }
            out.push(hit);
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let redis = match &self.source {
            Source::Redis(redis) => redis,
            Source::Cluster(_) => {
                // Each key from its own node (concurrent reads share the nodes' connections).
                let reads = missing.iter().map(|&i| self.miss(&keys[i]));
                for (&i, value) in missing.iter().zip(join_all(reads).await) {
                    out[i] = value?;
                }
                return Ok(out);
            }
        };
        let fetches: Vec<_> = missing.iter().map(|&i| self.tier.begin(&keys[i])).collect();
        let mut pipe = redis::pipe();
        for &i in &missing {
            pipe.cmd("GET").arg(&keys[i]).cmd("PTTL").arg(&keys[i]);
        }
        let replies: Vec<redis::Value> = self.guarded(redis.pipeline(&pipe, 0)).await?;
        if replies.len() != 2 * missing.len() {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "GET/PTTL pipeline returned {} replies for {} keys",
                    replies.len(),
                    missing.len()
                ),
            ));
        }
        let mut replies = replies.into_iter();
        for (&i, fetch) in missing.iter().zip(fetches) {
            let (Some(value), Some(ttl)) = (replies.next(), replies.next()) else {
                break;
            };
            let value: Option<Vec<u8>> = redis::FromRedisValue::from_redis_value(value)
                .map_err(|e| Error::from(redis::RedisError::from(e)))?;
            let ttl: i64 = redis::FromRedisValue::from_redis_value(ttl)
                .map_err(|e| Error::from(redis::RedisError::from(e)))?;
            let value = value.map(Bytes::from);
            if let (Some(v), Some(ttl)) = (&value, remaining(ttl)) {
                if !is_companion(&keys[i]) {
                    self.tier.complete(fetch, v, ttl);
                }
            }
            out[i] = value;
        }
        Ok(out)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let result = self.inner.set(key, value, ttl).await;
        self.forget(key);
        result
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let result = self.inner.set_nx(key, value, ttl).await;
        self.forget(key);
        result
    }

    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        let result = self.inner.set_many(items, ttl).await;
        for (key, _) in items {
            self.forget(key);
        }
        result
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let result = self.inner.delete(key).await;
        self.forget(key);
        result
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        let result = self.inner.delete_many(keys).await;
        self.forget_all(keys);
        result
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let result = self.inner.delete_if_equals(key, value).await;
        self.forget(key);
        result
    }

    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        // Keys that are not UTF-8 are never in the tier.
        self.inner.delete_raw(keys).await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let result = self.inner.delete_pattern(pattern).await;
        self.tier.flush();
        result
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let result = self.inner.expire(key, ttl).await;
        self.forget(key);
        result
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        let result = self.inner.persist(key).await;
        self.forget(key);
        result
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.inner.ttl(key).await
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        self.inner.scan(cursor, pattern, count).await
    }

    async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        self.inner.keys(pattern).await
    }

    async fn info(&self) -> Result<ServerInfo> {
        self.inner.info().await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_keys_are_recognised() {
        assert!(is_companion(&crate::key::companion_key("cache:a", "#lock")));
        assert!(is_companion(&crate::key::companion_key(
            "cache:{u}b",
            "#meta"
        )));
        assert!(!is_companion("cache:a"));
        assert!(!is_companion("cache:#lock"));
        assert!(!is_companion("cache:{x}"));
        assert!(!is_companion("cache:#other{x}"));
    }

    #[test]
    fn pttl_replies_become_tier_ttls() {
        assert_eq!(remaining(-2), None);
        assert_eq!(remaining(0), None);
        assert_eq!(remaining(-1), Some(None));
        assert_eq!(remaining(1500), Some(Some(Duration::from_millis(1500))));
    }

    #[test]
    fn options_are_checked_naming_the_setting() {
        assert!(NearCacheOptions::default().check().is_ok());
        for (bad, field) in [
            (
                NearCacheOptions {
                    max_entries: 0,
                    ..Default::default()
                },
                "max_entries",
            ),
            (
                NearCacheOptions {
                    max_bytes: 0,
                    ..Default::default()
                },
                "max_bytes",
            ),
            (
                NearCacheOptions {
                    max_ttl: Some(Duration::ZERO),
                    ..Default::default()
                },
                "max_ttl",
            ),
            (
                NearCacheOptions {
                    max_staleness: Duration::from_millis(199),
                    ..Default::default()
                },
                "max_staleness",
            ),
        ] {
            let e = bad.check().expect_err(field);
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
