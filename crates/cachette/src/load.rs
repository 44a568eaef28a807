//! Read-through caching: [`CacheManager::get_or_load`], the runtime that `#[cached]` expands
//! into.
//!
//! On a hit the stored value is decoded and returned; on a miss (or an undecodable value,
//! which is then overwritten) the loader runs and its `Ok` value is stored unless the filter
//! says otherwise. Cache failures follow [`LoadOptions::fallback_on_error`]: by default the
//! loader runs uncached and the failure is logged and counted; otherwise the cache error is
//! returned as [`LoadError::Cache`].

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::manager::CacheManager;
use crate::stats::Counters;
use crate::ttl::Ttl;

/// How [`CacheManager::get_or_load`] caches.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadOptions {
    /// TTL of stored values ([`Ttl::Default`] = the manager's default).
    pub ttl: Ttl,
    /// `true` (the default): a cache failure (down, timeout, undecodable value) runs the
    /// loader uncached and logs a warning. `false`: the failure is returned as
    /// [`LoadError::Cache`] (undecodable values are still treated as misses and overwritten).
    pub fallback_on_error: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            ttl: Ttl::Default,
            fallback_on_error: true,
        }
    }
}

impl LoadOptions {
    /// Default options with `ttl`.
    pub fn ttl(ttl: impl Into<Ttl>) -> Self {
        LoadOptions {
            ttl: ttl.into(),
            ..LoadOptions::default()
        }
    }

    /// Sets [`LoadOptions::fallback_on_error`].
    #[must_use]
    pub fn fallback_on_error(mut self, fallback: bool) -> Self {
        self.fallback_on_error = fallback;
        self
    }
}

/// The error of [`CacheManager::get_or_load`]: the loader's own error, or (only with
/// `fallback_on_error = false`) the cache's.
#[derive(Debug)]
pub enum LoadError<E> {
    /// The loader failed.
    Loader(E),
    /// The cache failed and the options asked for the failure.
    Cache(Error),
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Loader(e) => e.fmt(f),
            LoadError::Cache(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Loader(e) => Some(e),
            LoadError::Cache(e) => Some(e),
        }
    }
}

impl<E> LoadError<E> {
    /// Converts into the loader's error type, turning a cache error into it with `From`
    /// (what `#[cached(fallback_on_error = false)]` does for `Result<T, E>` functions).
    pub fn into_inner(self) -> E
    where
        E: From<Error>,
    {
        match self {
            LoadError::Loader(e) => e,
            LoadError::Cache(e) => E::from(e),
        }
    }
}

/// What happened on one read-through call (returned by [`CacheManager::get_or_load_traced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The value came from the cache.
    Hit,
    /// The loader ran and its value was stored.
    Miss,
    /// The loader ran and its value was not stored (the filter refused it, or it was an error).
    NotStored,
    /// The cache failed; the loader ran uncached.
    Fallback,
}

impl CacheManager {
    /// The value at `key`, or the loader's value, stored with `options.ttl`.
    ///
    /// # Examples
    /// ```
    /// use cachette::{CacheManager, LoadOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = CacheManager::memory();
    /// let opts = LoadOptions::ttl(std::time::Duration::from_secs(60));
    /// let v: u64 = cache
    ///     .get_or_load("answer", &opts, || async { Ok::<_, std::io::Error>(42) })
    ///     .await?;
    /// assert_eq!(v, 42);
    /// assert_eq!(cache.get::<u64>("answer").await?, Some(42));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The loader's error, or the cache's when `fallback_on_error` is `false`.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        options: &LoadOptions,
        load: F,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_load_traced(key, options, None, |_| true, load)
            .await
            .map(|(v, _)| v)
    }

    /// [`get_or_load`](Self::get_or_load) with a filter (`store_if(&value)` must be `true` for
    /// the value to be stored), optional per-caller counters (e.g. one decorated function's)
    /// and the [`Outcome`].
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn get_or_load_traced<T, E, F, Fut>(
        &self,
        key: &str,
        options: &LoadOptions,
        counters: Option<&Counters>,
        store_if: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<(T, Outcome), LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut fallback = false;
        match self.get_raw(key).await {
            Ok(Some(bytes)) => match self.codec().decode::<T>(key, &bytes) {
                Ok(value) => {
                    if let Some(c) = counters {
                        c.hit();
                    }
                    return Ok((value, Outcome::Hit));
                }
                Err(e) => {
                    let e = e.with_key(self.full_key(key));
                    // An undecodable value is a miss that gets overwritten below.
                    self.counters().decode_error();
                    if let Some(c) = counters {
                        c.decode_error();
                    }
                    tracing::warn!(error = %e, "cachette: treating an undecodable cached value as a miss");
                }
            },
            Ok(None) => {}
            Err(e) => {
                if let Some(c) = counters {
                    c.error();
                }
                if !options.fallback_on_error {
                    return Err(LoadError::Cache(e));
                }
                tracing::warn!(error = %e, "cachette: cache read failed; running uncached");
                fallback = true;
            }
        }
        if let Some(c) = counters {
            c.miss();
        }
        let value = load().await.map_err(LoadError::Loader)?;
        if fallback || !store_if(&value) {
            let outcome = if fallback {
                Outcome::Fallback
            } else {
                Outcome::NotStored
            };
            return Ok((value, outcome));
        }
        match self.store(key, &value, options.ttl).await {
            Ok(()) => {
                if let Some(c) = counters {
                    c.write(1);
                }
                Ok((value, Outcome::Miss))
            }
            Err(e) => {
                if let Some(c) = counters {
                    c.error();
                }
                if !options.fallback_on_error {
                    return Err(LoadError::Cache(e));
                }
                tracing::warn!(error = %e, "cachette: cache write failed; returning the uncached value");
                Ok((value, Outcome::Fallback))
            }
        }
    }

    async fn store<T: Serialize>(&self, key: &str, value: &T, ttl: Ttl) -> crate::Result<()> {
        let full = self.full_key(key);
        let bytes = self.codec().encode(&full, value)?;
        self.set_raw(key, Bytes::from(bytes), ttl).await
    }
}
