//! [`CachedProperty`]: a per-instance, async, lazily computed value with a TTL.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::time::Instant;

use crate::ttl::Ttl;

/// A per-instance async lazy value with an optional time to live: the Rust twin of the spec's
/// `@cached_property(ttl=60)`.
///
/// Keep one as a field of the struct whose method it caches. The first caller computes the
/// value; concurrent first callers wait for that one computation instead of starting their
/// own; later callers get a clone until the TTL has passed, after which the next caller
/// recomputes it. The value lives in the instance, so dropping the instance frees it: there is
/// no global map. Nothing here touches a [`CacheManager`](crate::CacheManager); use
/// `#[cached]` for values shared between instances or processes.
///
/// `T: Clone` is returned by value; use `Arc<T>` for large values.
///
/// The `#[cached_property]` attribute writes the call for you: on
/// `async fn name(&self) -> T` it reads the field with the same name (or the one given with
/// `field = ...`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cachette::{cached_property, CachedProperty};
///
/// struct Report {
///     source: Vec<u64>,
///     total: CachedProperty<u64>,
///     summary: CachedProperty<String>,
/// }
///
/// impl Report {
///     // The attribute form: the cache is the field named like the method.
///     #[cached_property(ttl = 300)]
///     async fn total(&self) -> u64 {
///         self.source.iter().sum()
///     }
///
///     // The field form: call it yourself.
///     async fn summary(&self) -> String {
///         self.summary
///             .get_or_init(|| async { format!("{} items", self.source.len()) })
///             .await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let report = Report {
///     source: vec![1, 2, 3],
///     total: CachedProperty::new(),
///     summary: CachedProperty::with_ttl(Duration::from_secs(60)),
/// };
/// assert_eq!(report.total().await, 6);
/// assert_eq!(report.total.get(), Some(6)); // cached in the instance
/// assert_eq!(report.summary().await, "3 items");
/// # }
/// ```
///
/// # Cancellation
///
/// If the computing caller is cancelled, the next waiting caller computes the value instead.
pub struct CachedProperty<T> {
    value: RwLock<Option<Entry<T>>>,
    gate: tokio::sync::Mutex<()>,
    ttl: Option<Duration>,
}

struct Entry<T> {
    value: T,
    expires: Option<Instant>,
}

impl<T> Entry<T> {
    fn is_fresh(&self) -> bool {
        self.expires.is_none_or(|at| Instant::now() < at)
    }
}

impl<T> Default for CachedProperty<T> {
    fn default() -> Self {
        CachedProperty::new()
    }
}

impl<T> fmt::Debug for CachedProperty<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.value.read() {
            Some(entry) if entry.is_fresh() => "fresh",
            Some(_) => "expired",
            None => "empty",
        };
        f.debug_struct("CachedProperty")
            .field("state", &state)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A clone holds a copy of the current value (with the same expiry) and shares nothing with
/// the original afterwards.
impl<T: Clone> Clone for CachedProperty<T> {
    fn clone(&self) -> Self {
        let value = self.value.read().as_ref().map(|e| Entry {
            value: e.value.clone(),
            expires: e.expires,
        });
        CachedProperty {
            value: RwLock::new(value),
            gate: tokio::sync::Mutex::new(()),
            ttl: self.ttl,
        }
    }
}

impl<T> CachedProperty<T> {
    /// An empty property whose value never expires (until [`invalidate`](Self::invalidate)).
    pub fn new() -> Self {
        CachedProperty {
            value: RwLock::new(None),
            gate: tokio::sync::Mutex::new(()),
            ttl: None,
        }
    }

    /// An empty property whose value is recomputed `ttl` after it was computed.
    pub fn with_ttl(ttl: Duration) -> Self {
        CachedProperty {
            ttl: Some(ttl),
            ..CachedProperty::new()
        }
    }

    /// The configured TTL (`None`: never expires).
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Forgets the value: the next caller recomputes it.
    pub fn invalidate(&self) {
        *self.value.write() = None;
    }

    /// Whether a fresh value is present.
    pub fn is_fresh(&self) -> bool {
        self.value.read().as_ref().is_some_and(Entry::is_fresh)
    }

