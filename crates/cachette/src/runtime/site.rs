//! Per-function statistics: one [`FnSite`] `static` per decorated function, registered on its
//! first call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::stats::{Counters, Stats};

/// What a decorated function does with the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SiteKind {
    /// `#[cached]`: read-through.
    Cached,
    /// `#[cache_put]`: always runs, then stores.
    Put,
    /// `#[cache_evict]`: deletes keys or patterns.
    Evict,
}

/// The identity and counters of one decorated function: the `static` that the attribute
/// macros generate inside each function body. Registered in the process-wide list read by
/// [`function_stats`] on its first call.
#[derive(Debug)]
pub struct FnSite {
    module: &'static str,
    name: &'static str,
    kind: SiteKind,
    owner: OnceLock<&'static str>,
    /// The stem of the function's default keys, built on first use (`key_stem`).
    stem: OnceLock<Box<str>>,
    counters: Counters,
    evicted: AtomicU64,
    registered: AtomicBool,
}

static REGISTRY: Mutex<Vec<&'static FnSite>> = Mutex::new(Vec::new());

impl FnSite {
    /// A site for function `name` in `module` (a `module_path!()`).
    pub const fn new(module: &'static str, name: &'static str, kind: SiteKind) -> Self {
        FnSite {
            module,
            name,
            kind,
            owner: OnceLock::new(),
            stem: OnceLock::new(),
            counters: Counters::new(),
            evicted: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// The function's module path.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The function's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the function does with the cache.
    pub fn kind(&self) -> SiteKind {
        self.kind
    }

    /// The stem of the function's default keys: its module path with `.` for `::`, then
    /// `:` (see [`crate::key`]); built on first use, so that a call appends it whole
    /// ([`ArgsHasher::prefixed_stem_key`](crate::key::ArgsHasher::prefixed_stem_key)).
    #[doc(hidden)]
    #[inline]
    pub fn key_stem(&self) -> &str {
        self.stem
            .get_or_init(|| crate::key::key_stem(self.module).into_boxed_str())
    }

    /// The type label of a method's receiver, once the method has run.
    pub fn owner(&self) -> Option<&'static str> {
        self.owner.get().copied()
    }

    /// `module::name` or `module::Type::name`.
    pub fn qualified_name(&self) -> String {
        match self.owner() {
            Some(owner) => format!("{}::{owner}::{}", self.module, self.name),
            None => format!("{}::{}", self.module, self.name),
        }
    }

    /// Registers the site (once) and returns its counters. `owner` gives the type label of a
    /// method's receiver (`None` for free functions); it is only called on the first call.
    #[inline]
    pub fn enter(&'static self, owner: Option<fn() -> &'static str>) -> &'static Counters {
        if !self.registered.load(Ordering::Acquire) {
            self.register(owner);
        }
        &self.counters
    }

    #[cold]
    fn register(&'static self, owner: Option<fn() -> &'static str>) {
        if let Some(owner) = owner {
            let _ = self.owner.set(owner());
        }
        let mut registry = REGISTRY.lock();
        if !self.registered.swap(true, Ordering::AcqRel) {
            registry.push(self);
        }
    }

    /// The live counters (hits, misses, writes, errors of this function's cache calls).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts evicted keys.
    pub fn add_evicted(&self, n: u64) {
        self.evicted.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot of this site's statistics.
    pub fn stats(&self) -> FunctionStats {
        FunctionStats {
            name: self.qualified_name(),
            kind: self.kind,
            stats: self.counters.snapshot(),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }
}

/// The statistics of one decorated function.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// `module::function`, or `module::Type::method` for methods.
    pub name: String,
    /// What the function does with the cache.
    pub kind: SiteKind,
    /// Hits, misses (the body ran), writes, errors. For `#[cache_put]` only writes and errors
    /// count; for `#[cache_evict]` only errors.
    pub stats: Stats,
    /// Keys deleted by `#[cache_evict]`.
    pub evicted: u64,
}

/// The statistics of every decorated function that has run at least once in this process,
/// sorted by name (then kind).
///
/// # Examples
///
/// ```
/// use cachette::{cached, CacheManager};
///
/// #[cached(cache = cache, skip(cache), ttl = 60)]
/// async fn square(cache: &CacheManager, x: u64) -> u64 {
///     x * x
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = CacheManager::memory();
/// square(&cache, 3).await; // miss: the body runs
/// square(&cache, 3).await; // hit
/// let stats = cachette::runtime::function_stats_of(&format!("{}::square", module_path!()))
///     .unwrap()
///     .stats;
/// assert_eq!((stats.misses, stats.hits), (1, 1));
/// # }
/// ```
pub fn function_stats() -> Vec<FunctionStats> {
    let sites: Vec<&'static FnSite> = REGISTRY.lock().clone();
    let mut all: Vec<FunctionStats> = sites.into_iter().map(FnSite::stats).collect();
    all.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| (a.kind as u8).cmp(&(b.kind as u8)))
    });
    all
}

/// The statistics of the decorated function named `name` (`module::function` or
/// `module::Type::method`, as in [`FunctionStats::name`]); `None` before its first call.
/// When several attributes decorate one function, the `#[cached]` one wins, then
/// `#[cache_put]`, then `#[cache_evict]`.
pub fn function_stats_of(name: &str) -> Option<FunctionStats> {
    function_stats().into_iter().find(|s| s.name == name)
}

/// Sets every function's counters back to zero.
pub fn reset_function_stats() {
    for site in REGISTRY.lock().iter() {
        site.counters.reset();
        site.evicted.store(0, Ordering::Relaxed);
    }
}
