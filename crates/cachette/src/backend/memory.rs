//! The embedded in-memory backend: the default when no Redis is configured.
//!
//! A [`MemoryBackend`] keeps byte values under string keys with Redis semantics: per-key TTLs
//! or persistent keys, `SET NX`, `EXPIRE`/`PERSIST`/`TTL`, cursor-based `SCAN` with Redis glob
//! patterns ([`crate::glob`]), and bounded size with eviction.
//!
//! # Design
//!
//! The store is 64 shards, each a `hashbrown::HashTable` of indices into a slab of entries
//! plus an index of deadlines, behind a `parking_lot::RwLock` and keyed by one xxh3 hash of
//! the key. We chose this over `moka` 0.12 because moka cannot report an entry's remaining TTL
//! nor change it in place (`TTL`, `EXPIRE` and `PERSIST` would each need a re-insert through
//! its `Expiry` hooks), has no resumable cursor for `SCAN`, and its hit costs about 470 ns
//! here because housekeeping runs inline; a hit here is one hash, one shared read lock and one
//! probe: about 60 ns, 100 ns with the clock read of a TTL check (release build, 2 cores).
//! Entries never move inside their slab, which is what makes the `SCAN` guarantee below cheap
//! to give.
//!
//! # Expiry
//!
//! An expired entry is never returned, counted by `exists` or listed by `scan`, from the
//! instant its TTL has fully elapsed. Its memory is reclaimed, earliest deadline first:
//!
//! - by a background tokio task every [`MemoryConfig::reap_interval`] (it holds only a `Weak`
//!   reference, so it ends by itself once the backend is dropped, and dies with its runtime);
//! - always, a few at a time, by every write to the same shard, by any write that meets an
//!   expired key, and before anything is evicted.
//!
//! A backend created outside a tokio runtime does not panic: it starts the background task on
//! its first write made inside a runtime, and until then relies on write-time reclamation (or
//! on [`MemoryBackend::purge_expired`]). In a runtime built without timers (no
//! `enable_time`) it logs one warning and relies on those too. Time is
//! [`tokio::time::Instant`], so tests can use
//! `tokio::time::pause()`. TTLs follow the one rule of every backend ([`crate::ttl::check`]):
//! rounded up to whole milliseconds, at most [`crate::ttl::MAX_TTL`] (100 years); a longer
//! one is refused with [`ErrorKind::InvalidInput`] naming the key, as the manager does.
//!
//! # Bounds and eviction
//!
//! When a write takes the store over [`MemoryConfig::max_entries`] or
//! [`MemoryConfig::max_bytes`], entries are removed until it fits again: expired entries first
//! (counted in `expired_keys`), then an approximation of LRU the way Redis does it: sample 5
//! random entries of the whole store and evict the least recently read or written (counted in
//! `evicted_keys`). The entry just written is never evicted by its own write. Sizes are
//! approximate: an entry weighs its key and value lengths plus a fixed [`ENTRY_OVERHEAD`] for
//! bookkeeping, and `used_memory` is the sum of those weights.
//!
//! A single entry heavier than `max_bytes` is refused with an [`ErrorKind::InvalidInput`]
//! error naming the key; `set` then also removes the key's previous value, so that a stale
//! value never outlives a failed update. The store stays usable.
//!
//! # Scan guarantee
//!
//! The cursor is a position (shard, slot) and `count` bounds how many slots one call visits.
//! A full iteration (from cursor `0` until `0` comes back) always terminates, returns every key
//! that existed, unexpired, for the whole iteration **exactly once**, whatever is inserted or
//! deleted concurrently, and may or may not return keys created, deleted or expiring during it
//! (a key deleted and re-created during the iteration may be returned twice). Pages may be
//! empty while the iteration is not finished, as with Redis.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use cachette::backend::{Backend, KeyTtl, MemoryBackend, MemoryConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let backend = MemoryBackend::new(MemoryConfig {
//!     max_entries: Some(10_000),
//!     ..MemoryConfig::default()
//! });
//! let ttl = Some(Duration::from_secs(60));
//! backend.set("user:1", Bytes::from_static(b"{\"name\":\"Ada\"}"), ttl).await?;
//! assert_eq!(backend.get("user:1").await?.as_deref(), Some(&b"{\"name\":\"Ada\"}"[..]));
//! assert!(matches!(backend.ttl("user:1").await?, KeyTtl::Expires(_)));
//! assert_eq!(backend.keys("user:*").await?, vec!["user:1".to_owned()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockWriteGuard};
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

use super::{Backend, KeyTtl, ScanPage};
use crate::error::{Error, ErrorKind, Result};
use crate::glob::Pattern;
use crate::info::{human_bytes, InfoValue, KeyspaceStats, ServerInfo};

/// The default [`MemoryConfig::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// The default [`MemoryConfig::max_bytes`]: 256 MiB of keys, values and [`ENTRY_OVERHEAD`]
/// (an entry count alone let 100 KB values grow a process to gigabytes).
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Bytes added to each entry's key and value lengths to account for its bookkeeping (slab
/// slot, table index, deadline index, allocation headers) in `used_memory` and against
/// `max_bytes`.
pub const ENTRY_OVERHEAD: u64 = 128;

/// Number of shards (a power of two).
const SHARDS: usize = 64;
/// Entries sampled per eviction, as Redis' `maxmemory-samples` default.
const EVICTION_SAMPLES: usize = 5;
/// Random probes allowed to find those samples before walking the store instead.
const EVICTION_PROBES: usize = 4 * EVICTION_SAMPLES;
/// Slots looked at after a vacant probed slot.
const PROBE_RUN: usize = 16;
/// Expired entries reclaimed by each write to a shard.
const SWEEP_PER_WRITE: usize = 4;
/// Expired entries reclaimed under one lock by the reaper and by eviction.
const REAP_BATCH: usize = 256;
/// The most slots one `scan` call visits, whatever `count` asks for.
const MAX_SCAN_WORK: usize = 1 << 20;
use crate::ttl::MAX_TTL;
/// No reaper task: none started yet, or its runtime is gone.
const REAPER_IDLE: u8 = 0;
/// A reaper task is alive.
const REAPER_RUNNING: u8 = 1;
/// The runtime has no timers: never try again.
const REAPER_UNAVAILABLE: u8 = 2;
/// `earliest` of a shard without expiring entries.
const NO_DEADLINE: u64 = u64::MAX;

/// Limits and housekeeping of a [`MemoryBackend`].
///
/// # Examples
///
/// ```
/// use cachette::backend::MemoryConfig;
///
/// let config = MemoryConfig { max_bytes: Some(64 << 20), ..MemoryConfig::default() };
/// assert_eq!(config.max_entries, Some(100_000));
/// assert_eq!(MemoryConfig::default().max_bytes, Some(256 << 20));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// The most entries kept at once (default [`DEFAULT_MAX_ENTRIES`], `None` for no limit;
    /// `Some(0)` is read as `Some(1)`).
    pub max_entries: Option<u64>,
    /// The most bytes kept at once, counting keys, values and [`ENTRY_OVERHEAD`] per entry
    /// (default [`DEFAULT_MAX_BYTES`], 256 MiB; `None` for no limit).
    pub max_bytes: Option<u64>,
    /// How often the background task reclaims expired entries (default 1 s;
    /// `Duration::ZERO` disables the task, leaving reclamation to writes).
    pub reap_interval: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_entries: Some(DEFAULT_MAX_ENTRIES),
            max_bytes: Some(DEFAULT_MAX_BYTES),
            reap_interval: Duration::from_secs(1),
        }
    }
}