    fn expiry(&self, ttl: Ttl) -> Option<Instant> {
        match ttl {
            Ttl::Default => self.ttl,
            Ttl::Never => None,
            Ttl::After(d) => Some(d),
        }
        .and_then(|d| Instant::now().checked_add(d))
    }

    /// Stores `value` as if it had just been computed (with the configured TTL).
    pub fn set(&self, value: T) {
        let expires = self.expiry(Ttl::Default);
        *self.value.write() = Some(Entry { value, expires });
    }
}

impl<T: Clone> CachedProperty<T> {
    /// The value, if one is present and fresh; never computes.
    pub fn get(&self) -> Option<T> {
        self.fresh()
    }

    fn fresh(&self) -> Option<T> {
        match &*self.value.read() {
            Some(entry) if entry.is_fresh() => Some(entry.value.clone()),
            _ => None,
        }
    }

    /// The value, computed by `init` if absent or expired (with the configured TTL).
    pub async fn get_or_init<F, Fut>(&self, init: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.get_or_init_for(Ttl::Default, init).await
    }

    /// [`get_or_init`](Self::get_or_init) with an explicit TTL for the computed value:
    /// [`Ttl::Default`] is the configured one, [`Ttl::Never`] never expires.
    pub async fn get_or_init_for<F, Fut>(&self, ttl: Ttl, init: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self
            .get_or_try_init_for(ttl, || async {
                Ok::<T, std::convert::Infallible>(init().await)
            })
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// The value, computed by the fallible `init` if absent or expired; an `Err` is returned
    /// and not stored (the next caller tries again).
    ///
    /// # Errors
    /// The error of `init`.
    pub async fn get_or_try_init<F, Fut, E>(&self, init: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_try_init_for(Ttl::Default, init).await
    }

    /// [`get_or_try_init`](Self::get_or_try_init) with an explicit TTL.
    ///
    /// # Errors
    /// The error of `init`.
    pub async fn get_or_try_init_for<F, Fut, E>(&self, ttl: Ttl, init: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let _gate = self.gate.lock().await;
        // Another caller may have computed it while we waited.
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let value = init().await?;
        let expires = self.expiry(ttl);
        *self.value.write() = Some(Entry {
            value: value.clone(),
            expires,
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn computes_once_and_expires() {
        let p = CachedProperty::with_ttl(Duration::from_secs(10));
        let runs = AtomicUsize::new(0);
        let compute = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            runs.load(Ordering::SeqCst)
        };
        assert_eq!(p.get_or_init(compute).await, 1);
        assert_eq!(p.get_or_init(compute).await, 1);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!p.is_fresh());
        assert_eq!(p.get(), None);
        assert_eq!(p.get_or_init(compute).await, 2);
        p.invalidate();
        assert_eq!(p.get_or_init(compute).await, 3);
        assert_eq!(
            p.get_or_init_for(Ttl::Never, compute).await,
            3,
            "fresh value kept"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_callers_compute_once() {
        let p = Arc::new(CachedProperty::<u64>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (p, runs) = (p.clone(), runs.clone());
                tokio::spawn(async move {
                    p.get_or_init(|| async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_stored_and_cancellation_hands_over() {
        let p = CachedProperty::<u8>::new();
        let e: Result<u8, &str> = p.get_or_try_init(|| async { Err("down") }).await;
        assert_eq!(e, Err("down"));
        assert_eq!(p.get_or_try_init(|| async { Ok::<_, ()>(5) }).await, Ok(5));

        let q = Arc::new(CachedProperty::<u8>::new());
        let slow = {
            let q = q.clone();
            tokio::spawn(async move { q.get_or_init(std::future::pending::<u8>).await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        slow.abort();
        let _ = slow.await;
        assert_eq!(q.get_or_init(|| async { 9 }).await, 9);
    }

    #[test]
    fn clone_copies_the_value() {
        let p = CachedProperty::new();
        p.set(String::from("x"));
        let q = p.clone();
        p.invalidate();
        assert_eq!(q.get().as_deref(), Some("x"));
        assert_eq!(p.get(), None);
        assert!(format!("{q:?}").contains("fresh"));
    }
}
