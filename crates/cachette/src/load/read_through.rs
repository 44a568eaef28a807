//! Read-through caching: [`CacheManager::get_or_load`](crate::CacheManager::get_or_load), the runtime that `#[cached]` expands
//! into, with stampede control.
//!
//! On a hit the stored value is decoded and returned; on a miss (or an undecodable value,
//! which is then overwritten) the loader runs and its `Ok` value is stored unless the filter
//! says otherwise. Cache failures follow [`LoadOptions::fallback_on_error`]: by default the
//! loader runs uncached and the failure is logged and counted; otherwise the cache error is
//! returned as [`LoadError::Cache`].
//!
//! On top of that, every option below is per call ([`LoadOptions`]):
//!
//! - **coalescing** (on by default): concurrent misses of one key in one manager run the
//!   loader once; the others wait for it and decode its result;
//! - **`lock`**: the same across processes, through a lease in the backend;
//! - **`early_refresh(beta)`**: XFetch, one caller refreshes shortly before expiry while the
//!   others keep getting the cached value;
//! - **`stale_ttl`**, **`soft_timeout`**, **`hard_timeout`**: a stale copy is served when the
//!   loader fails or is too slow;
//! - **`jitter_percent`**: TTLs shortened at random so that keys written together do not
//!   expire together.
//!
//! A hit costs one `GET` (one `MGET` of the value and its metadata with early refresh or
//! stale copies) and touches none of the coalescing state.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::error::Error;
use crate::load::coalesce::{Handoff, Join, Shared};
use crate::load::leader::{finish, Begin, Call, Read};
use crate::load::state::State;
pub(crate) use crate::load::typed::TypedHit;
use crate::stats::Counters;
use crate::ttl::Ttl;

/// What a decorated call's first read found ([`State::read_first`]).
pub(crate) enum First<T> {
    /// A fresh value (a hit, counted).
    Hit(T),
    /// Anything else: where the read-through machinery goes on from.
    Rest(Begin<T>),
}

/// The key of a read-through call: as the caller gave it (the manager adds its prefix), or
/// already prefixed (a decorated call builds its full key once).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoadKey<'k> {
    /// Without the prefix.
    Key(&'k str),
    /// With the manager's prefix.
    Full(&'k str),
}

impl<'k> LoadKey<'k> {
    /// The key without `prefix` (the manager's).
    pub(crate) fn relative(self, prefix: &str) -> &'k str {
        match self {
            LoadKey::Key(key) => key,
            LoadKey::Full(full) => full.get(prefix.len()..).unwrap_or(full),
        }
    }
}

