//! Hit/miss/error counters, readable at run time.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one manager (or one decorated function). All updates are relaxed atomics: cheap
/// on the hot path, exact in total, not a consistent snapshot across fields.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    decode_errors: AtomicU64,
}

impl Counters {
    /// A new set of zeroed counters (usable in a `static`).
    pub const fn new() -> Self {
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
        }
    }

    /// Counts a read that found a value.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a read that found nothing.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` reads at once.
    pub fn add_reads(&self, hits: u64, misses: u64) {
        if hits > 0 {
            self.hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            self.misses.fetch_add(misses, Ordering::Relaxed);
        }
    }

    /// Counts stored values.
    pub fn write(&self, n: u64) {
        self.writes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a failed cache operation (backend down, timeout, ...).
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stored value that could not be decoded (also counted as an error).
    pub fn decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for c in [
            &self.hits,
            &self.misses,
            &self.writes,
            &self.errors,
            &self.decode_errors,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A snapshot of [`Counters`].
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
