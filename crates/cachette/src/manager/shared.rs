//! Typed hits: [`CacheManager::get_shared`], a read that hands out one decoded value shared
//! by every reader, kept with the near cache's entry so that a hit decodes nothing.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::CacheManager;
use crate::backend::memory::MemoryBackend;
use crate::backend::near::{NearBackend, Shared};
use crate::error::{Error, Result};
use crate::load::state::FastPath;
use crate::load::tags::is_marked;

/// Keys up to this long (prefix included) are looked up in the tier without an allocation.
const STACK_KEY: usize = 192;

/// Runs `f` on `prefix` + `key`, built on the stack when it is short.
#[inline]
fn with_full_key<R>(prefix: &str, key: &str, f: impl FnOnce(&str) -> R) -> R {
    let len = prefix.len() + key.len();
    if len <= STACK_KEY {
        let mut buf = [0u8; STACK_KEY];
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        buf[prefix.len()..len].copy_from_slice(key.as_bytes());
        // Two `str`s end to end are UTF-8: this never fails.
        if let Ok(full) = std::str::from_utf8(&buf[..len]) {
            return f(full);
        }
    }
    let mut full = String::with_capacity(len);
    full.push_str(prefix);
    full.push_str(key);
    f(&full)
}

impl CacheManager {
    /// The value at `key`, decoded as `T` and shared: with a near cache
    /// ([`CacheManagerBuilder::near_cache`](crate::CacheManagerBuilder::near_cache)) or on the
    /// built-in memory backend (the embedded default), the first read of an entry decodes it
    /// and keeps the result beside the entry, and every later hit hands out the same `Arc<T>`
    /// without decoding (one type per entry: reading a key as another type decodes again and
    /// replaces it). The decoded value goes with its entry (any write of the key drops it), so
    /// it follows the same rules as [`get`](Self::get). On other backends (or with
    /// [`wrap_backend`](crate::CacheManagerBuilder::wrap_backend) layers) it is
    /// [`get`](Self::get) wrapped in an `Arc`.
    ///
    /// Counted like [`get`](Self::get) (a hit when the key holds a value).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// # Examples
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::CacheManager::builder()
    ///     .url("redis://127.0.0.1:6379/0")
    ///     .near_cache(Some(cachette::NearCacheOptions::default()))
    ///     .build()?;
    /// let user: Option<std::sync::Arc<serde_json::Value>> = cache.get_shared("user:1").await?;
    /// # let _ = user;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let tier = match &self.inner.fast {
            FastPath::Near(near) => Tier::Near(near),
            FastPath::Memory(memory) => Tier::Memory(memory),
            _ => return self.get::<T>(key).await.map(|v| v.map(Arc::new)),
        };
        if key.is_empty() {
            return self.count(Err(Error::invalid("cache keys must not be empty")));
        }
        let found = with_full_key(&self.inner.prefix, key, |full| tier.lookup::<T>(full));
        if !(matches!(found, Shared::Missing) && matches!(tier, Tier::Near(_))) {
            // A hit (or a memory read) never waits: spend tokio's budget now and then (see
            // `get`).
            crate::backend::memory::cooperate().await;
        }
        let result = match found {
            Shared::Decoded(value) => {
                self.inner.counters.hit();
                return Ok(Some(value));
            }
            // A tagged value: checked against its tags, never attached (see `load::tags`).
            Shared::Encoded(bytes) if is_marked(&bytes) => {
                let full = self.inner.full_key(key);
                Box::pin(self.shared_tagged(&full, bytes)).await
            }
            Shared::Encoded(bytes) => {
                self.inner.counters.hit();
                let full = self.inner.full_key(key);
                self.share(tier, &full, &bytes).map(Some)
            }
            Shared::Missing => {
                let full = self.inner.full_key(key);
                let read = match tier {
                    Tier::Near(near) => near.miss(&full).await,
                    // The memory backend answered already.
                    Tier::Memory(_) => Ok(None),
                };
                match read {
                    Ok(Some(bytes)) if is_marked(&bytes) => {
                        Box::pin(self.shared_tagged(&full, bytes)).await
                    }
                    Ok(Some(bytes)) => {
                        self.inner.counters.hit();
                        self.share(tier, &full, &bytes).map(Some)
                    }
                    Ok(None) => {
                        self.inner.counters.miss();
                        Ok(None)
                    }
                    Err(e) => Err(e.with_key(full)),
                }
            }
        };
        self.count(result)
    }

    /// The value at `key` as an owned `T`: [`get_shared`](Self::get_shared) and a clone, so a
    /// near-cache or memory hit clones the value decoded once instead of decoding it again (for
    /// a `T` whose clone is cheaper than its decoding). On other backends it is
    /// [`get`](Self::get).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_cloned<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if !matches!(self.inner.fast, FastPath::Near(_) | FastPath::Memory(_)) {
            return self.get::<T>(key).await;
        }
        Ok(self.get_shared::<T>(key).await?.map(|v| (*v).clone()))
    }

    /// Decodes `bytes` (the value of `full`) and keeps the result with its entry.
    fn share<T>(&self, tier: Tier<'_>, full: &str, bytes: &Bytes) -> Result<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let value = Arc::new(self.inner.codec.decode::<T>(full, bytes)?);
        match tier {
            Tier::Near(near) => near.attach(full, bytes, value.clone()),
            Tier::Memory(memory) => memory.attach(full, bytes, value.clone()),
        }
        Ok(value)
    }
}

/// Where a typed read finds the decoded copy kept with an entry.
#[derive(Clone, Copy)]
enum Tier<'a> {
    Near(&'a NearBackend),
    Memory(&'a MemoryBackend),
}

impl Tier<'_> {
    fn lookup<T: std::any::Any + Send + Sync>(self, full: &str) -> Shared<T> {
        match self {
            Tier::Near(near) => near.hit_shared::<T>(full),
            Tier::Memory(memory) => memory.hit_shared::<T>(full),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_keys_are_the_same_on_the_stack_and_off_it() {
        let long = "k".repeat(STACK_KEY);
        for (prefix, key) in [("cache:", "a"), ("", "é"), ("p:", long.as_str()), ("", "")] {
            let expected = format!("{prefix}{key}");
            with_full_key(prefix, key, |full| assert_eq!(full, expected));
        }
    }
}