/// The embedded in-memory [`Backend`]; see the [module docs](self) for its guarantees.
///
/// Cloning is cheap and every clone shares the same store.
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

impl MemoryBackend {
    /// The value at `key`, synchronously (what [`Backend::get`] returns, without boxing a
    /// future).
    pub fn get_now(&self, key: &str) -> Option<Bytes> {
        self.inner.get(key)
    }

    /// A new, empty store. Starts the background reaper when called inside a tokio runtime
    /// (otherwise on the first write made inside one); never panics outside a runtime.
    pub fn new(config: MemoryConfig) -> Self {
        let backend = MemoryBackend {
            inner: Arc::new(Inner::new(config)),
        };
        backend.ensure_reaper();
        backend
    }

    /// The number of entries stored, including expired ones not reclaimed yet.
    pub fn len(&self) -> usize {
        usize::try_from(self.inner.entries.load(Relaxed)).unwrap_or(usize::MAX)
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The approximate memory held by entries, in bytes (`used_memory` in [`Backend::info`]).
    pub fn used_memory(&self) -> u64 {
        self.inner.bytes.load(Relaxed)
    }

    /// The configuration in force (`max_entries` normalised).
    pub fn config(&self) -> &MemoryConfig {
        &self.inner.config
    }

    /// Reclaims every expired entry now and returns how many were removed. The background
    /// task does this periodically; call it yourself when running without a tokio runtime.
    pub fn purge_expired(&self) -> u64 {
        self.inner.purge_expired(Instant::now())
    }

    /// Starts the background reaper if it is not running and we are inside a runtime.
    fn ensure_reaper(&self) {
        let inner = &self.inner;
        if inner.config.reap_interval.is_zero() || inner.reaper.load(Relaxed) != REAPER_IDLE {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if inner
            .reaper
            .compare_exchange(REAPER_IDLE, REAPER_RUNNING, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        let period = inner.config.reap_interval.min(MAX_TTL);
        // Tokio panics when a timer is made on a runtime built without `enable_time`, and
        // cannot be asked beforehand (tokio-rs/tokio#8361): try once, else rely on writes.
        let ticker =
            std::panic::catch_unwind(|| tokio::time::interval_at(Instant::now() + period, period));
        match ticker {
            Ok(ticker) => {
                handle.spawn(reap_periodically(
                    ReaperGuard(Arc::downgrade(inner)),
                    ticker,
                ));
            }
            Err(_) => {
                inner.reaper.store(REAPER_UNAVAILABLE, Relaxed);
                tracing::warn!(
                    "cachette memory backend: the tokio runtime has no timers (enable_time); \
                     expired entries are reclaimed by writes only"
                );
            }
        }
    }
}

impl Default for MemoryBackend {
    /// A store with [`MemoryConfig::default`].
    fn default() -> Self {
        MemoryBackend::new(MemoryConfig::default())
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("entries", &self.len())
            .field("used_memory", &self.used_memory())
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Marks the reaper as stopped however its task ends (including runtime shutdown), so that a
/// later write inside another runtime can start a new one.
struct ReaperGuard(Weak<Inner>);

impl Drop for ReaperGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            // Only a running reaper goes back to idle; "unavailable" stays.
            let _ = inner
                .reaper
                .compare_exchange(REAPER_RUNNING, REAPER_IDLE, Relaxed, Relaxed);
        }
    }
}

async fn reap_periodically(guard: ReaperGuard, mut ticker: tokio::time::Interval) {
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = guard.0.upgrade() else {
            return;
        };
        inner.purge_expired(Instant::now());
    }
}

/// Why an entry leaves the store, for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Deleted,
    Expired,
    Evicted,
}

struct Inner {
    shards: Box<[Shard]>,
    /// Per shard, its earliest deadline in nanoseconds since `created` (or `NO_DEADLINE`),
    /// readable without its lock, to find expired entries quickly. Kept exact by
    /// `ShardGuard`.
    earliest: Box<[AtomicU64]>,
    config: MemoryConfig,
    /// Entries stored, expired ones included until reclaimed.
    entries: AtomicU64,
    /// Sum of entry weights.
    bytes: AtomicU64,
    /// Logical LRU clock: advanced by every write, copied into entries when they are used.
    clock: AtomicU64,
    /// State of the sampling random generator.
    rng: AtomicU64,
    evicted: AtomicU64,
    expired: AtomicU64,
    /// `REAPER_IDLE`, `REAPER_RUNNING` or `REAPER_UNAVAILABLE`.
    reaper: AtomicU8,
    created: Instant,
}

/// One shard, padded so that two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard {
    map: RwLock<ShardMap>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct ShardMap {
    /// Indices into `slots`, hashed by the key's xxh3.
    table: HashTable<u32>,
    /// Entries never move while they live, which keeps scan cursors valid.
    slots: Vec<Option<Slot>>,
    /// Vacant indices of `slots`.
    free: Vec<u32>,
    /// `(deadline, index)` of every entry with a TTL.
    deadlines: BTreeSet<(Instant, u32)>,
}

struct Slot {
    key: Box<str>,
    value: Bytes,
    hash: u64,
    expires_at: Option<Instant>,
    /// The LRU clock when the entry was last read or written.
    access: AtomicU64,
}

impl Slot {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the entry is alive, reading the clock only if it has a TTL.
    fn is_live(&self) -> bool {
        self.expires_at.is_none_or(|at| Instant::now() < at)
    }

    fn weight(&self) -> u64 {
        weight(&self.key, &self.value)
    }

    fn is(&self, hash: u64, key: &str) -> bool {
        self.hash == hash && &*self.key == key
    }

    fn touch(&self, clock: u64) {
        // Skip the store when unchanged, so hot keys read from many cores stay shared.
        if self.access.load(Relaxed) != clock {
            self.access.store(clock, Relaxed);
        }
    }
}

/// An entry chosen for eviction, re-identified by `hash` once its shard is write-locked.
struct Victim {
    shard: usize,
    idx: u32,
    hash: u64,
    access: u64,
}

/// A write lock on a shard that refreshes the shard's `earliest` hint on release.
struct ShardGuard<'a> {
    map: RwLockWriteGuard<'a, ShardMap>,
    earliest: &'a AtomicU64,
    created: Instant,
}

impl Deref for ShardGuard<'_> {
    type Target = ShardMap;

    fn deref(&self) -> &ShardMap {
        &self.map
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut ShardMap {
        &mut self.map
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        let next = self
            .map
            .deadlines
            .first()
            .map_or(NO_DEADLINE, |&(at, _)| nanos_since(self.created, at));
        if self.earliest.load(Relaxed) != next {
            self.earliest.store(next, Relaxed);
        }
    }
}

fn weight(key: &str, value: &Bytes) -> u64 {
    (key.len() as u64)
        .saturating_add(value.len() as u64)
        .saturating_add(ENTRY_OVERHEAD)
}

/// Memory reads of one thread between two units of tokio's task budget spent.
const READS_PER_BUDGET_UNIT: u8 = 8;