/// How [`CacheManager::get_or_load`](crate::CacheManager::get_or_load) caches and protects the loader.
///
/// Build it with [`LoadOptions::ttl`] (or [`LoadOptions::new`]) and the setters; every setter
/// is `const` where its argument allows, so options can live in a `static`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use cachette::LoadOptions;
///
/// let opts = LoadOptions::ttl(Duration::from_secs(300))
///     .lock(true) // one loader across every process sharing the Redis server
///     .early_refresh(1.0) // XFetch: refresh shortly before expiry
///     .stale_ttl(Duration::from_secs(60)) // keep a stale copy for one more minute...
///     .soft_timeout(Duration::from_millis(200)) // ...served when the loader is slower than this
///     .jitter_percent(10); // TTLs between 270 and 300 s
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// TTL of stored values ([`Ttl::Default`] = the manager's default).
    pub ttl: Ttl,
    /// `true` (the default): a cache failure (down, timeout, circuit open) runs the loader
    /// uncached and logs a warning. `false`: the failure is returned as [`LoadError::Cache`]
    /// (undecodable values are still treated as misses and overwritten).
    pub fallback_on_error: bool,
    /// `true` (the default): concurrent misses of one key in this manager run the loader once
    /// and share its result.
    pub coalesce: bool,
    /// `true`: concurrent misses of one key in *every* process sharing the backend run the
    /// loader once, through a lease `{key}#lock{T}` (in the key's cluster slot) in the backend. Off by default (it costs two
    /// more round trips per miss).
    pub lock: bool,
    /// Lifetime of a lease, renewed every third of it while the loader runs (default 10 s).
    /// A crashed holder blocks the key for at most this long.
    pub lock_ttl: Duration,
    /// How long a caller waits for another process's lease before it serves its stale copy
    /// or runs the loader itself (default 5 s).
    pub lock_wait: Duration,
    /// XFetch factor: `0.0` (the default) never refreshes early, `1.0` is the usual setting,
    /// larger values refresh earlier. Needs a finite TTL; stores metadata beside the value.
    pub beta: f64,
    /// Keep a stale copy this long after the TTL, served when the loader fails or exceeds
    /// [`soft_timeout`](Self::soft_timeout)/[`hard_timeout`](Self::hard_timeout). Stores
    /// metadata beside the value. `None` (the default): no stale copies.
    pub stale_ttl: Option<Duration>,
    /// With a stale copy at hand, callers wait at most this long for a reload (running in
    /// another caller or process) and then serve the stale copy while the reload goes on.
    pub soft_timeout: Option<Duration>,
    /// The loader is cancelled after this long: callers get their stale copy, or an
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error as [`LoadError::Cache`].
    pub hard_timeout: Option<Duration>,
    /// Shorten each TTL by a random 0–`jitter_percent`% (default 0, at most 100).
    pub jitter_percent: u8,
    /// The tags values are stored with and checked against (sorted, deduplicated); see
    /// [`LoadOptions::tags`].
    pub(crate) tags: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions::new()
    }
}

impl LoadOptions {
    /// The defaults: manager's default TTL, fail open, coalescing on, everything else off.
    pub const fn new() -> Self {
        LoadOptions {
            ttl: Ttl::Default,
            fallback_on_error: true,
            coalesce: true,
            lock: false,
            lock_ttl: Duration::from_secs(10),
            lock_wait: Duration::from_secs(5),
            beta: 0.0,
            stale_ttl: None,
            soft_timeout: None,
            hard_timeout: None,
            jitter_percent: 0,
            tags: Vec::new(),
        }
    }

    /// Default options with `ttl`.
    pub fn ttl(ttl: impl Into<Ttl>) -> Self {
        LoadOptions::new().with_ttl(ttl.into())
    }

