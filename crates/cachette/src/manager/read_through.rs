//! The read-through face of [`CacheManager`]: `get_or_load` and its siblings, which run the
//! machinery of [`crate::load`] on the manager's shared state.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::CacheManager;
use crate::load::coalesce::Handoff;
use crate::load::leader::Begin;
use crate::load::read_through::{First, TypedHit};
use crate::load::{LoadError, LoadKey, LoadOptions, Outcome};
use crate::stats::Counters;

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
    /// # Concurrent calls on the same key
    ///
    /// Concurrent misses of one key run the loader once (unless `options.coalesce` is off);
    /// the other callers get its value, decoded from the bytes it stored, so `T` need not be
    /// `Clone`. If that loader fails, they get its failure as [`LoadError::Cache`] of kind
    /// [`ErrorKind::Loader`](crate::ErrorKind::Loader) (or their stale copy). With `options.lock` the same holds across
    /// processes.
    ///
    /// # Writes and evictions during a load
    ///
    /// A load that started before a [`set`](Self::set), [`delete`](Self::delete),
    /// [`delete_many`](Self::delete_many), [`delete_pattern`](Self::delete_pattern),
    /// [`clear`](Self::clear) (or `#[cache_put]`/`#[cache_evict]`) of the key through this
    /// manager is superseded: its callers get the loaded value ([`Outcome::NotStored`]), but
    /// it is not stored, so the write wins. With `options.lock`, an eviction in any manager or
    /// process sharing the backend supersedes it too (the eviction removes the key's lease
    /// first; the load, after storing, finds its lease gone and removes its value, so the old
    /// value is readable for at most that round trip). Without `lock`, a load in another
    /// process is not superseded: it can store a value it loaded before the eviction up to its
    /// loader time later. On a backend others can share (Redis, or one given to the builder),
    /// this costs an eviction one more round trip (one more scan for `delete_pattern`).
    ///
    /// # Cancellation
    ///
    /// Dropping the call is safe at any point. If it was running the loader for others, one
    /// of them takes over; its lease, if any, is released in the background.
    ///
    /// # Panics
    ///
    /// A panic in the loader is caught long enough to tell the waiting callers (who get an
    /// [`ErrorKind::Loader`](crate::ErrorKind::Loader) error; the next call runs the loader again) and then resumed in
    /// this caller.
    ///
    /// # Errors
    /// The loader's error, or the cache's when `fallback_on_error` is `false`, or see
    /// [`LoadError::Cache`].
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
    /// The loader runs in this caller's task: an early refresh makes this caller (one caller
    /// per refresh) wait for the new value, and with a soft timeout this caller waits for its
    /// own loader up to the hard timeout while the other callers get the stale copy.
    /// [`get_or_load_shared`](Self::get_or_load_shared) runs the loader in a spawned task
    /// instead, so that no caller waits in those cases.
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
    ///
    /// # Tracing
    /// Each call runs in a `debug` span `cachette.load` with the fields `namespace` (the key
    /// prefix), `key` (without the prefix), `module` and `function` (for `#[cached]` calls)
    /// and `outcome` ([`Outcome::as_str`], or `loader_error` / `cache_error`), recorded when
    /// the call ends. With no subscriber
    /// interested, the span costs a check of a cached flag.
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
        self.get_or_load_as(
            None,
            LoadKey::Key(key),
            Begin::Read(None),
            options,
            counters,
            None,
            store_if,
            load,
        )
        .await
    }

    /// [`get_or_load_traced`](Self::get_or_load_traced) on behalf of a decorated function
    /// (`module::name`, recorded in the span as `function`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn get_or_load_as<T, E, F, Fut>(
        &self,
        function: Option<(&'static str, &'static str)>,
        key: LoadKey<'_>,
        first: Begin<T>,
        options: &LoadOptions,
        counters: Option<&Counters>,
        handoff: Option<&Handoff>,
        store_if: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<(T, Outcome), LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.inner
            .get_or_load_as(
                function, key, first, options, counters, handoff, store_if, load,
            )
            .await
    }

    /// The hit-only path of a decorated call (see `State::read_first`), served from the near
    /// cache's decoded copies with `typed`.
    pub(crate) async fn read_first<T: DeserializeOwned>(
        &self,
        full: &str,
        options: &LoadOptions,
        counters: Option<&Counters>,
        typed: Option<TypedHit<T>>,
    ) -> First<T> {
        self.inner.read_first(full, options, counters, typed).await
    }

    /// A decorated call's typed hit without awaiting (see `State::hit_now`).
    #[inline]
    pub(crate) fn hit_now<T>(
        &self,
        full: &str,
        options: &LoadOptions,
        counters: &Counters,
        typed: TypedHit<T>,
    ) -> Option<T> {
        self.inner.hit_now(full, options, counters, typed)
    }

    /// [`get_or_load`](Self::get_or_load) with the loader run in a spawned task, so that no
    /// caller waits for work that others can be spared:
    ///
    /// - an early refresh (XFetch) runs in the background while every caller, including the
    ///   one that started it, gets the cached value;
    /// - with a stale copy and a soft timeout, every caller (including the one that started
    ///   the reload) gets the stale copy after the soft timeout, and the reload goes on in the
    ///   background and stores its value when it finishes (bounded by the hard timeout);
    /// - the load survives the cancellation of the call that started it.
    ///
    /// The price is the `Send + 'static` bounds. A panic in the loader is resumed in the
    /// caller that started it, if that caller is still waiting.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use cachette::{CacheManager, LoadOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = CacheManager::memory();
    /// let opts = LoadOptions::ttl(Duration::from_secs(60))
    ///     .stale_ttl(Duration::from_secs(600))
    ///     .soft_timeout(Duration::from_millis(100));
    /// let v: String = cache
    ///     .get_or_load_shared("greeting", &opts, || async { Ok::<_, std::io::Error>("hi".to_owned()) })
    ///     .await?;
    /// assert_eq!(v, "hi");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn get_or_load_shared<T, E, F, Fut>(
        &self,
        key: &str,
        options: &LoadOptions,
        load: F,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.inner.get_or_load_shared(key, options, load).await
    }

    /// How many keys are being loaded right now by coalesced read-through calls of this
    /// manager (a diagnostic: it returns to 0 once every load has ended, however it ended).
    pub fn loads_in_flight(&self) -> usize {
        self.inner.flights().len()
    }
}
