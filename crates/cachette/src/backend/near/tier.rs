//! The in-process store of the near cache: bounded, expiring, and coherent with its source.
//!
//! # Coherence
//!
//! A value enters the tier only through a [`Fetch`] begun *before* its read was sent to the
//! source. An invalidation of a key marks the key's fetches in flight as invalid, so a reply
//! read before a write but arriving after its invalidation (the race that served stale values
//! in other clients' implementations) is handed to its caller but never stored. A
//! [`Tier::flush`] moves the tier to a new epoch: every entry goes, and every fetch begun in an
//! older epoch stores nothing.
//!
//! # Bounds
//!
//! Entries and bytes (key plus value) are bounded per shard (the totals divided evenly), with
//! second-chance (CLOCK) eviction: a read marks an entry as used; the eviction hand clears the
//! mark of a used entry and passes over it once, and evicts the first unused one.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::Mutex;
use tokio::time::Instant;
use xxhash_rust::xxh3::{xxh3_64, Xxh3DefaultBuilder};

type HashMap<K, V> = std::collections::HashMap<K, V, Xxh3DefaultBuilder>;

/// Shards of the tier: a power of two, enough that 64 concurrent readers seldom share a lock.
const SHARDS: usize = 64;

/// Bounds of a [`Tier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TierBounds {
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: usize,
    /// The longest an entry lives in the tier, whatever its TTL at the source.
    pub(crate) max_ttl: Option<Duration>,
}

/// A value decoded once and shared by every typed hit of its entry.
type Decoded = Arc<dyn Any + Send + Sync>;

struct Entry {
    key: Box<str>,
    /// [`table_hash`] of `key`.
    hash: u64,
    value: Bytes,
    expires: Option<Instant>,
    used: AtomicBool,
    /// The value decoded as one type, when a typed read asked for it (see
    /// [`Tier::get_shared`]); it goes with the entry. Not counted in the byte bound.
    decoded: Option<Decoded>,
}

/// What the tier holds of a key for a typed read.
pub(crate) enum Shared<T> {
    /// The value, already decoded as `T`.
    Decoded(Arc<T>),
    /// The value, not yet decoded as `T`: decode it and [`Tier::attach`] the result.
    Encoded(Bytes),
    /// Nothing (or expired).
    Missing,
}

impl Entry {
    fn cost(key: &str, value: &Bytes) -> usize {
        key.len() + value.len()
    }
}

/// Fetches in flight of one key: how many, and whether an invalidation came since the oldest.
struct Pending {
    count: usize,
    valid: bool,
}

/// The hash of a key inside its shard's table, from the one hash of the key (whose high bits
/// chose the shard): multiplied, so that both the table's low bits (its bucket) and its top
/// seven (its tag) vary between the keys of one shard.
#[inline]
fn table_hash(hash: u64) -> u64 {
    hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[derive(Default)]
struct Shard {
    /// Entries, hashed once per read ([`table_hash`]).
    entries: HashTable<Entry>,
    pending: HashMap<Box<str>, Pending>,
    /// Keys in insertion order, for the eviction hand (may hold keys already removed).
    clock: VecDeque<Box<str>>,
    bytes: usize,
}

impl Shard {
    fn find(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.entries.find(hash, |e| &*e.key == key)
    }

    fn remove(&mut self, hash: u64, key: &str) -> bool {
        match self.entries.find_entry(hash, |e| &*e.key == key) {
            Ok(occupied) => {
                let (entry, _) = occupied.remove();
                self.bytes -= Entry::cost(key, &entry.value);
                true
            }
            Err(_) => false,
        }
    }

    /// Evicts until one more entry of `cost` bytes fits; `false` (and nothing evicted) if it
    /// can never fit.
    ///
    /// Ends: every entry has a position on the clock, and each position is passed over at most
    /// once (its mark cleared) before its entry is evicted; while room is missing the shard is
    /// not empty (`max_entries` is at least 1 and `cost` at most `max_bytes`).
    fn make_room(&mut self, cost: usize, max_entries: usize, max_bytes: usize) -> bool {
        if cost > max_bytes {
            return false;
        }
        while self.entries.len() >= max_entries || self.bytes + cost > max_bytes {
            let Some(key) = self.clock.pop_front() else {
                return false;
            };
            let hash = table_hash(xxh3_64(key.as_bytes()));
            match self.find(hash, &key) {
                None => {} // already removed: drop the stale hand position
                Some(entry) if entry.used.swap(false, Ordering::Relaxed) => {
                    self.clock.push_back(key);
                }
                Some(_) => {
                    self.remove(hash, &key);
                }
            }
        }
        true
    }

    /// Rebuilds the clock from the live keys once stale positions (of removed or re-inserted
    /// keys) outnumber them: one position per entry again. Amortised, it costs O(1) per
    /// insertion; the hand's order is lost, the entries' marks are kept.
    fn compact_clock(&mut self) {
        if self.clock.len() > 2 * self.entries.len() + 16 {
            self.clock = self.entries.iter().map(|e| e.key.clone()).collect();
        }
    }
}

/// Counters of a tier (monotonic, except the sizes).
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) flushes: AtomicU64,
    /// Replies not stored because their key was invalidated (or the tier flushed) meanwhile.
    pub(crate) discarded: AtomicU64,
    pub(crate) evictions: AtomicU64,
}