    /// Sets [`LoadOptions::ttl`].
    #[must_use]
    pub const fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`LoadOptions::fallback_on_error`].
    #[must_use]
    pub const fn fallback_on_error(mut self, fallback: bool) -> Self {
        self.fallback_on_error = fallback;
        self
    }

    /// Sets [`LoadOptions::coalesce`].
    #[must_use]
    pub const fn coalesce(mut self, coalesce: bool) -> Self {
        self.coalesce = coalesce;
        self
    }

    /// Sets [`LoadOptions::lock`].
    #[must_use]
    pub const fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Sets [`LoadOptions::lock_ttl`] (at least 1 ms).
    #[must_use]
    pub const fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = if ttl.is_zero() {
            Duration::from_millis(1)
        } else {
            ttl
        };
        self
    }

    /// Sets [`LoadOptions::lock_wait`].
    #[must_use]
    pub const fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Sets [`LoadOptions::beta`] (negative or NaN values turn early refresh off).
    #[must_use]
    pub const fn early_refresh(mut self, beta: f64) -> Self {
        self.beta = if beta > 0.0 { beta } else { 0.0 };
        self
    }

    /// Sets [`LoadOptions::stale_ttl`].
    #[must_use]
    pub const fn stale_ttl(mut self, stale_ttl: Duration) -> Self {
        self.stale_ttl = Some(stale_ttl);
        self
    }

    /// Sets [`LoadOptions::soft_timeout`].
    #[must_use]
    pub const fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = Some(timeout);
        self
    }

    /// Sets [`LoadOptions::hard_timeout`].
    #[must_use]
    pub const fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = Some(timeout);
        self
    }

    /// Sets [`LoadOptions::jitter_percent`] (capped at 100).
    #[must_use]
    pub const fn jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = if percent > 100 { 100 } else { percent };
        self
    }

    /// Stores values with `tags` and serves only entries written with exactly these tags,
    /// none of them invalidated since ([`CacheManager::invalidate_tag`](crate::CacheManager::invalidate_tag),
    /// [`invalidate_all`](crate::CacheManager::invalidate_all)). Replaces the tags set before.
    ///
    /// Tags cost nothing on a hit beyond reading the tag keys in the same round trip as the
    /// value (one `MGET` on a standalone server, one pipeline per node on a cluster, no command
    /// when the near cache holds them). A miss reads the tag versions once more before the
    /// loader runs (a tag invalidated while the loader runs leaves its value out of date). An
    /// entry that was written without these tags (a plain `set`, other tags) is a miss, and is
    /// overwritten. An empty tag name is refused when the options are used
    /// ([`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), handled like an invalid
    /// key). Not `const`: options with tags cannot live in a `static`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use cachette::{CacheManager, LoadOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = CacheManager::memory();
    /// let opts = LoadOptions::ttl(Duration::from_secs(300)).tags(["user:42", "users"]);
    /// let load = || async { Ok::<_, std::io::Error>("Ada".to_owned()) };
    /// assert_eq!(cache.get_or_load("profile:42", &opts, load).await?, "Ada");
    /// cache.invalidate_tag("user:42").await?; // one command, however many entries
    /// let reload = || async { Ok::<_, std::io::Error>("Ada L.".to_owned()) };
    /// assert_eq!(cache.get_or_load("profile:42", &opts, reload).await?, "Ada L.");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.tags = crate::load::tags::normalize(tags);
        self
    }

    /// The tags set with [`LoadOptions::tags`], sorted and deduplicated.
    pub fn tag_names(&self) -> &[String] {
        &self.tags
    }

    /// Whether values are stored with metadata (early refresh or stale copies).
    pub(crate) fn needs_meta(&self) -> bool {
        self.beta > 0.0 || self.stale_ttl.is_some()
    }
}

/// The error of [`CacheManager::get_or_load`](crate::CacheManager::get_or_load): the loader's own error, or the cache's.
#[derive(Debug)]
pub enum LoadError<E> {
    /// The loader failed.
    Loader(E),
    /// The cache failed and the options asked for the failure; or the loader exceeded its
    /// hard timeout ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)); or this caller waited for a concurrent caller's
    /// loader, which failed or panicked ([`ErrorKind::Loader`](crate::ErrorKind::Loader): the loader's own error went
    /// to the caller that ran it).
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

/// What happened on one read-through call (returned by [`CacheManager::get_or_load_traced`](crate::CacheManager::get_or_load_traced)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The value came from the cache.
    Hit,
    /// The loader ran and its value was stored.
    Miss,
    /// The loader ran and its value was not stored (the filter refused it, it was an error,
    /// or a write or eviction of the key during the load superseded it).
    NotStored,
    /// The cache failed; the loader ran uncached.
    Fallback,
    /// Another caller (in this process, or in another one holding the lease) ran the loader;
    /// this call got its value.
    Coalesced,
    /// The value was fresh, but this caller refreshed it early (XFetch) and returns the new one.
    Refreshed,
    /// The loader failed or was too slow; this is the stale copy.
    Stale,
}

