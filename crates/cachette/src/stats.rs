//! Hit/miss/error counters, readable at run time.

use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::backend::breaker::CircuitState;

/// Counters of one manager (or one decorated function).
///
/// Updates are relaxed atomic adds spread over a few cache-line-sized stripes chosen per
/// thread, so concurrent hits on several cores do not fight over one cache line. Totals are
/// exact; a snapshot is not atomic across fields.
#[derive(Debug, Default)]
pub struct Counters {
    stripes: [Stripe; STRIPES],
}

const STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    decode_errors: AtomicU64,
    coalesced: AtomicU64,
    early_refreshes: AtomicU64,
    stale_served: AtomicU64,
    fallbacks: AtomicU64,
    loader_errors: AtomicU64,
    loader_timeouts: AtomicU64,
}

impl Stripe {
    const fn new() -> Self {
        Stripe {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            early_refreshes: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            loader_errors: AtomicU64::new(0),
            loader_timeouts: AtomicU64::new(0),
        }
    }
}

fn stripe_index() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        i.get()
    })
}

impl Counters {
    /// A new set of zeroed counters (usable in a `static`).
    pub const fn new() -> Self {
        Counters {
            stripes: [const { Stripe::new() }; STRIPES],
        }
    }

    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    /// Counts a read that found a value.
    pub fn hit(&self) {
        self.stripe().hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a read that found nothing.
    pub fn miss(&self) {
        self.stripe().misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `hits` and `misses` reads at once.
    pub fn add_reads(&self, hits: u64, misses: u64) {
        let s = self.stripe();
        if hits > 0 {
            s.hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            s.misses.fetch_add(misses, Ordering::Relaxed);
        }
    }

    /// Counts stored values.
    pub fn write(&self, n: u64) {
        self.stripe().writes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a failed cache operation (backend down, timeout, ...).
    pub fn error(&self) {
        self.stripe().errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stored value that could not be decoded (also counted as an error).
    pub fn decode_error(&self) {
        let s = self.stripe();
        s.decode_errors.fetch_add(1, Ordering::Relaxed);
        s.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a caller that got the result of another caller's loader instead of running its
    /// own (request coalescing).
    pub fn coalesced(&self) {
        self.stripe().coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refresh started before the value expired (probabilistic early refresh).
    pub fn early_refresh(&self) {
        self.stripe()
            .early_refreshes
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stale value served because the loader failed or was too slow.
    pub fn stale_served(&self) {
        self.stripe().stale_served.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a loader run uncached because the cache failed (or its circuit was open).
    pub fn fallback(&self) {
        self.stripe().fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a loader that returned an error or panicked.
    pub fn loader_error(&self) {
        self.stripe().loader_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a loader that exceeded its hard timeout.
    pub fn loader_timeout(&self) {
        self.stripe()
            .loader_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The current values (the circuit and near-cache fields are filled in by
    /// [`CacheManager::stats`](crate::CacheManager::stats)).
    pub fn snapshot(&self) -> Stats {
        let sum = |f: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        Stats {
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            writes: sum(|s| &s.writes),
            errors: sum(|s| &s.errors),
            decode_errors: sum(|s| &s.decode_errors),
            coalesced: sum(|s| &s.coalesced),
            early_refreshes: sum(|s| &s.early_refreshes),
            stale_served: sum(|s| &s.stale_served),
            fallbacks: sum(|s| &s.fallbacks),
            loader_errors: sum(|s| &s.loader_errors),
            loader_timeouts: sum(|s| &s.loader_timeouts),
            circuit: CircuitState::Closed,
            circuit_opens: 0,
            short_circuits: 0,
            near: None,
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for s in &self.stripes {
            for c in [
                &s.hits,
                &s.misses,
                &s.writes,
                &s.errors,
                &s.decode_errors,
                &s.coalesced,
                &s.early_refreshes,
                &s.stale_served,
                &s.fallbacks,
                &s.loader_errors,
                &s.loader_timeouts,
            ] {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// A snapshot of [`Counters`] (and, from [`CacheManager::stats`](crate::CacheManager::stats),
/// of the manager's circuit breaker and near cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Values stored.
    pub writes: u64,
    /// Failed operations (decode errors included).
    pub errors: u64,
    /// Stored values that could not be decoded.
    pub decode_errors: u64,
    /// Callers that got another caller's loader result instead of running their own.
    pub coalesced: u64,
    /// Refreshes started before expiry (probabilistic early refresh).
    pub early_refreshes: u64,
    /// Stale values served because the loader failed or exceeded a timeout.
    pub stale_served: u64,
    /// Loader runs without the cache because the cache failed or its circuit was open.
    pub fallbacks: u64,
    /// Loaders that returned an error or panicked.
    pub loader_errors: u64,
    /// Loaders cancelled by their hard timeout.
    pub loader_timeouts: u64,
    /// The state of the manager's circuit breaker ([`CircuitState::Closed`] without one).
    pub circuit: CircuitState,
    /// How many times the circuit breaker opened.
    pub circuit_opens: u64,
    /// Backend calls refused by the open circuit (answered in microseconds, not a timeout).
    pub short_circuits: u64,
    /// The near cache's counters, when the manager has one
    /// ([`CacheManagerBuilder::near_cache`](crate::CacheManagerBuilder::near_cache)); the same
    /// as [`CacheManager::near_stats`](crate::CacheManager::near_stats).
    pub near: Option<crate::NearStats>,
}

impl Stats {
    /// `hits / (hits + misses)`, or `0.0` before any read.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}
