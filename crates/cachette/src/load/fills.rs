//! Writes and evictions supersede the read-through fills in flight.
//!
//! A fill (the loader run of a read-through miss, or of an early refresh) registers a
//! [`Fill`] ticket for its full key right before the loader starts. Every write or eviction of
//! that key through the manager ([`CacheManager::set`](crate::CacheManager::set), `delete`,
//! `delete_many`, `delete_pattern`, `clear`, `set_many`, `set_nx`, and so `#[cache_put]` and
//! `#[cache_evict]`) marks the key's tickets *superseded* **before** it sends its own write.
//! A superseded fill still hands its value to its callers and waiters, but does not store it:
//!
//! 1. it checks its ticket right before storing, and does not store when superseded;
//! 2. it checks again right after its store completed, and if it was superseded in between,
//!    removes its own value with a compare-and-delete (`Backend::delete_if_equals`, atomic).
//!
//! Why the write always wins: let the write mark the ticket at time *M* and then send its
//! delete (or set) *W*, so *M* < *W*. If the fill's second check ran before *M*, its store had
//! completed before *M*, hence before *W*: the write removes or overwrites it. Otherwise the
//! second check sees the mark and removes the fill's value (only if it is still the fill's
//! bytes, so a newer value is never removed). A loader that started after *M* read its data
//! after the write's caller changed it (callers evict after updating their source of truth),
//! so its value is current. Between a superseded store and its removal the old value can be
//! read for at most that one round trip.
//!
//! A write with the same bytes as the superseded fill may be removed by the clean-up (the key
//! then misses; it never serves a stale value). Writes made directly on the
//! [`Backend`](crate::backend::Backend) bypass this.
//!
//! The hot path does not touch this registry: a hit never registers anything, and a write
//! only reads one atomic counter when no fill is in flight. Pattern deletes supersede the
//! fills whose key matches the pattern.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Number of independently locked shards.
const SHARDS: usize = 16;

type Tickets = Vec<Arc<AtomicBool>>;

/// The fills in flight, by full key.
#[derive(Debug, Default)]
pub(crate) struct Fills {
    /// How many tickets are registered (writes skip the registry when 0).
    active: AtomicUsize,
    shards: [Mutex<HashMap<String, Tickets>>; SHARDS],
}

/// One fill in flight; dropping it deregisters it.
#[derive(Debug)]
pub(crate) struct Fill<'a> {
    fills: &'a Fills,
    key: String,
    flag: Arc<AtomicBool>,
}

impl Fills {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Tickets>> {
        let h = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize;
        &self.shards[h & (SHARDS - 1)]
    }

    /// Registers a fill of `full`, right before its loader starts.
    pub(crate) fn start(&self, full: &str) -> Fill<'_> {
        let flag = Arc::new(AtomicBool::new(false));
        self.active.fetch_add(1, Ordering::SeqCst);
        self.shard(full)
            .lock()
            .entry(full.to_owned())
            .or_default()
            .push(flag.clone());
        Fill {
            fills: self,
            key: full.to_owned(),
            flag,
        }
    }

    /// Supersedes the fills of `full` (call before writing or deleting it).
    pub(crate) fn supersede(&self, full: &str) {
        if self.active.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(tickets) = self.shard(full).lock().get(full) {
            for t in tickets {
                t.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Supersedes the fills of every key matching the Redis glob `pattern` (full keys).
    pub(crate) fn supersede_matching(&self, pattern: &str) {
        if self.active.load(Ordering::SeqCst) == 0 {
            return;
        }
        let pattern = crate::glob::Pattern::new(pattern);
        for shard in &self.shards {
            for (key, tickets) in shard.lock().iter() {
                if pattern.is_match(key) {
                    for t in tickets {
                        t.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
    }

    /// How many fills are registered (for leak tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

impl Fill<'_> {
    /// Whether a write or eviction of the key happened since the fill started.
    pub(crate) fn superseded(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for Fill<'_> {
    fn drop(&mut self) {
        let mut shard = self.fills.shard(&self.key).lock();
        if let Some(tickets) = shard.get_mut(self.key.as_str()) {
            tickets.retain(|t| !Arc::ptr_eq(t, &self.flag));
            if tickets.is_empty() {
                shard.remove(self.key.as_str());
            }
        }
        drop(shard);
        self.fills.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_supersede_only_the_fills_of_their_key_and_nothing_leaks() {
        let fills = Fills::default();
        let a = fills.start("cache:a");
        let a2 = fills.start("cache:a");
        let b = fills.start("cache:b");
        fills.supersede("cache:a");
        assert!(a.superseded() && a2.superseded());
        assert!(!b.superseded());
        fills.supersede_matching("cache:c*");
        assert!(!b.superseded());
        fills.supersede_matching("cache:*");
        assert!(b.superseded());
        let c = fills.start("cache:a");
        assert!(!c.superseded(), "a fill started after the write is current");
        drop((a, a2, b, c));
        assert_eq!(fills.len(), 0);
        assert!(fills.shards.iter().all(|s| s.lock().is_empty()));
        fills.supersede("cache:a");
    }
}