impl Outcome {
    /// A short lowercase name (`hit`, `miss`, `not_stored`, `fallback`, `coalesced`,
    /// `refreshed`, `stale`), as recorded in tracing spans.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::NotStored => "not_stored",
            Outcome::Fallback => "fallback",
            Outcome::Coalesced => "coalesced",
            Outcome::Refreshed => "refreshed",
            Outcome::Stale => "stale",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl State {
    /// [`get_or_load_traced`](Self::get_or_load_traced) on behalf of a decorated function
    /// (`module::name`, recorded in the span as `function`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn get_or_load_as<T, E, F, Fut>(
        self: &Arc<Self>,
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
        let span = match first {
            Begin::Read(span) => span,
            // The caller read the key already (outside any span: none was wanted).
            Begin::After(first) => {
                let call = Call {
                    cache: self,
                    full: match (&first, key) {
                        (Ok(_), LoadKey::Full(full)) => Cow::Borrowed(full),
                        (Ok(_), LoadKey::Key(key)) => Cow::Owned(self.full_key(key)),
                        (Err(_), _) => Cow::Borrowed(""),
                    },
                    options,
                    counters,
                    handoff,
                };
                return Box::pin(Self::load_slow(call, first, store_if, load)).await;
            }
        };
        let span = span.unwrap_or_else(|| self.load_span(key));
        if span.is_disabled() {
            // No subscriber wants it: no `Instrumented` layer (it enters and leaves the span on
            // every poll, and moves the future once more).
            return self
                .load_traced(key, options, counters, handoff, store_if, load)
                .await;
        }
        if let Some((module, name)) = function {
            span.record("module", module);
            span.record("function", name);
        }
        // Boxed: only with a subscriber interested; inline, this second copy of the load
        // future would double what every call carries.
        let result = Box::pin(
            self.load_traced(key, options, counters, handoff, store_if, load)
                .instrument(span.clone()),
        )
        .await;
        {
            let outcome = match &result {
                Ok((_, outcome)) => outcome.as_str(),
                Err(LoadError::Loader(_)) => "loader_error",
                Err(LoadError::Cache(_)) => "cache_error",
            };
            span.record("outcome", outcome);
        }
        result
    }

    /// The hit path: one read, and the value if it is fresh. Everything else (a miss, a
    /// stale or early-refresh read, a failure, an invalid key) continues in
    /// [`load_slow`](Self::load_slow), boxed: its future (leases, flights, the loader) is
    /// large, and inline every hit would carry and move it (measured: 4.5 KB per call).
    async fn load_traced<T, E, F, Fut>(
        self: &Arc<Self>,
        key: LoadKey<'_>,
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
        let mut call = Call {
            cache: self,
            full: Cow::Borrowed(""),
            options,
            counters,
            handoff,
        };
        let first = match self.checked_load_key(key, options) {
            Ok(full) => {
                call.full = full;
                match call.read::<T>().await {
                    Read::Fresh(value) => {
                        call.mine(Counters::hit);
                        return Ok((value, Outcome::Hit));
                    }
                    other => Ok(other),
                }
            }
            Err(e) => Err(e),
        };
        Box::pin(Self::load_slow(call, first, store_if, load)).await
    }

    /// The span of a read-through call (see `get_or_load_traced`).
    fn load_span(&self, key: LoadKey<'_>) -> tracing::Span {
        tracing::debug_span!(
            "cachette.load",
            namespace = self.prefix(),
            key = key.relative(self.prefix()),
            module = tracing::field::Empty,
            function = tracing::field::Empty,
            outcome = tracing::field::Empty
        )
    }