/// Spends one unit of tokio's cooperative task budget (`tokio::task::coop::consume_budget`)
/// every [`READS_PER_BUDGET_UNIT`] memory reads of this thread: a task looping on reads that
/// never wait then yields after about 128 × 8 of them instead of never. Spending on every
/// read would cost about 80 ns per read (the budget's bookkeeping and a yield every 128);
/// this costs a thread-local increment. A no-op outside a tokio task.
pub(crate) async fn cooperate() {
    thread_local!(static READS: std::cell::Cell<u8> = const { std::cell::Cell::new(0) });
    let spend = READS.with(|reads| {
        let n = reads.get().wrapping_add(1) % READS_PER_BUDGET_UNIT;
        reads.set(n);
        n == 0
    });
    if spend {
        tokio::task::coop::consume_budget().await;
    }
}

fn hash_key(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// The shard of a hash: middle bits, since hashbrown uses the low bits for the bucket and the
/// top 7 as tag.
fn shard_index(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

fn nanos_since(origin: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin).as_nanos()).unwrap_or(NO_DEADLINE - 1)
}

/// The deadline of a TTL already checked by [`checked_ttl`] (`min` only guards the overflow).
fn deadline(now: Instant, ttl: Duration) -> Option<Instant> {
    now.checked_add(ttl.min(MAX_TTL))
}

/// A positive TTL by the rule of every backend ([`crate::ttl::check`]), or an error naming
/// the key.
fn checked_ttl(key: &str, ttl: Duration) -> Result<Duration> {
    crate::ttl::check(ttl).map_err(|message| Error::invalid(message).with_key(key))
}

fn to_int(n: u64) -> InfoValue {
    InfoValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn zero_ttl(key: &str) -> Error {
    Error::invalid("TTL must be greater than zero").with_key(key)
}

impl ShardMap {
    fn slot(&self, idx: u32) -> Option<&Slot> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, idx: u32) -> Option<&mut Slot> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash, |&idx| {
                slots
                    .get(idx as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|slot| &*slot.key == key)
            })
            .copied()
    }

    fn move_deadline(&mut self, idx: u32, old: Option<Instant>, new: Option<Instant>) {
        if old != new {
            if let Some(old) = old {
                self.deadlines.remove(&(old, idx));
            }
            if let Some(new) = new {
                self.deadlines.insert((new, idx));
            }
        }
    }

    /// Stores a new entry (its key must be absent) and returns its index.
    fn insert(&mut self, slot: Slot) -> Result<u32> {
        let (hash, expires_at) = (slot.hash, slot.expires_at);
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(vacant) = self.slots.get_mut(idx as usize) {
                    *vacant = Some(slot);
                }
                idx
            }
            None => {
                let idx = u32::try_from(self.slots.len())
                    .map_err(|_| Error::new(ErrorKind::Backend, "memory backend shard is full"))?;
                self.slots.push(Some(slot));
                idx
            }
        };
        self.move_deadline(idx, None, expires_at);
        let ShardMap { table, slots, .. } = self;
        table.insert_unique(hash, idx, |&i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |slot| slot.hash)
        });
        Ok(idx)
    }

    /// Replaces the value and deadline of the entry at `idx`; returns its previous weight.
    fn replace(
        &mut self,
        idx: u32,
        value: Bytes,
        expires_at: Option<Instant>,
        stamp: u64,
    ) -> Option<u64> {
        let slot = self.slot_mut(idx)?;
        let old_weight = slot.weight();
        let old_deadline = slot.expires_at;
        slot.value = value;
        slot.expires_at = expires_at;
        slot.access.store(stamp, Relaxed);
        self.move_deadline(idx, old_deadline, expires_at);
        Some(old_weight)
    }

    /// Takes the entry at `idx` out of the shard.
    fn take(&mut self, idx: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(idx as usize)?.take()?;
        if let Ok(entry) = self.table.find_entry(slot.hash, |&i| i == idx) {
            entry.remove();
        }
        self.move_deadline(idx, slot.expires_at, None);
        if self.table.is_empty() {
            // Nothing lives here, so no scan can miss anything: start the slab afresh.
            self.slots.clear();
            self.free.clear();
            if self.slots.capacity() > 1024 {
                *self = ShardMap::default();
            }
        } else {
            self.free.push(idx);
        }
        Some(slot)
    }
}

