//! The storage layer: one [`Backend`] trait that speaks bytes and already-prefixed keys, and
//! its implementations.
//!
//! A backend never sees typed values or un-prefixed keys; [`crate::CacheManager`] owns
//! namespacing, TTL policy and encoding. Backends implement a tiny required core; batch and
//! pattern operations have default implementations in terms of that core which the Redis
//! backend overrides with single round trips.

pub mod breaker;
pub mod cluster;
#[cfg(test)]
pub(crate) mod faulty;
pub mod info;
pub mod memory;
#[cfg(feature = "metrics")]
pub(crate) mod metered;
pub mod near;
pub mod null;
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::info::ServerInfo;
use crate::error::Result;

pub use self::cluster::{ClusterBackend, ClusterOptions};
pub use self::memory::{MemoryBackend, MemoryConfig};
pub use self::near::{NearCacheOptions, NearStats};
pub use self::null::NullBackend;
pub use self::redis::{RedisBackend, RedisOptions};

/// How many keys one `SCAN` step asks for, and how many keys one `UNLINK` removes.
pub const SCAN_BATCH: usize = 1000;

/// The Redis a manager built from its configuration runs on, without the wrappers around it
/// (circuit breaker, layers): for the few commands the [`Backend`] trait does not name, such as
/// those on the statistics hash of `observe::publish`. A clone shares the manager's
/// connections.
#[derive(Debug, Clone)]
pub(crate) enum DirectRedis {
    /// A standalone server.
    Standalone(RedisBackend),
    /// A Redis Cluster.
    Cluster(ClusterBackend),
}

impl DirectRedis {
    /// Runs `cmd`, every key of which hashes to the slot of `key`: on the server, or on the
    /// primary that serves that slot (following `MOVED`/`ASK`, refreshing the slot map after a
    /// failover), bounded by the backend's timeouts.
    ///
    /// # Errors
    /// As the backend's single-key operations: [`ErrorKind::Connection`](crate::ErrorKind::Connection),
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout), or
    /// [`ErrorKind::Backend`](crate::ErrorKind::Backend) for the server's error reply.
    pub(crate) async fn query_on_key(
        &self,
        key: &str,
        cmd: &::redis::Cmd,
    ) -> Result<::redis::Value> {
        match self {
            DirectRedis::Standalone(redis) => redis.query(cmd).await,
            DirectRedis::Cluster(cluster) => cluster.query_on_key(key, cmd, 0).await,
        }
    }
}

/// The remaining lifetime of a key, as `TTL`/`PTTL` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTtl {
    /// The key does not exist (Redis `-2`).
    Missing,
    /// The key exists and never expires (Redis `-1`).
    Persistent,
    /// The key exists and expires after this much time.
    Expires(Duration),
}

impl KeyTtl {
    /// The remaining time, if the key exists and expires.
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            KeyTtl::Expires(d) => Some(*d),
            _ => None,
        }
    }

    /// Whether the key exists.
    pub fn exists(&self) -> bool {
        !matches!(self, KeyTtl::Missing)
    }
}

/// One step of a `SCAN` iteration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The cursor to pass to the next call; `0` means the iteration is complete.
    pub cursor: u64,
    /// Keys found in this step (full keys, prefix included). May contain keys seen before when
    /// the keyspace changes during the iteration, as with Redis.
    pub keys: Vec<String>,
    /// Keys found in this step that are not valid UTF-8 (written by another client), as raw
    /// bytes. They cannot be named through the `&str` API: [`Backend::delete_pattern`] removes
    /// them with [`Backend::delete_raw`], and [`Backend::keys`] leaves them out (with a
    /// warning). Always empty on backends whose keys are strings (memory).
    pub non_utf8_keys: Vec<Vec<u8>>,
}