    /// The full key of a read-through call, once its key, TTL and tag names are checked.
    pub(super) fn checked_load_key<'k>(
        &self,
        key: LoadKey<'k>,
        options: &LoadOptions,
    ) -> crate::Result<Cow<'k, str>> {
        let full = match key {
            LoadKey::Key(key) => self.checked_key(key).map(Cow::Owned),
            LoadKey::Full(full) if full.len() > self.prefix.len() => Ok(Cow::Borrowed(full)),
            LoadKey::Full(_) => Err(Error::invalid("cache keys must not be empty")),
        };
        // An out-of-range TTL is refused where it enters, like an invalid key (before a read).
        full.and_then(|full| {
            self.resolve_ttl(options.ttl)
                .map_err(|e| e.with_key(&*full))?;
            crate::load::tags::check_names(&options.tags).map_err(|e| e.with_key(&*full))?;
            Ok(full)
        })
    }

    /// The hit-only path of a decorated call: checks its full key and reads it once. A fresh
    /// value is a hit (counted on the manager and on `counters`), returned without touching
    /// the read-through machinery; anything else is handed back for
    /// [`get_or_load_as`](Self::get_or_load_as) to go on from (`first`): the read, or the
    /// load's span when a subscriber wants it (the read is then done inside it).
    ///
    /// With `typed` (a `Clone + Send + Sync + 'static` value) and a near cache or the memory
    /// backend, a plain read (no metadata, no tags in the options) is served from the decoded
    /// copy kept with the entry ([`read_typed`](Self::read_typed)): a hit clones it instead of
    /// decoding.
    pub(crate) async fn read_first<T: DeserializeOwned>(
        self: &Arc<Self>,
        full: &str,
        options: &LoadOptions,
        counters: Option<&Counters>,
        typed: Option<TypedHit<T>>,
    ) -> First<T> {
        // When a subscriber wants the load's span, the whole call (this read included) goes
        // through `get_or_load_as`, inside it.
        let span = self.load_span(LoadKey::Full(full));
        if !span.is_disabled() {
            return First::Rest(Begin::Read(Some(span)));
        }
        let full = match self.checked_load_key(LoadKey::Full(full), options) {
            Ok(full) => full,
            Err(e) => return First::Rest(Begin::After(Err(e))),
        };
        let call = Call {
            cache: self,
            full,
            options,
            counters,
            handoff: None,
        };
        if let Some(typed) = typed {
            if let Some(tier) = self.typed_tier(options) {
                return self.read_typed(&call, tier, typed).await;
            }
        }
        match call.read::<T>().await {
            Read::Fresh(value) => {
                call.mine(Counters::hit);
                First::Hit(value)
            }
            other => First::Rest(Begin::After(Ok(other))),
        }
    }

    /// Everything but a fresh hit; `first` is the first read (or the invalid key's error).
    #[inline(never)]
    async fn load_slow<T, E, F, Fut>(
        call: Call<'_>,
        first: crate::Result<Read<T>>,
        store_if: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<(T, Outcome), LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let options = call.options;
        let this = call.cache;
        let mut read = match first {
            Ok(read) => Some(read),
            Err(e) => {
                // An invalid key or TTL is a cache failure like any other: run uncached (or
                // fail).
                call.both(Counters::error);
                if !options.fallback_on_error {
                    return Err(LoadError::Cache(e));
                }
                tracing::warn!(error = %e, "cachette: invalid cache key or TTL; running uncached");
                call.mine(Counters::miss);
                return call.lead(None, load, store_if, None, true).await;
            }
        };
        let mut first = true;
        loop {
            let next = match read.take() {
                Some(read) => read,
                None => call.read::<T>().await,
            };
            let (stale, fallback) = match next {
                Read::Fresh(value) => {
                    call.mine(Counters::hit);
                    return Ok((value, Outcome::Hit));
                }
                Read::Early(bytes, value) => {
                    call.mine(Counters::hit);
                    return match call.refresh_early(bytes, store_if, load).await? {
                        Some(refreshed) => Ok(refreshed),
                        None => Ok((value, Outcome::Hit)),
                    };
                }
                Read::Stale(value) => (Some(value), false),
                Read::Miss => (None, false),
                Read::Failed(e) => {
                    call.mine(Counters::error);
                    if !options.fallback_on_error {
                        return Err(LoadError::Cache(e));
                    }
                    if first {
                        tracing::warn!(error = %e, "cachette: cache read failed; running uncached");
                    }
                    (None, true)
                }
            };
            if first {
                call.mine(Counters::miss);
                first = false;
            }
            if !options.coalesce {
                return call.lead(None, load, store_if, stale, fallback).await;
            }
            match this.flights().join(&call.full) {
                Join::Lead(lead) => {
                    if stale.is_none() && !fallback {
                        if let Some((bytes, value)) = call.recheck::<T>().await {
                            finish(Some(lead), Shared::Value(bytes));
                            call.both(Counters::coalesced);
                            return Ok((value, Outcome::Coalesced));
                        }
                    }
                    return call.lead(Some(lead), load, store_if, stale, fallback).await;
                }
                Join::Wait(flight) => match call.wait_for(&flight, stale.is_some()).await {
                    Some(Shared::Value(bytes)) => {
                        match this.codec().decode::<T>(&call.full, &bytes) {
                            Ok(value) => {
                                call.both(Counters::coalesced);
                                return Ok((value, Outcome::Coalesced));
                            }
                            // Another caller loaded the key as another type: load our own.
                            Err(_) => {
                                return call.lead(None, load, store_if, stale, fallback).await
                            }
                        }
                    }
                    Some(Shared::Failed {
                        kind,
                        message,
                        payload,
                    }) => {
                        return match stale {
                            Some(value) => Ok(call.serve_stale(value, &message)),
                            None => {
                                // A decorated function rebuilds its own outcome from this.
                                if let (Some(handoff), Some(payload)) = (call.handoff, payload) {
                                    *handoff.incoming.lock() = Some(payload);
                                }
                                Err(LoadError::Cache(Shared::error(kind, &message, &call.full)))
                            }
                        };
                    }
                    Some(Shared::Abandoned) => continue,
                    None => {
                        if let Some(value) = stale {
                            return Ok(
                                call.serve_stale(value, "the reload exceeded the soft timeout")
                            );
                        }
                        continue;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// A span's name and its fields (name, value), in recording order.
    type SeenSpan = (String, Vec<(String, String)>);

    /// The spans a subscriber saw, in creation order.
    #[derive(Default)]
    struct Spans {
        spans: Mutex<Vec<SeenSpan>>,
    }

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }

    struct Recorder(Arc<Spans>);

    impl Subscriber for Recorder {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.is_span()
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut fields = Vec::new();
            span.record(&mut Fields(&mut fields));
            let mut spans = self.0.spans.lock();
            spans.push((span.metadata().name().to_owned(), fields));
            Id::from_u64(spans.len() as u64)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut spans = self.0.spans.lock();
            if let Some((_, fields)) = spans.get_mut(span.into_u64() as usize - 1) {
                values.record(&mut Fields(fields));
            }
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Held by the tests that install a subscriber: `tracing` caches each callsite's interest
    /// globally, and a subscriber installed or dropped on one thread rebuilds it while the
    /// other test's spans are being created (which then find it disabled).
    static SUBSCRIBING: Mutex<()> = Mutex::new(());

    #[test]
    fn each_read_through_call_has_a_debug_span_with_its_outcome() {
        let _one_at_a_time = SUBSCRIBING.lock();
        let spans = Arc::new(Spans::default());
        let _guard = tracing::subscriber::set_default(Recorder(spans.clone()));
        current_thread().block_on(async {
            let cache = crate::CacheManager::memory();
            let opts = LoadOptions::ttl(Duration::from_secs(60));
            let load = || async { Ok::<_, std::io::Error>(7u32) };
            let fail = || async { Err::<u32, _>(std::io::Error::other("db down")) };
            assert!(cache.get_or_load("k", &opts, load).await.is_ok()); // miss
            assert!(cache.get_or_load("k", &opts, load).await.is_ok()); // hit
            assert!(cache.get_or_load("bad", &opts, fail).await.is_err());
            // A decorated function's call (what `#[cached]` expands into).
            static SITE: crate::runtime::FnSite = crate::runtime::FnSite::new(
                "app::users",
                "get_user",
                crate::runtime::SiteKind::Cached,
            );
            static OPTIONS: LoadOptions = LoadOptions::new();
            for _ in 0..2 {
                // A miss, then a hit (the hit path reads inside the span when it is wanted).
                let call = crate::runtime::Call::new(&SITE, None, Some(&cache), &OPTIONS, || {
                    Ok("user:1".to_owned())
                });
                let v = crate::runtime::cached_value(call, |_: &u32| false, async { 1u32 }).await;
                assert_eq!(v, 1);
            }
        });
        let spans = spans.spans.lock();
        let loads: Vec<_> = spans.iter().filter(|(n, _)| n == "cachette.load").collect();
        assert_eq!(loads.len(), 5);
        let outcomes: Vec<_> = loads.iter().map(|(_, f)| field(f, "outcome")).collect();
        assert_eq!(
            outcomes,
            [
                Some("miss"),
                Some("hit"),
                Some("loader_error"),
                Some("miss"),
                Some("hit")
            ]
        );
        assert_eq!(field(&loads[4].1, "function"), Some("get_user"));
        assert_eq!(field(&loads[0].1, "function"), None);
        assert_eq!(field(&loads[3].1, "module"), Some("app::users"));
        assert_eq!(field(&loads[3].1, "function"), Some("get_user"));
        assert_eq!(field(&loads[3].1, "key"), Some("user:1"));
        assert_eq!(field(&loads[0].1, "namespace"), Some("cache:"));
        assert_eq!(field(&loads[2].1, "key"), Some("bad"));
    }

    /// A decorated call of `key` whose hits take the typed path (what `#[cached]` expands
    /// into for a `Clone` value), with `options`; its body returns `v`.
    async fn typed_call(
        cache: &crate::CacheManager,
        site: &'static crate::runtime::FnSite,
        options: &LoadOptions,
        key: &'static str,
        v: u32,
    ) -> u32 {
        let call =
            crate::runtime::Call::new(site, None, Some(cache), options, || Ok(key.to_owned()));
        let hit = crate::runtime::HitPath::typed();
        crate::runtime::cached_value_with(call, hit, |_: &u32| false, async move { v }).await
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    static PROFILE: crate::runtime::FnSite = crate::runtime::FnSite::new(
        "app::users",
        "get_profile",
        crate::runtime::SiteKind::Cached,
    );

    static PLAIN: LoadOptions = LoadOptions::new();

    #[test]
    fn a_typed_decorated_hit_is_in_its_span_when_a_subscriber_wants_it() {
        let _one_at_a_time = SUBSCRIBING.lock();
        let runtime = current_thread();
        let cache = runtime.block_on(async { crate::CacheManager::memory() });
        let call = || typed_call(&cache, &PROFILE, &PLAIN, "profile:1", 2);
        // No subscriber: a miss, then the hit that keeps the decoded copy with the entry.
        runtime.block_on(async {
            assert_eq!(call().await, 2);
            assert_eq!(call().await, 2);
        });
        // A hit served from the decoded copy runs in the load's span when a subscriber
        // wants it (the synchronous hit, which has none, stands aside).
        let spans = Arc::new(Spans::default());
        let guard = tracing::subscriber::set_default(Recorder(spans.clone()));
        runtime.block_on(async { assert_eq!(call().await, 2) });
        drop(guard);
        let spans = spans.spans.lock();
        let loads: Vec<_> = spans.iter().filter(|(n, _)| n == "cachette.load").collect();
        assert_eq!(loads.len(), 1);
        assert_eq!(field(&loads[0].1, "outcome"), Some("hit"));
        assert_eq!(field(&loads[0].1, "function"), Some("get_profile"));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
    }

    /// A call whose TTL is refused is refused before any read, even when another function
    /// of the same key made a decoded copy a typed hit could serve.
    #[test]
    fn a_refused_ttl_is_refused_even_with_a_decoded_copy_at_hand() {
        let refused = LoadOptions::ttl(crate::ttl::MAX_TTL + Duration::from_secs(1));
        current_thread().block_on(async {
            let cache = crate::CacheManager::memory();
            let call = |options, v| typed_call(&cache, &PROFILE, options, "shared:1", v);
            // A miss, then the hit that keeps the decoded copy, then a hit served from it.
            for _ in 0..3 {
                assert_eq!(call(&PLAIN, 1).await, 1);
            }
            let errors = cache.stats().errors;
            // The refused TTL: the body runs uncached (fail open), and the error is counted.
            assert_eq!(call(&refused, 2).await, 2);
            assert_eq!(cache.stats().errors, errors + 1);
            assert_eq!(call(&PLAIN, 3).await, 1, "the entry is untouched");
        });
    }
}