impl Inner {
    fn new(mut config: MemoryConfig) -> Self {
        if config.max_entries == Some(0) {
            config.max_entries = Some(1);
        }
        Inner {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    map: RwLock::new(ShardMap::default()),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                })
                .collect(),
            earliest: (0..SHARDS).map(|_| AtomicU64::new(NO_DEADLINE)).collect(),
            config,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            rng: AtomicU64::new(0x853c_49e6_748f_ea9b),
            evicted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            reaper: AtomicU8::new(REAPER_IDLE),
            created: Instant::now(),
        }
    }

    fn write(&self, shard: usize) -> ShardGuard<'_> {
        ShardGuard {
            map: self.shards[shard].map.write(),
            earliest: &self.earliest[shard],
            created: self.created,
        }
    }

    /// A pseudo-random number (splitmix64 over a shared counter).
    fn random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn over_limit(&self) -> bool {
        self.config
            .max_entries
            .is_some_and(|max| self.entries.load(Relaxed) > max)
            || self
                .config
                .max_bytes
                .is_some_and(|max| self.bytes.load(Relaxed) > max)
    }

    /// Removes the entry at `idx` and accounts for it.
    fn remove(&self, map: &mut ShardMap, idx: u32, why: Removal) -> Option<Slot> {
        let slot = map.take(idx)?;
        self.entries.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(slot.weight(), Relaxed);
        match why {
            Removal::Deleted => {}
            Removal::Expired => {
                self.expired.fetch_add(1, Relaxed);
            }
            Removal::Evicted => {
                self.evicted.fetch_add(1, Relaxed);
            }
        }
        Some(slot)
    }

    /// Reclaims up to `max` expired entries of a shard, earliest deadline first.
    fn pop_expired(&self, map: &mut ShardMap, now: Instant, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            match map.deadlines.first() {
                Some(&(at, _)) if at <= now => {}
                _ => break,
            }
            let Some((at, idx)) = map.deadlines.pop_first() else {
                break;
            };
            if map
                .slot(idx)
                .is_some_and(|slot| slot.expires_at == Some(at))
                && self.remove(map, idx, Removal::Expired).is_some()
            {
                removed += 1;
            }
        }
        removed
    }

    /// The live entry at `key`, reclaiming it first if it has expired.
    fn find_live(&self, map: &mut ShardMap, hash: u64, key: &str, now: Instant) -> Option<u32> {
        let idx = map.find(hash, key)?;
        if map.slot(idx).is_some_and(|slot| slot.is_expired(now)) {
            self.remove(map, idx, Removal::Expired);
            return None;
        }
        Some(idx)
    }

    fn get(&self, key: &str) -> Option<Bytes> {
        let hash = hash_key(key);
        let shard = &self.shards[shard_index(hash)];
        let map = shard.map.read();
        let found = map
            .find(hash, key)
            .and_then(|idx| map.slot(idx))
            .filter(|slot| slot.is_live());
        match found {
            Some(slot) => {
                slot.touch(self.clock.load(Relaxed));
                shard.hits.fetch_add(1, Relaxed);
                Some(slot.value.clone())
            }
            None => {
                shard.misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// `SET` (`only_if_absent: false`) and `SET NX`; returns whether the value was stored.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool> {
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(zero_ttl(key));
        }
        let ttl = ttl.map(|ttl| checked_ttl(key, ttl)).transpose()?;
        let new_weight = weight(key, &value);
        let hash = hash_key(key);
        let home = shard_index(hash);
        let now = Instant::now();
        {
            let mut map = self.write(home);
            let existing = self.find_live(&mut map, hash, key, now);
            if only_if_absent && existing.is_some() {
                return Ok(false);
            }
            if let Some(max) = self.config.max_bytes.filter(|&max| new_weight > max) {
                if let Some(idx) = existing {
                    self.remove(&mut map, idx, Removal::Deleted);
                }
                return Err(Error::invalid(format!(
                    "an entry of {new_weight} bytes does not fit in the memory backend's \
                     max_bytes ({max})"
                ))
                .with_key(key));
            }
            let stamp = self.clock.fetch_add(1, Relaxed);
            let expires_at = ttl.and_then(|ttl| deadline(now, ttl));
            match existing {
                Some(idx) => {
                    // `existing` is a live index, so the slot is there.
                    let old_weight = map.replace(idx, value, expires_at, stamp).unwrap_or(0);
                    if new_weight >= old_weight {
                        self.bytes.fetch_add(new_weight - old_weight, Relaxed);
                    } else {
                        self.bytes.fetch_sub(old_weight - new_weight, Relaxed);
                    }
                }
                None => {
                    map.insert(Slot {
                        key: key.into(),
                        value,
                        hash,
                        expires_at,
                        access: AtomicU64::new(stamp),
                    })?;
                    self.entries.fetch_add(1, Relaxed);
                    self.bytes.fetch_add(new_weight, Relaxed);
                }
            }
            self.pop_expired(&mut map, now, SWEEP_PER_WRITE);
        }
        self.evict(home, hash, key, now);
        Ok(true)
    }

    /// Removes entries until within limits: expired ones first, then approximately least
    /// recently used ones. Never removes the entry `(hash, key)` just written.
    fn evict(&self, home: usize, hash: u64, key: &str, now: Instant) {
        let mut lost_races = 0;
        while self.over_limit() {
            let now_nanos = nanos_since(self.created, now);
            let expired_shard = (0..SHARDS)
                .map(|offset| (home + offset) % SHARDS)
                .find(|&shard| self.earliest[shard].load(Relaxed) <= now_nanos);
            if let Some(shard) = expired_shard {
                let mut map = self.write(shard);
                self.pop_expired(&mut map, now, REAP_BATCH);
                continue;
            }
            let Some(victim) = self.pick_victim(hash, key) else {
                return;
            };
            let mut map = self.write(victim.shard);
            let still_there = map
                .slot(victim.idx)
                .is_some_and(|slot| slot.hash == victim.hash && !slot.is(hash, key));
            if still_there {
                self.remove(&mut map, victim.idx, Removal::Evicted);
            } else {
                lost_races += 1;
                if lost_races > 64 {
                    return;
                }
            }
        }
    }

    /// Samples random entries of the store and returns the least recently used (never the
    /// entry `(hash, key)`); walks the whole store when it is too sparse to sample.
    fn pick_victim(&self, hash: u64, key: &str) -> Option<Victim> {
        let mut best: Option<Victim> = None;
        let mut sampled = 0;
        for _ in 0..EVICTION_PROBES {
            if sampled == EVICTION_SAMPLES {
                break;
            }
            let random = self.random();
            let shard = (random as usize) & (SHARDS - 1);
            let map = self.shards[shard].map.read();
            let len = map.slots.len();
            if len == 0 {
                continue;
            }
            let start = ((random >> 32) % len as u64) as usize;
            let found = (start..len.min(start + PROBE_RUN))
                .filter_map(|idx| Some((idx as u32, map.slots[idx].as_ref()?)))
                .find(|(_, slot)| !slot.is(hash, key));
            if let Some((idx, slot)) = found {
                sampled += 1;
                let access = slot.access.load(Relaxed);
                if best.as_ref().is_none_or(|best| access < best.access) {
                    best = Some(Victim {
                        shard,
                        idx,
                        hash: slot.hash,
                        access,
                    });
                }
            }
        }
        if best.is_some() {
            return best;
        }
        let first = (self.random() as usize) & (SHARDS - 1);
        for offset in 0..SHARDS {
            let shard = (first + offset) % SHARDS;
            let map = self.shards[shard].map.read();
            for (idx, slot) in map.slots.iter().enumerate() {
                let Some(slot) = slot.as_ref().filter(|slot| !slot.is(hash, key)) else {
                    continue;
                };
                let access = slot.access.load(Relaxed);
                if best.as_ref().is_none_or(|best| access < best.access) {
                    best = Some(Victim {
                        shard,
                        idx: idx as u32,
                        hash: slot.hash,
                        access,
                    });
                }
            }
        }
        best
    }

    /// Runs `op` on the live entry at `key` (if any) under its shard's write lock.
    fn with_live<T>(
        &self,
        key: &str,
        op: impl FnOnce(&mut ShardMap, Option<u32>, Instant) -> T,
    ) -> T {
        let hash = hash_key(key);
        let now = Instant::now();
        let mut map = self.write(shard_index(hash));
        let idx = self.find_live(&mut map, hash, key, now);
        op(&mut map, idx, now)
    }

    fn delete(&self, key: &str) -> bool {
        self.with_live(key, |map, idx, _| {
            idx.and_then(|idx| self.remove(map, idx, Removal::Deleted))
                .is_some()
        })
    }

    fn delete_if_equals(&self, key: &str, value: &[u8]) -> bool {
        self.with_live(key, |map, idx, _| {
            let equal = idx.filter(|&idx| {
                map.slot(idx)
                    .is_some_and(|slot| slot.value.as_ref() == value)
            });
            equal
                .and_then(|idx| self.remove(map, idx, Removal::Deleted))
                .is_some()
        })
    }

    fn exists(&self, key: &str) -> bool {
        let hash = hash_key(key);
        let map = self.shards[shard_index(hash)].map.read();
        map.find(hash, key)
            .and_then(|idx| map.slot(idx))
            .is_some_and(Slot::is_live)
    }

    fn expire(&self, key: &str, ttl: Duration) -> bool {
        self.with_live(key, |map, idx, now| {
            let Some(idx) = idx else {
                return false;
            };
            if ttl.is_zero() {
                // As Redis: a TTL of zero deletes the key.
                return self.remove(map, idx, Removal::Deleted).is_some();
            }
            let Some(slot) = map.slot_mut(idx) else {
                return false;
            };
            let old = slot.expires_at;
            slot.expires_at = deadline(now, ttl);
            let new = slot.expires_at;
            map.move_deadline(idx, old, new);
            true
        })
    }

    fn persist(&self, key: &str) -> bool {
        self.with_live(key, |map, idx, _| {
            let Some((idx, slot)) = idx.and_then(|idx| Some((idx, map.slot_mut(idx)?))) else {
                return false;
            };
            let Some(old) = slot.expires_at.take() else {
                return false;
            };
            map.move_deadline(idx, Some(old), None);
            true
        })
    }

    fn ttl(&self, key: &str) -> KeyTtl {
        let hash = hash_key(key);
        let map = self.shards[shard_index(hash)].map.read();
        let Some(slot) = map.find(hash, key).and_then(|idx| map.slot(idx)) else {
            return KeyTtl::Missing;
        };
        match slot.expires_at {
            None => KeyTtl::Persistent,
            Some(at) => {
                let now = Instant::now();
                if at <= now {
                    KeyTtl::Missing
                } else {
                    KeyTtl::Expires(at - now)
                }
            }
        }
    }

    fn scan(&self, cursor: u64, pattern: &str, count: usize) -> ScanPage {
        let pattern = Pattern::new(pattern);
        let budget = count.clamp(1, MAX_SCAN_WORK);
        let mut shard = usize::try_from(cursor >> 32).unwrap_or(usize::MAX);
        let mut pos = (cursor & 0xffff_ffff) as usize;
        let now = Instant::now();
        let mut keys = Vec::new();
        let mut work = 0;
        while let Some(current) = self.shards.get(shard) {
            let map = current.map.read();
            while let Some(entry) = map.slots.get(pos) {
                if work == budget {
                    return ScanPage {
                        cursor: ((shard as u64) << 32) | pos as u64,
                        keys,
                    };
                }
                work += 1;
                if let Some(slot) = entry {
                    if !slot.is_expired(now) && pattern.is_match(&slot.key) {
                        keys.push(slot.key.to_string());
                    }
                }
                pos += 1;
            }
            shard += 1;
            pos = 0;
        }
        ScanPage { cursor: 0, keys }
    }

    fn purge_expired(&self, now: Instant) -> u64 {
        let now_nanos = nanos_since(self.created, now);
        let mut removed = 0;
        for shard in 0..SHARDS {
            // The lock is released between batches so readers are never held up for long.
            while self.earliest[shard].load(Relaxed) <= now_nanos {
                let mut map = self.write(shard);
                let batch = self.pop_expired(&mut map, now, REAP_BATCH);
                removed += batch as u64;
                if batch < REAP_BATCH {
                    break;
                }
            }
        }
        removed
    }

    fn info(&self) -> ServerInfo {
        let (mut hits, mut misses, mut expires) = (0, 0, 0);
        for shard in self.shards.iter() {
            hits += shard.hits.load(Relaxed);
            misses += shard.misses.load(Relaxed);
            expires += shard.map.read().deadlines.len() as u64;
        }
        let keys = self.entries.load(Relaxed);
        let used = self.bytes.load(Relaxed);
        let max_bytes = self.config.max_bytes.unwrap_or(0);
        let text = |s: &str| InfoValue::Text(s.to_owned());
        let section = |fields: Vec<(&str, InfoValue)>| {
            fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect::<BTreeMap<_, _>>()
        };
        let mut info = ServerInfo::default();
        info.sections.insert(
            "server".to_owned(),
            section(vec![
                ("backend", text("memory")),
                ("shards", to_int(SHARDS as u64)),
                (
                    "uptime_in_seconds",
                    to_int(self.created.elapsed().as_secs()),
                ),
            ]),
        );
        info.sections.insert(
            "memory".to_owned(),
            section(vec![
                ("used_memory", to_int(used)),
                ("used_memory_human", InfoValue::Text(human_bytes(used))),
                ("maxmemory", to_int(max_bytes)),
                ("maxmemory_human", InfoValue::Text(human_bytes(max_bytes))),
                ("maxmemory_policy", text("allkeys-lru")),
                ("max_entries", to_int(self.config.max_entries.unwrap_or(0))),
            ]),
        );
        info.sections.insert(
            "stats".to_owned(),
            section(vec![
                ("evicted_keys", to_int(self.evicted.load(Relaxed))),
                ("expired_keys", to_int(self.expired.load(Relaxed))),
                ("keyspace_hits", to_int(hits)),
                ("keyspace_misses", to_int(misses)),
            ]),
        );
        info.sections.insert(
            "keyspace".to_owned(),
            section(vec![(
                "db0",
                InfoValue::Text(format!("keys={keys},expires={expires},avg_ttl=0")),
            )]),
        );
        info.keyspace.insert(
            "db0".to_owned(),
            KeyspaceStats {
                keys,
                expires,
                avg_ttl_ms: 0,
            },
        );
        info
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// Completes without waiting, but cooperates with tokio's task budget ([`cooperate`]): a
    /// task looping on reads yields now and then, so it cannot starve the runtime's other
    /// tasks (timers, reconnects). Use [`MemoryBackend::get_now`] for a plain synchronous read.
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        cooperate().await;
        Ok(self.get_now(key))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.ensure_reaper();
        self.inner.set(key, value, ttl, false).map(|_| ())
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.ensure_reaper();
        self.inner.set(key, value, ttl, true)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        Ok(keys.iter().filter(|key| self.inner.delete(key)).count() as u64)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.inner.exists(key))
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.ensure_reaper();
        // As Redis: a TTL of zero deletes the key; any other goes through the TTL rule.
        let ttl = if ttl.is_zero() {
            ttl
        } else {
            checked_ttl(key, ttl)?
        };
        Ok(self.inner.expire(key, ttl))
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        Ok(self.inner.persist(key))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        Ok(self.inner.ttl(key))
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        Ok(self.inner.scan(cursor, pattern, count))
    }

    async fn info(&self) -> Result<ServerInfo> {
        Ok(self.inner.info())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.inner.delete(key))
    }

    /// Atomic: the comparison and the removal happen under one lock.
    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        Ok(self.inner.delete_if_equals(key, value))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|key| self.inner.get(key)).collect())
    }

    /// Stores every item it can and returns the first error (an item heavier than
    /// `max_bytes`); a zero TTL stores nothing.
    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(zero_ttl(items.first().map_or("", |(key, _)| key)));
        }
        self.ensure_reaper();
        let mut first_error = None;
        for (key, value) in items {
            if let Err(err) = self.inner.set(key, value.clone(), ttl, false) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Item 11: 64 tasks looping on memory reads (through the manager's fast path and through
    /// `Backend::get`) with no other await, on a 2-worker runtime, cannot keep a timer task
    /// from running. Bounded: the loops stop after 5 s at most.
    #[test]
    fn a_loop_of_memory_reads_cannot_starve_the_runtime() {
        use std::sync::atomic::AtomicBool;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cache = rt.block_on(async { crate::CacheManager::memory() });
        let backend: Arc<dyn Backend> = cache.backend().clone();
        rt.block_on(async { cache.set("k", &1u64, crate::Ttl::Never).await.unwrap() });

        let started = std::time::Instant::now();
        let ran = Arc::new(AtomicBool::new(false));
        let timer = ran.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            timer.store(true, Relaxed);
        });
        let stop = Arc::new(AtomicBool::new(false));
        let loops: Vec<_> = (0..64)
            .map(|i| {
                let (cache, backend, stop) = (cache.clone(), backend.clone(), stop.clone());
                rt.spawn(async move {
                    while !stop.load(Relaxed) {
                        if i % 2 == 0 {
                            let _ = cache.get::<u64>("k").await;
                        } else {
                            let _ = backend.get("cache:k").await;
                        }
                    }
                })
            })
            .collect();
        let deadline = started + Duration::from_secs(5);
        while !ran.load(Relaxed) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let after = started.elapsed();
        let timer_ran = ran.load(Relaxed);
        stop.store(true, Relaxed);
        for l in loops {
            rt.block_on(l).unwrap();
        }
        assert!(
            timer_ran && after < Duration::from_secs(2),
            "timer ran: {timer_ran} after {after:?}"
        );
    }

    /// Item 12: the default store is bounded in bytes, not only in entries. 4 000 values of
    /// 100 KB (400 MB accounted; one shared allocation, so the test itself stays small) never
    /// take the backend's byte accounting over 256 MiB, whichever way the store was built.
    #[tokio::test]
    async fn the_default_store_is_bounded_in_bytes() {
        use crate::{CacheManager, Config, Ttl};
        assert_eq!(MemoryConfig::default().max_bytes, Some(DEFAULT_MAX_BYTES));
        assert_eq!(Config::default().memory_max_bytes, Some(DEFAULT_MAX_BYTES));
        let value = Bytes::from(vec![7u8; 100_000]);
        let m = MemoryBackend::default();
        for i in 0..4_000 {
            m.set(&format!("big:{i}"), value.clone(), None)
                .await
                .unwrap();
            assert!(m.used_memory() <= DEFAULT_MAX_BYTES, "{}", m.used_memory());
        }
        assert!(m.used_memory() > DEFAULT_MAX_BYTES / 2);
        assert!(m.len() < 4_000);

        let built = CacheManager::builder().memory().build().unwrap();
        for cache in [CacheManager::memory(), built] {
            for i in 0..4_000 {
                cache
                    .set_raw(&format!("big:{i}"), value.clone(), Ttl::Never)
                    .await
                    .unwrap();
            }
            let info = cache.info().await.unwrap();
            let used = info.used_memory().unwrap();
            assert!(
                used <= DEFAULT_MAX_BYTES && used > DEFAULT_MAX_BYTES / 2,
                "{used}"
            );
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn unbounded() -> MemoryBackend {
        MemoryBackend::new(MemoryConfig {
            max_entries: None,
            max_bytes: None,
            ..MemoryConfig::default()
        })
    }

    fn stat(info: &ServerInfo, section: &str, field: &str) -> i64 {
        info.field(section, field)
            .and_then(InfoValue::as_i64)
            .unwrap_or_else(|| panic!("missing {section}.{field}"))
    }

    async fn all_keys(backend: &MemoryBackend, pattern: &str) -> Vec<String> {
        let mut keys = backend.keys(pattern).await.unwrap();
        keys.sort();
        keys
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expires_with_paused_time() {
        let m = unbounded();
        m.set("k", b("v"), Some(Duration::from_secs(10)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(m.get("k").await.unwrap(), Some(b("v")));
        assert_eq!(
            m.ttl("k").await.unwrap(),
            KeyTtl::Expires(Duration::from_secs(1))
        );
        assert!(m.exists("k").await.unwrap());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(m.get("k").await.unwrap(), None);
        assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Missing);
        assert!(!m.exists("k").await.unwrap());
        assert!(m.keys("*").await.unwrap().is_empty());
        assert!(!m.delete("k").await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_keys_stay() {
        let m = unbounded();
        m.set("p", b("v"), None).await.unwrap();
        tokio::time::advance(Duration::from_secs(1000 * 86_400)).await;
        assert_eq!(m.get("p").await.unwrap(), Some(b("v")));
        assert_eq!(m.ttl("p").await.unwrap(), KeyTtl::Persistent);
        // A later `set` without TTL makes an expiring key persistent again, as Redis does.
        m.set("e", b("1"), Some(Duration::from_secs(5)))
            .await
            .unwrap();
        m.set("e", b("2"), None).await.unwrap();
        assert_eq!(m.ttl("e").await.unwrap(), KeyTtl::Persistent);
        let info = m.info().await.unwrap();
        assert_eq!(info.keyspace["db0"].expires, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn expire_persist_ttl_states() {
        let m = unbounded();
        assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Missing);
        assert!(!m.expire("k", Duration::from_secs(5)).await.unwrap());
        assert!(!m.persist("k").await.unwrap());

        m.set("k", b("v"), None).await.unwrap();
        assert!(!m.persist("k").await.unwrap(), "no TTL to remove");
        assert!(m.expire("k", Duration::from_secs(5)).await.unwrap());
        assert_eq!(
            m.ttl("k").await.unwrap(),
            KeyTtl::Expires(Duration::from_secs(5))
        );
        assert!(m.expire("k", Duration::from_secs(50)).await.unwrap());
        assert_eq!(
            m.ttl("k").await.unwrap().remaining(),
            Some(Duration::from_secs(50))
        );
        assert!(m.persist("k").await.unwrap());
        assert_eq!(m.ttl("k").await.unwrap(), KeyTtl::Persistent);

        m.expire("k", Duration::from_secs(1)).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            !m.expire("k", Duration::from_secs(5)).await.unwrap(),
            "expired key"
        );
        assert!(!m.persist("k").await.unwrap());
        assert_eq!(m.len(), 0, "touching an expired key reclaims it");

        m.set("z", b("v"), None).await.unwrap();
        assert!(
            m.expire("z", Duration::ZERO).await.unwrap(),
            "zero TTL deletes"
        );
        assert_eq!(m.ttl("z").await.unwrap(), KeyTtl::Missing);

        let err = m.set("z", b("v"), Some(Duration::ZERO)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        // The longest TTL is the same as on every backend; longer ones are refused, not capped.
        m.set("long", b("v"), Some(MAX_TTL)).await.unwrap();
        assert_eq!(m.ttl("long").await.unwrap().remaining(), Some(MAX_TTL));
        for huge in [MAX_TTL + Duration::from_nanos(1), Duration::MAX] {
            let err = m.set("long", b("w"), Some(huge)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("long"), "{err}");
            let err = m.expire("long", huge).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
        assert_eq!(
            m.get_now("long"),
            Some(b("v")),
            "a refused TTL changes nothing"
        );
        // Sub-millisecond TTLs are rounded up to whole milliseconds, never down to zero.
        m.set("tiny", b("v"), Some(Duration::from_nanos(1)))
            .await
            .unwrap();
        assert_eq!(
            m.ttl("tiny").await.unwrap().remaining(),
            Some(Duration::from_millis(1))
        );
        assert!(m.expire("tiny", Duration::from_micros(1500)).await.unwrap());
        assert_eq!(
            m.ttl("tiny").await.unwrap().remaining(),
            Some(Duration::from_millis(2))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn set_nx_only_when_absent_or_expired() {
        let m = unbounded();
        assert!(m
            .set_nx("lock", b("a"), Some(Duration::from_secs(1)))
            .await
            .unwrap());
        assert!(!m.set_nx("lock", b("b"), None).await.unwrap());
        assert_eq!(m.get("lock").await.unwrap(), Some(b("a")));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(m.set_nx("lock", b("c"), None).await.unwrap());
        assert_eq!(m.get("lock").await.unwrap(), Some(b("c")));
        assert_eq!(m.ttl("lock").await.unwrap(), KeyTtl::Persistent);
        assert_eq!(m.len(), 1);
    }

    #[tokio::test]
    async fn delete_if_equals_is_compare_and_delete() {
        let m = unbounded();
        assert!(!m.delete_if_equals("lock", b"token").await.unwrap());
        m.set("lock", b("token"), None).await.unwrap();
        assert!(!m.delete_if_equals("lock", b"other").await.unwrap());
        assert!(m.exists("lock").await.unwrap());
        assert!(m.delete_if_equals("lock", b"token").await.unwrap());
        assert!(!m.exists("lock").await.unwrap());
        assert!(!m.delete_if_equals("lock", b"token").await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn delete_if_equals_ignores_expired() {
        let m = unbounded();
        m.set("lock", b("t"), Some(Duration::from_millis(10)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(!m.delete_if_equals("lock", b"t").await.unwrap());
    }

    #[tokio::test]
    async fn batches() {
        let m = unbounded();
        let items: Vec<(String, Bytes)> = (0..10)
            .map(|i| (format!("k{i}"), b(&i.to_string())))
            .collect();
        m.set_many(&items, None).await.unwrap();
        let keys = vec!["k1".to_owned(), "nope".to_owned(), "k9".to_owned()];
        assert_eq!(
            m.get_many(&keys).await.unwrap(),
            vec![Some(b("1")), None, Some(b("9"))]
        );
        assert_eq!(m.delete_many(&keys).await.unwrap(), 2);
        assert_eq!(m.len(), 8);
        assert_eq!(m.delete_pattern("k*").await.unwrap(), 8);
        assert!(m.is_empty());
        assert_eq!(m.used_memory(), 0);
    }

    #[tokio::test]
    async fn evicts_by_count_keeping_recently_used() {
        let m = MemoryBackend::new(MemoryConfig {
            max_entries: Some(100),
            ..MemoryConfig::default()
        });
        m.set("hot", b("h"), None).await.unwrap();
        for i in 0..1000 {
            m.set(&format!("k{i}"), b("v"), None).await.unwrap();
            assert_eq!(
                m.get("hot").await.unwrap(),
                Some(b("h")),
                "hot key evicted at {i}"
            );
        }
        assert_eq!(m.len(), 100);
        let info = m.info().await.unwrap();
        assert_eq!(stat(&info, "stats", "evicted_keys"), 901);
        assert_eq!(stat(&info, "memory", "max_entries"), 100);
        assert_eq!(info.keys_in_db(0), 100);
        // The newest key is never the victim of its own insertion.
        assert!(m.exists("k999").await.unwrap());
    }

    #[tokio::test]
    async fn evicts_by_bytes_and_rejects_oversized_values() {
        let value = Bytes::from(vec![7u8; 1000]);
        let per_entry = weight("k000", &value);
        let max_bytes = 10 * per_entry;
        let m = MemoryBackend::new(MemoryConfig {
            max_entries: None,
            max_bytes: Some(max_bytes),
            ..MemoryConfig::default()
        });
        for i in 0..100 {
            m.set(&format!("k{i:03}"), value.clone(), None)
                .await
                .unwrap();
            assert!(m.used_memory() <= max_bytes);
        }
        assert_eq!(m.len(), 10);
        let info = m.info().await.unwrap();
        assert_eq!(stat(&info, "stats", "evicted_keys"), 90);
        assert_eq!(
            stat(&info, "memory", "used_memory"),
            (10 * per_entry) as i64
        );
        assert_eq!(stat(&info, "memory", "maxmemory"), max_bytes as i64);
        assert!(info.used_memory_human().is_some());

        // Too big for the whole store: refused, and the stale value is gone.
        let huge = Bytes::from(vec![0u8; max_bytes as usize]);
        m.set("k099", b("small"), None).await.unwrap();
        let err = m.set("k099", huge.clone(), None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.key(), Some("k099"));
        assert_eq!(m.get("k099").await.unwrap(), None);
        assert!(m.set_nx("big", huge, None).await.is_err());
        // Still usable.
        m.set("after", value.clone(), None).await.unwrap();
        assert_eq!(m.get("after").await.unwrap(), Some(value.clone()));
        // One entry that takes most of the budget evicts everything else it needs to.
        let most = Bytes::from(vec![1u8; (max_bytes - ENTRY_OVERHEAD - 10) as usize]);
        m.set("most", most.clone(), None).await.unwrap();
        assert_eq!(m.get("most").await.unwrap(), Some(most));
        assert!(m.used_memory() <= max_bytes);
        assert_eq!(m.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_prefers_expired_entries() {
        let m = MemoryBackend::new(MemoryConfig {
            max_entries: Some(10),
            reap_interval: Duration::ZERO,
            ..MemoryConfig::default()
        });
        for i in 0..10 {
            m.set(&format!("t{i}"), b("v"), Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..10 {
            m.set(&format!("p{i}"), b("v"), None).await.unwrap();
        }
        let info = m.info().await.unwrap();
        assert_eq!(stat(&info, "stats", "evicted_keys"), 0);
        assert_eq!(stat(&info, "stats", "expired_keys"), 10);
        assert_eq!(m.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn background_reaper_reclaims_without_reads() {
        let m = unbounded();
        for i in 0..100 {
            m.set(&format!("t{i}"), b("v"), Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        for i in 0..5 {
            m.set(&format!("p{i}"), b("v"), None).await.unwrap();
        }
        assert_eq!(m.len(), 105);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(m.len(), 5);
        let info = m.info().await.unwrap();
        assert_eq!(stat(&info, "stats", "expired_keys"), 100);
        assert_eq!(info.keyspace["db0"].expires, 0);
        assert_eq!(m.used_memory(), 5 * weight("p0", &b("v")));
    }

    #[tokio::test(start_paused = true)]
    async fn reaper_stops_when_backend_dropped() {
        let m = unbounded();
        assert_eq!(m.inner.reaper.load(Relaxed), REAPER_RUNNING);
        let weak = Arc::downgrade(&m.inner);
        let metrics = tokio::runtime::Handle::current().metrics();
        assert_eq!(metrics.num_alive_tasks(), 1);
        drop(m);
        assert!(weak.upgrade().is_none());
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(metrics.num_alive_tasks(), 0);
    }

    #[test]
    fn works_outside_a_runtime_then_reaps_inside_one() {
        let m = MemoryBackend::new(MemoryConfig::default());
        assert_eq!(m.inner.reaper.load(Relaxed), REAPER_IDLE);
        // Synchronous use without any runtime.
        m.inner
            .set("a", b("1"), Some(Duration::from_millis(1)), false)
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(m.inner.get("a"), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.purge_expired(), 1);
        assert!(m.is_empty());

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            m.set("t", b("v"), Some(Duration::from_secs(1)))
                .await
                .unwrap();
            assert_eq!(
                m.inner.reaper.load(Relaxed),
                REAPER_RUNNING,
                "started on first write"
            );
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(m.is_empty());
        });
        drop(runtime);
        assert_eq!(
            m.inner.reaper.load(Relaxed),
            REAPER_IDLE,
            "runtime gone, reaper gone"
        );
    }

    #[test]
    fn runtime_without_timers_falls_back_to_writes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let m = MemoryBackend::default();
            assert_eq!(m.inner.reaper.load(Relaxed), REAPER_UNAVAILABLE);
            m.set("t", b("v"), Some(Duration::from_millis(1)))
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(m.get("t").await.unwrap(), None);
            m.set("t", b("w"), None).await.unwrap();
            assert_eq!(m.len(), 1);
            assert_eq!(m.inner.reaper.load(Relaxed), REAPER_UNAVAILABLE);
        });
    }

    #[tokio::test(start_paused = true)]
    async fn writes_sweep_expired_entries_without_reaper() {
        let m = MemoryBackend::new(MemoryConfig {
            max_entries: None,
            reap_interval: Duration::ZERO,
            ..MemoryConfig::default()
        });
        for i in 0..1000 {
            m.set(&format!("t{i}"), b("v"), Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..1000 {
            m.set(&format!("p{i}"), b("v"), None).await.unwrap();
        }
        assert!(
            m.len() < 1500,
            "writes reclaimed expired entries: {}",
            m.len()
        );
    }

    #[tokio::test]
    async fn scan_returns_every_key_of_100k() {
        let m = unbounded();
        let items: Vec<(String, Bytes)> =
            (0..100_000).map(|i| (format!("key:{i}"), b("v"))).collect();
        m.set_many(&items, None).await.unwrap();
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let page = m.scan(cursor, "key:*", 1000).await.unwrap();
            assert!(page.keys.len() <= 1000);
            for key in page.keys {
                assert!(seen.insert(key), "duplicate");
            }
            calls += 1;
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 100_000);
        assert!(calls <= 100 + SHARDS + 1, "{calls} calls");
        assert_eq!(m.keys("key:1234?").await.unwrap().len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scan_is_complete_under_concurrent_writes() {
        let m = unbounded();
        let stable: Vec<(String, Bytes)> =
            (0..100_000).map(|i| (format!("s:{i}"), b("v"))).collect();
        m.set_many(&stable, None).await.unwrap();
        let volatile: Vec<(String, Bytes)> =
            (0..20_000).map(|i| (format!("v:{i}"), b("v"))).collect();
        m.set_many(&volatile, None).await.unwrap();

        let writer = {
            let m = m.clone();
            tokio::spawn(async move {
                for round in 0..50_000u32 {
                    m.set(&format!("new:{round}"), b("x"), None).await.unwrap();
                    m.delete(&format!("v:{}", round % 20_000)).await.unwrap();
                    m.set(&format!("s:{}", round % 100_000), b("y"), None)
                        .await
                        .unwrap();
                    if round % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let mut seen = HashSet::new();
        let mut cursor = 0;
        loop {
            let page = m.scan(cursor, "s:*", 100).await.unwrap();
            for key in page.keys {
                assert!(seen.insert(key.clone()), "{key} returned twice");
            }
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert_eq!(seen.len(), 100_000);
    }

    #[tokio::test]
    async fn scan_uses_redis_globs_with_escapes() {
        let m = unbounded();
        for key in ["a*b", "axb", "a[1]", "a1", "a?", "ab", "é:1", "", "\\x"] {
            m.set(key, b("v"), None).await.unwrap();
        }
        assert_eq!(all_keys(&m, "a\\*b").await, ["a*b"]);
        assert_eq!(all_keys(&m, "a*b").await, ["a*b", "ab", "axb"]);
        assert_eq!(all_keys(&m, "a\\[1\\]").await, ["a[1]"]);
        assert_eq!(all_keys(&m, "a[1]").await, ["a1"]);
        assert_eq!(all_keys(&m, "a\\?").await, ["a?"]);
        assert_eq!(all_keys(&m, "a[^*x]*").await, ["a1", "a?", "a[1]", "ab"]);
        assert_eq!(
            all_keys(&m, &format!("{}*", crate::glob::escape("a["))).await,
            ["a[1]"]
        );
        assert_eq!(all_keys(&m, "é:?").await, ["é:1"]);
        assert_eq!(all_keys(&m, "\\\\*").await, ["\\x"]);
        assert_eq!(
            all_keys(&m, "*").await.len(),
            9,
            "`*` includes the empty key, as SCAN"
        );
        assert_eq!(all_keys(&m, "**").await.len(), 8);
    }

    #[tokio::test]
    async fn scan_edge_cursors() {
        let m = unbounded();
        assert_eq!(m.scan(0, "*", 10).await.unwrap(), ScanPage::default());
        m.set("k", b("v"), None).await.unwrap();
        assert_eq!(
            m.scan(u64::MAX, "*", 10).await.unwrap(),
            ScanPage::default()
        );
        // `count` 0 still makes progress.
        let mut cursor = 0;
        let mut found = Vec::new();
        for _ in 0..10_000 {
            let page = m.scan(cursor, "*", 0).await.unwrap();
            found.extend(page.keys);
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!((cursor, found), (0, vec!["k".to_owned()]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tasks() {
        let m = MemoryBackend::new(MemoryConfig {
            max_entries: Some(5_000),
            ..MemoryConfig::default()
        });
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let m = m.clone();
                tokio::spawn(async move {
                    for i in 0..2_000 {
                        let own = format!("own:{t}:{i}");
                        m.set(&own, b(&own), Some(Duration::from_secs(60)))
                            .await
                            .unwrap();
                        let shared = format!("shared:{}", i % 50);
                        m.set(&shared, b(&t.to_string()), None).await.unwrap();
                        let _ = m.get(&shared).await.unwrap();
                        let _ = m
                            .set_nx(&format!("lock:{}", i % 7), b("x"), None)
                            .await
                            .unwrap();
                        if i % 3 == 0 {
                            m.delete_if_equals(&format!("lock:{}", i % 7), b"x")
                                .await
                                .unwrap();
                        }
                        if let Some(v) = m.get(&own).await.unwrap() {
                            assert_eq!(v, b(&own));
                        }
                        if i % 100 == 0 {
                            let _ = m.keys("own:*").await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(m.len() <= 5_000 + 16, "len {}", m.len());
        let info = m.info().await.unwrap();
        assert!(stat(&info, "stats", "evicted_keys") > 0);
        assert!(stat(&info, "stats", "keyspace_hits") > 0);
        // Counters agree with the contents.
        let stored = m.keys("*").await.unwrap();
        assert_eq!(stored.len(), m.len());
        let expected: u64 = {
            let mut total = 0;
            for key in &stored {
                let value = m.get(key).await.unwrap().unwrap();
                total += weight(key, &value);
            }
            total
        };
        assert_eq!(m.used_memory(), expected);
    }

    #[tokio::test]
    async fn info_sections() {
        let m = MemoryBackend::default();
        m.ping().await.unwrap();
        assert_eq!(m.name(), "memory");
        m.set("a", b("1"), Some(Duration::from_secs(60)))
            .await
            .unwrap();
        m.set("b", b("2"), None).await.unwrap();
        m.get("a").await.unwrap();
        m.get("zz").await.unwrap();
        let info = m.info().await.unwrap();
        assert_eq!(info.version(), Some("memory"));
        assert_eq!(
            info.field("server", "backend").and_then(InfoValue::as_str),
            Some("memory")
        );
        assert_eq!(stat(&info, "stats", "keyspace_hits"), 1);
        assert_eq!(stat(&info, "stats", "keyspace_misses"), 1);
        assert_eq!(stat(&info, "memory", "maxmemory"), DEFAULT_MAX_BYTES as i64);
        assert_eq!(
            stat(&info, "memory", "max_entries"),
            DEFAULT_MAX_ENTRIES as i64
        );
        assert_eq!(info.used_memory(), Some(weight("a", &b("1")) * 2));
        assert_eq!(
            info.keyspace["db0"],
            KeyspaceStats {
                keys: 2,
                expires: 1,
                avg_ttl_ms: 0
            }
        );
        assert!(format!("{m:?}").contains("MemoryBackend"));
    }
}