/// A storage engine that cachette can run on.
///
/// Keys arrive fully prefixed; values are opaque bytes. Patterns follow Redis glob syntax
/// (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes). Implementations must be cheap to share
/// (`CacheManager` holds them in an `Arc`) and must never panic on I/O or bad data.
///
/// Only `get`, `set`, `delete_many`, `exists`, `expire`, `ttl`, `scan`, `info` and `ping` are
/// required; the rest have defaults built on them.
#[async_trait]
pub trait Backend: fmt::Debug + Send + Sync + 'static {
    /// A short name for logs and stats (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;

    /// The value stored at `key`.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Stores `value` at `key`, replacing any value and TTL; `ttl: None` stores it persistently.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;

    /// Stores `value` only if `key` does not exist; returns whether it was stored.
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool>;

    /// Removes the given keys; returns how many existed.
    async fn delete_many(&self, keys: &[String]) -> Result<u64>;

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// Sets the TTL of an existing key; returns `false` if the key does not exist.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool>;

    /// Removes the TTL of an existing key; returns `false` if it does not exist or has no TTL.
    async fn persist(&self, key: &str) -> Result<bool>;

    /// The remaining lifetime of `key`.
    async fn ttl(&self, key: &str) -> Result<KeyTtl>;

    /// One step of an incremental scan over keys matching `pattern` (start with cursor `0`).
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage>;

    /// Structured information about the server or store.
    async fn info(&self) -> Result<ServerInfo>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;

    /// Removes `key`; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self
            .delete_many(std::slice::from_ref(&key.to_owned()))
            .await?
            > 0)
    }

    /// Removes `key` only if it currently holds exactly `value` (safe lock release).
    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        match self.get(key).await? {
            Some(current) if current.as_ref() == value => self.delete(key).await,
            _ => Ok(false),
        }
    }

    /// The values of `keys`, in order, `None` for missing ones. Default: one `get` per key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Stores every item with the same TTL. Default: one `set` per item.
    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in items {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
    }

    /// Removes keys given as raw bytes (the [`ScanPage::non_utf8_keys`] of a scan); returns
    /// how many existed. Default, for backends whose keys are all strings: `Ok(0)` for no keys,
    /// an [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error otherwise.
    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        if keys.is_empty() {
            Ok(0)
        } else {
            Err(crate::error::Error::invalid(format!(
                "the {} backend has no keys that are not UTF-8",
                self.name()
            )))
        }
    }

    /// Every key matching `pattern` (full keys, deduplicated, unordered).
    ///
    /// Keys that are not valid UTF-8 (only another client can write them) are left out, since
    /// no `&str` can name them; a warning reports how many (with the first one escaped, as
    /// `redis-cli` shows it). [`delete_pattern`](Self::delete_pattern) does remove them.
    async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        let mut foreign = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            let page = self.scan(cursor, pattern, SCAN_BATCH).await?;
            seen.extend(page.keys);
            foreign.extend(page.non_utf8_keys);
            if page.cursor == 0 {
                break;
            }
            cursor = page.cursor;
        }
        if let Some(example) = foreign.iter().next() {
            tracing::warn!(
                skipped = foreign.len(),
                example = %example.escape_ascii(),
                pattern,
                "cachette: keys that are not UTF-8 match the pattern; they are not listed \
                 (delete_pattern and clear remove them)"
            );
        }
        Ok(seen.into_iter().collect())
    }

    /// Removes every key matching `pattern`, scanning incrementally and deleting in batches of
    /// at most [`SCAN_BATCH`]; returns how many keys were removed.
    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let mut removed = 0;
        let mut cursor = 0;
        loop {
            let page = self.scan(cursor, pattern, SCAN_BATCH).await?;
            for chunk in page.keys.chunks(SCAN_BATCH) {
                removed += self.delete_many(chunk).await?;
            }
            for chunk in page.non_utf8_keys.chunks(SCAN_BATCH) {
                removed += self.delete_raw(chunk).await?;
            }
            if page.cursor == 0 {
                break;
            }
            cursor = page.cursor;
        }
        Ok(removed)
    }
}

/// A shared backend is a backend (every method forwards, overrides included).
#[async_trait]
impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        (**self).set(key, value, ttl).await
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        (**self).set_nx(key, value, ttl).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        (**self).delete_many(keys).await
    }
    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        (**self).delete_raw(keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        (**self).exists(key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        (**self).expire(key, ttl).await
    }
    async fn persist(&self, key: &str) -> Result<bool> {
        (**self).persist(key).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        (**self).ttl(key).await
    }
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        (**self).scan(cursor, pattern, count).await
    }
    async fn info(&self) -> Result<ServerInfo> {
        (**self).info().await
    }
    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }
    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        (**self).delete_if_equals(key, value).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        (**self).get_many(keys).await
    }
    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        (**self).set_many(items, ttl).await
    }
    async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        (**self).keys(pattern).await
    }
    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        (**self).delete_pattern(pattern).await
    }
}