/// The tier. Every method takes one shard lock at most (a flush takes each in turn).
pub(crate) struct Tier {
    shards: Box<[Mutex<Shard>]>,
    shard_entries: usize,
    shard_bytes: usize,
    max_ttl: Option<Duration>,
    /// Bumped by every flush; a fetch of an older epoch stores nothing.
    epoch: AtomicU64,
    pub(crate) counters: TierCounters,
}

/// A read of one key from the source, begun before the read was sent. Complete it with
/// [`Tier::complete`]; dropped instead (an error, a cancelled caller), it stores nothing.
pub(crate) struct Fetch<'t> {
    tier: &'t Tier,
    shard: usize,
    key: Box<str>,
    epoch: u64,
    done: bool,
}

impl Drop for Fetch<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tier.end(self.shard, &self.key);
        }
    }
}

impl Tier {
    pub(crate) fn new(bounds: TierBounds) -> Tier {
        Tier {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_entries: bounds.max_entries.div_ceil(SHARDS).max(1),
            shard_bytes: bounds.max_bytes.div_ceil(SHARDS),
            max_ttl: bounds.max_ttl,
            epoch: AtomicU64::new(0),
            counters: TierCounters::default(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        self.locate(key).0
    }

    /// The shard of `key` (high bits of its hash) and its hash in that shard's table.
    #[inline]
    fn locate(&self, key: &str) -> (usize, u64) {
        let hash = xxh3_64(key.as_bytes());
        ((hash >> 58) as usize & (SHARDS - 1), table_hash(hash))
    }

    /// `read` of the entry of `key`, if the tier holds an unexpired one (counted as a hit or a
    /// miss; an expired entry is removed).
    #[inline]
    fn lookup<R>(&self, key: &str, now: Instant, read: impl FnOnce(&Entry) -> R) -> Option<R> {
        let found = self.read_live(key, now, |entry| Some(read(entry)));
        if found.is_none() {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// `read` of the entry of `key` unexpired at `now` (an expired one is removed); an entry
    /// `read` answers is a hit (counted, marked used), and nothing else is counted.
    fn read_live<R>(
        &self,
        key: &str,
        now: Instant,
        read: impl FnOnce(&Entry) -> Option<R>,
    ) -> Option<R> {
        let (at, hash) = self.locate(key);
        let found = {
            let mut shard = self.shards[at].lock();
            match shard.find(hash, key) {
                Some(entry) if entry.expires.is_none_or(|at| now < at) => {
                    let answer = read(entry);
                    if answer.is_some() {
                        entry.used.store(true, Ordering::Relaxed);
                    }
                    answer
                }
                Some(_) => {
                    shard.remove(hash, key);
                    None
                }
                None => None,
            }
        };
        if found.is_some() {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// The value of `key`, if the tier holds an unexpired one (counted as a hit or a miss).
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        self.get_at(key, Instant::now())
    }

    /// [`get`](Self::get) with the clock read already (`now`).
    pub(crate) fn get_at(&self, key: &str, now: Instant) -> Option<Bytes> {
        self.lookup(key, now, |entry| entry.value.clone())
    }

    /// The value of `key` for a typed read: decoded as `T` when a typed read already attached
    /// it, else its bytes (counted as a hit or a miss, like [`get`](Self::get)), at `now`.
    pub(crate) fn get_shared<T: Any + Send + Sync>(&self, key: &str, now: Instant) -> Shared<T> {
        self.lookup(key, now, |entry| {
            match entry.decoded.clone().map(|d| d.downcast::<T>()) {
                Some(Ok(value)) => Shared::Decoded(value),
                _ => Shared::Encoded(entry.value.clone()),
            }
        })
        .unwrap_or(Shared::Missing)
    }

    /// The copy of `key`'s value decoded as `T`, if a typed read kept one: a hit; else
    /// `None`, not counted (the read that follows counts it); at `now`.
    pub(crate) fn get_decoded<T: Any + Send + Sync>(
        &self,
        key: &str,
        now: Instant,
    ) -> Option<Arc<T>> {
        self.read_live(key, now, |entry| {
            entry.decoded.clone()?.downcast::<T>().ok()
        })
    }

    /// Keeps `decoded` (the value `bytes` decoded as `T`) with the entry of `key`, if that entry
    /// still holds exactly these bytes (the same buffer, not an equal one: a newer entry, even
    /// with equal bytes, comes from another read, and is left alone). One type per entry: a
    /// read as another type replaces it.
    pub(crate) fn attach<T: Any + Send + Sync>(&self, key: &str, bytes: &Bytes, decoded: Arc<T>) {
        let (at, hash) = self.locate(key);
        let mut shard = self.shards[at].lock();
        if let Some(entry) = shard.entries.find_mut(hash, |e| &*e.key == key) {
            if entry.value.as_ptr() == bytes.as_ptr() && entry.value.len() == bytes.len() {
                entry.decoded = Some(decoded);
            }
        }
    }

    /// Registers a read of `key` about to be sent to the source.
    pub(crate) fn begin(&self, key: &str) -> Fetch<'_> {
        let shard = self.shard_of(key);
        // The epoch is read under the shard lock, so a flush (which bumps it before clearing
        // each shard under its lock) either sees this fetch's marker or is seen by it.
        let epoch = {
            let mut s = self.shards[shard].lock();
            let pending = s.pending.entry(key.into()).or_insert(Pending {
                count: 0,
                valid: true,
            });
            if pending.count == 0 {
                pending.valid = true;
            }
            pending.count += 1;
            self.epoch.load(Ordering::Acquire)
        };
        Fetch {
            tier: self,
            shard,
            key: key.into(),
            epoch,
            done: false,
        }
    }

    /// Ends `fetch` with the source's reply: stores `value` (for at most `ttl`, the key's
    /// remaining time at the source; `None` = no expiry there) unless the key was invalidated
    /// or the tier flushed since the fetch began.
    pub(crate) fn complete(&self, mut fetch: Fetch<'_>, value: &Bytes, ttl: Option<Duration>) {
        fetch.done = true;
        let mut shard = self.shards[fetch.shard].lock();
        let valid = match shard.pending.get_mut(&fetch.key) {
            Some(p) => {
                let valid = p.valid;
                p.count -= 1;
                if p.count == 0 {
                    shard.pending.remove(&fetch.key);
                }
                valid
            }
            None => false,
        };
        if !valid || fetch.epoch != self.epoch.load(Ordering::Acquire) {
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ttl = match (ttl, self.max_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if ttl == Some(Duration::ZERO) {
            return;
        }
        let key = std::mem::take(&mut fetch.key);
        let hash = self.locate(&key).1;
        shard.remove(hash, &key);
        let cost = Entry::cost(&key, value);
        let before = shard.entries.len();
        if !shard.make_room(cost, self.shard_entries, self.shard_bytes) {
            return;
        }
        let evicted = before - shard.entries.len();
        if evicted > 0 {
            self.counters
                .evictions
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
        shard.bytes += cost;
        // A re-inserted key may keep an older position too: the compaction below bounds them.
        shard.clock.push_back(key.clone());
        shard.entries.insert_unique(
            hash,
            Entry {
                key,
                hash,
                value: value.clone(),
                expires: ttl.map(|t| Instant::now() + t),
                used: AtomicBool::new(false),
                decoded: None,
            },
            |e| e.hash,
        );
        shard.compact_clock();
    }

    fn end(&self, shard: usize, key: &str) {
        let mut s = self.shards[shard].lock();
        if let Some(p) = s.pending.get_mut(key) {
            p.count -= 1;
            if p.count == 0 {
                s.pending.remove(key);
            }
        }
    }

    /// Forgets `key` and voids its fetches in flight.
    pub(crate) fn invalidate(&self, key: &str) {
        let (at, hash) = self.locate(key);
        let mut shard = self.shards[at].lock();
        shard.remove(hash, key);
        if let Some(p) = shard.pending.get_mut(key) {
            p.valid = false;
        }
        drop(shard);
        self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets everything and voids every fetch in flight.
    pub(crate) fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            s.entries.clear();
            s.clock.clear();
            s.bytes = 0;
            for p in s.pending.values_mut() {
                p.valid = false;
            }
        }
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries and bytes held now.
    pub(crate) fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock();
            (n + s.entries.len(), b + s.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(max_entries: usize) -> Tier {
        Tier::new(TierBounds {
            max_entries,
            max_bytes: usize::MAX / 2,
            max_ttl: None,
        })
    }

    fn v(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn a_completed_fetch_is_served() {
        let t = tier(1000);
        assert_eq!(t.get("k"), None);
        let f = t.begin("k");
        t.complete(f, &v("1"), None);
        assert_eq!(t.get("k"), Some(v("1")));
        assert_eq!(t.counters.hits.load(Ordering::Relaxed), 1);
        assert_eq!(t.counters.misses.load(Ordering::Relaxed), 1);
        assert_eq!(t.size(), (1, 2));
    }

    #[tokio::test]
    async fn an_invalidation_during_a_fetch_voids_it() {
        let t = tier(1000);
        let f = t.begin("k");
        t.invalidate("k");
        t.complete(f, &v("old"), None);
        assert_eq!(t.get("k"), None);
        assert_eq!(t.counters.discarded.load(Ordering::Relaxed), 1);
        // The next fetch, begun after the invalidation, is stored.
        let f = t.begin("k");
        t.complete(f, &v("new"), None);
        assert_eq!(t.get("k"), Some(v("new")));
    }

    #[tokio::test]
    async fn an_invalidation_voids_every_fetch_in_flight_of_its_key_only() {
        let t = tier(1000);
        let a = t.begin("k");
        let b = t.begin("k");
        let other = t.begin("j");
        t.invalidate("k");
        let c = t.begin("k"); // begun after: still voided while older ones are in flight
        t.complete(a, &v("1"), None);
        t.complete(b, &v("1"), None);
        t.complete(c, &v("2"), None);
        t.complete(other, &v("3"), None);
        assert_eq!(t.get("k"), None);
        assert_eq!(t.get("j"), Some(v("3")));
        // With nothing in flight, the key's marker is gone and a new fetch stores.
        let d = t.begin("k");
        t.complete(d, &v("4"), None);
        assert_eq!(t.get("k"), Some(v("4")));
    }

    #[tokio::test]
    async fn a_dropped_fetch_stores_nothing_and_leaves_no_marker() {
        let t = tier(1000);
        drop(t.begin("k"));
        t.invalidate("k");
        let f = t.begin("k");
        t.complete(f, &v("1"), None);
        assert_eq!(t.get("k"), Some(v("1")));
        assert!(t.shards.iter().all(|s| s.lock().pending.is_empty()));
    }

    #[tokio::test]
    async fn a_flush_empties_the_tier_and_voids_fetches_in_flight() {
        let t = tier(1000);
        let f = t.begin("a");
        t.complete(f, &v("1"), None);
        let in_flight = t.begin("b");
        t.flush();
        assert_eq!(t.get("a"), None);
        t.complete(in_flight, &v("2"), None);
        assert_eq!(t.get("b"), None);
        assert_eq!(t.size(), (0, 0));
        assert_eq!(t.counters.flushes.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_with_the_source_ttl_or_the_cap() {
        let t = Tier::new(TierBounds {
            max_entries: 100,
            max_bytes: 1 << 20,
            max_ttl: Some(Duration::from_secs(10)),
        });
        let f = t.begin("short");
        t.complete(f, &v("1"), Some(Duration::from_secs(2)));
        let f = t.begin("long");
        t.complete(f, &v("1"), Some(Duration::from_secs(60)));
        let f = t.begin("forever");
        t.complete(f, &v("1"), None);
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(t.get("short").is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(t.get("short").is_none());
        tokio::time::advance(Duration::from_millis(7999)).await;
        assert!(t.get("long").is_some());
        assert!(t.get("forever").is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(t.get("long").is_none());
        assert!(t.get("forever").is_none());
        // A key already expired at the source is not stored.
        let f = t.begin("gone");
        t.complete(f, &v("1"), Some(Duration::ZERO));
        assert!(t.get("gone").is_none());
    }

    #[tokio::test]
    async fn entries_are_bounded_and_used_ones_survive_eviction() {
        let t = tier(SHARDS * 4); // 4 per shard
        let keys: Vec<String> = (0..4000).map(|i| format!("k{i}")).collect();
        let hot = &keys[0];
        for k in &keys {
            let f = t.begin(k);
            t.complete(f, &v("x"), None);
            assert!(t.get(hot).is_some(), "the hot key was evicted at {k}");
        }
        let (n, _) = t.size();
        assert!(n <= SHARDS * 4, "{n} entries");
        assert!(t.counters.evictions.load(Ordering::Relaxed) >= 4000 - (SHARDS * 4) as u64);
    }

    #[tokio::test]
    async fn bytes_are_bounded_and_a_value_too_big_is_not_stored() {
        let t = Tier::new(TierBounds {
            max_entries: 1_000_000,
            max_bytes: SHARDS * 100,
            max_ttl: None,
        });
        // A value that can never fit is refused without evicting what fits.
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let small = keys
            .iter()
            .find(|k| t.shard_of(k) == t.shard_of("big"))
            .unwrap();
        let f = t.begin(small);
        t.complete(f, &v("s"), None);
        let big = Bytes::from(vec![b'x'; 200]);
        let f = t.begin("big");
        t.complete(f, &big, None);
        assert!(t.get("big").is_none());
        assert_eq!(t.get(small), Some(v("s")));
        // A value that fits exactly beside it is kept, and evicts nothing.
        let room = 100 - (small.len() + 1) - "big".len();
        let exact = Bytes::from(vec![b'x'; room]);
        let f = t.begin("big");
        t.complete(f, &exact, None);
        assert_eq!(t.get("big"), Some(exact));
        assert_eq!(t.get(small), Some(v("s")));
        for i in 0..10_000 {
            let k = format!("k{i}");
            let f = t.begin(&k);
            t.complete(f, &Bytes::from(vec![b'y'; 40]), None);
        }
        let (_, bytes) = t.size();
        assert!(bytes <= SHARDS * 100, "{bytes} bytes");
    }

    #[tokio::test]
    async fn a_replaced_value_is_counted_once() {
        let t = tier(1000);
        for value in ["1", "22", "333"] {
            let f = t.begin("k");
            t.complete(f, &v(value), None);
        }
        assert_eq!(t.size(), (1, 4));
        t.invalidate("k");
        assert_eq!(t.size(), (0, 0));
    }

    #[tokio::test]
    async fn the_clock_does_not_grow_with_rewrites_of_the_same_keys() {
        let t = tier(1000);
        for i in 0..10_000 {
            let k = format!("k{}", i % 10);
            let f = t.begin(&k);
            t.complete(f, &v("x"), None);
        }
        assert_eq!(t.size().0, 10);
        let positions: usize = t.shards.iter().map(|s| s.lock().clock.len()).sum();
        assert!(
            positions <= 2 * 10 + 17 * SHARDS,
            "{positions} clock positions"
        );
    }

    #[tokio::test]
    async fn an_entry_bound_is_exact_per_shard() {
        let t = tier(SHARDS * 3);
        let keys: Vec<String> = (0..5000)
            .map(|i| format!("k{i}"))
            .filter(|k| t.shard_of(k) == 0)
            .take(10)
            .collect();
        for k in &keys {
            let f = t.begin(k);
            t.complete(f, &v("x"), None);
        }
        assert_eq!(t.size().0, 3);
        assert_eq!(t.counters.evictions.load(Ordering::Relaxed), 7);
        // The three last ones are held.
        for k in &keys[7..] {
            assert!(t.get(k).is_some(), "{k}");
        }
    }

    #[tokio::test]
    async fn a_decoded_value_is_shared_until_its_entry_changes() {
        let t = tier(1000);
        assert!(matches!(
            t.get_shared::<u32>("k", Instant::now()),
            Shared::Missing
        ));
        let f = t.begin("k");
        let bytes = v("7");
        t.complete(f, &bytes, None);
        let Shared::Encoded(held) = t.get_shared::<u32>("k", Instant::now()) else {
            panic!("not held");
        };
        t.attach("k", &held, Arc::new(7u32));
        let (Shared::Decoded(a), Shared::Decoded(b)) = (
            t.get_shared::<u32>("k", Instant::now()),
            t.get_shared::<u32>("k", Instant::now()),
        ) else {
            panic!("not decoded");
        };
        assert!(Arc::ptr_eq(&a, &b));
        // Another type is not served the first one's value.
        assert!(matches!(
            t.get_shared::<u64>("k", Instant::now()),
            Shared::Encoded(_)
        ));
        // A newer entry (equal bytes, another read) does not take an older read's decoding.
        let f = t.begin("k");
        t.complete(f, &v("7"), None);
        t.attach("k", &held, Arc::new(7u32));
        assert!(matches!(
            t.get_shared::<u32>("k", Instant::now()),
            Shared::Encoded(_)
        ));
        // An invalidation takes the decoded value with the entry.
        let Shared::Encoded(now) = t.get_shared::<u32>("k", Instant::now()) else {
            panic!("not held");
        };
        t.attach("k", &now, Arc::new(7u32));
        t.invalidate("k");
        assert!(matches!(
            t.get_shared::<u32>("k", Instant::now()),
            Shared::Missing
        ));
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let t = tier(1000);
        let mut used = [false; SHARDS];
        for i in 0..10_000 {
            used[t.shard_of(&format!("k{i}"))] = true;
        }
        assert!(used.iter().all(|u| *u), "some shard is never used");
    }

    #[tokio::test(start_paused = true)]
    async fn a_decoded_copy_is_read_only_from_a_copy_of_its_type_and_counted_then() {
        let t = tier(1000);
        let hits = |t: &Tier| t.counters.hits.load(Ordering::Relaxed);
        let misses = |t: &Tier| t.counters.misses.load(Ordering::Relaxed);
        assert!(t.get_decoded::<u32>("k", Instant::now()).is_none());
        let f = t.begin("k");
        t.complete(f, &v("7"), Some(Duration::from_secs(2)));
        assert!(
            t.get_decoded::<u32>("k", Instant::now()).is_none(),
            "not decoded yet"
        );
        assert_eq!((hits(&t), misses(&t)), (0, 0), "nothing counted");
        let Shared::Encoded(held) = t.get_shared::<u32>("k", Instant::now()) else {
            panic!("not held");
        };
        t.attach("k", &held, Arc::new(7u32));
        assert_eq!(
            t.get_decoded::<u32>("k", Instant::now()).as_deref(),
            Some(&7)
        );
        assert!(
            t.get_decoded::<u64>("k", Instant::now()).is_none(),
            "another type"
        );
        assert_eq!((hits(&t), misses(&t)), (2, 0));
        // At the reading of the clock given: served before the entry's expiry, not at it.
        let at = Instant::now() + Duration::from_millis(1999);
        assert!(t.get_decoded::<u32>("k", at).is_some());
        assert!(t
            .get_decoded::<u32>("k", at + Duration::from_millis(1))
            .is_none());
        assert!(t.get("k").is_none(), "the expired entry was removed");
    }
}
