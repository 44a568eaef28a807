//! The embedded in-memory backend: the default when no Redis is configured.
//!
//! A [`MemoryBackend`] keeps byte values under string keys with Redis semantics: per-key TTLs
//! or persistent keys, `SET NX`, `EXPIRE`/`PERSIST`/`TTL`, cursor-based `SCAN` with Redis glob
//! patterns ([`crate::glob`]), and bounded size with eviction.
//!
//! # Design
//!
//! The store is 64 shards, each a `hashbrown::HashTable` of indices into a slab of entries
//! behind a `parking_lot::RwLock`, keyed by one xxh3 hash of the key. We chose this over
//! `moka` 0.12 because moka cannot report an entry's remaining TTL nor change it in place
//! (`TTL`, `EXPIRE` and `PERSIST` would each need a re-insert through its `Expiry` hooks), has
//! no resumable cursor for `SCAN`, and its hit costs about 470 ns on our machines because
//! housekeeping runs inline; a hit here is one hash, one shared lock and one probe (well under
//! 200 ns). Entries never move inside their slab, which is what makes the `SCAN` guarantee
//! below cheap to give.
//!
//! # Expiry
//!
//! An expired entry is never returned, counted by `exists` or listed by `scan`, from the
//! instant its TTL has fully elapsed. Its memory is reclaimed:
//!
//! - by a background tokio task every [`MemoryConfig::reap_interval`] (it holds only a `Weak`
//!   reference, so it ends by itself once the backend is dropped, and dies with its runtime);
//! - and, always, by a small sweep of the written shard on every write, and when a write meets
//!   an expired key.
//!
//! A backend created outside a tokio runtime does not panic: it starts the background task on
//! its first write made inside a runtime, and until then relies on the write-time sweeps (or on
//! [`MemoryBackend::purge_expired`]). Time is [`tokio::time::Instant`], so tests can use
//! `tokio::time::pause()`. TTLs longer than about a century are capped to a century.
//!
//! # Bounds and eviction
//!
//! When a write takes the store over [`MemoryConfig::max_entries`] or
//! [`MemoryConfig::max_bytes`], entries are evicted until it fits again, approximating LRU the
//! way Redis does: sample 5 random entries of the written shard, drop an expired one if the
//! sample has one (counted in `expired_keys`), otherwise the least recently read or written
//! one (counted in `evicted_keys`). Should that shard run out of candidates, other shards are
//! visited in turn. The entry just written is never evicted by its own write. Sizes are
//! approximate: an entry weighs its key and value lengths plus a fixed
//! [`ENTRY_OVERHEAD`] for bookkeeping, and `used_memory` is the sum of those weights.
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
//! let backend = MemoryBackend::new(MemoryConfig { max_entries: Some(10_000), ..MemoryConfig::default() });
//! backend.set("user:1", Bytes::from_static(b"{\"name\":\"Ada\"}"), Some(Duration::from_secs(60))).await?;
//! assert_eq!(backend.get("user:1").await?.as_deref(), Some(&b"{\"name\":\"Ada\"}"[..]));
//! assert!(matches!(backend.ttl("user:1").await?, KeyTtl::Expires(_)));
//! assert_eq!(backend.keys("user:*").await?, vec!["user:1".to_owned()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
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

/// Bytes added to each entry's key and value lengths to account for its bookkeeping (slab
/// slot, table index, allocation headers) in `used_memory` and against `max_bytes`.
pub const ENTRY_OVERHEAD: u64 = 128;

/// Number of shards (a power of two).
const SHARDS: usize = 64;
/// Entries sampled per eviction, as Redis' `maxmemory-samples` default.
const EVICTION_SAMPLES: usize = 5;
/// Slots of the written shard examined for expired entries on each write.
const SWEEP_PER_WRITE: usize = 4;
/// Slots examined under one read lock by the background reaper.
const REAP_CHUNK: usize = 1024;
/// The most slots one `scan` call visits, whatever `count` asks for.
const MAX_SCAN_WORK: usize = 1 << 20;
/// TTLs are capped to this (about a century) so that deadlines never overflow.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Limits and housekeeping of a [`MemoryBackend`].
///
/// # Examples
///
/// ```
/// use cachette::backend::MemoryConfig;
///
/// let config = MemoryConfig { max_bytes: Some(64 << 20), ..MemoryConfig::default() };
/// assert_eq!(config.max_entries, Some(100_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// The most entries kept at once (default [`DEFAULT_MAX_ENTRIES`], `None` for no limit;
    /// `Some(0)` is read as `Some(1)`).
    pub max_entries: Option<u64>,
    /// The most bytes kept at once, counting keys, values and [`ENTRY_OVERHEAD`] per entry
    /// (default `None`: no limit).
    pub max_bytes: Option<u64>,
    /// How often the background task reclaims expired entries (default 1 s;
    /// `Duration::ZERO` disables the task, leaving reclamation to writes).
    pub reap_interval: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_entries: Some(DEFAULT_MAX_ENTRIES),
            max_bytes: None,
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

    /// The configuration in force (after normalisation of `max_entries`).
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
        if inner.config.reap_interval.is_zero() || inner.reaper_alive.load(Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if inner
            .reaper_alive
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_ok()
        {
            let guard = ReaperGuard(Arc::downgrade(inner));
            handle.spawn(reap_periodically(guard, inner.config.reap_interval));
        }
    }
}

impl Default for MemoryBackend {
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
            inner.reaper_alive.store(false, Relaxed);
        }
    }
}

async fn reap_periodically(guard: ReaperGuard, period: Duration) {
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
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
    config: MemoryConfig,
    /// Entries stored, expired ones included until reclaimed.
    entries: AtomicU64,
    /// Sum of entry weights.
    bytes: AtomicU64,
    /// Logical LRU clock: advanced by every write, copied into entries when they are used.
    clock: AtomicU64,
    evicted: AtomicU64,
    expired: AtomicU64,
    reaper_alive: AtomicBool,
    created: Instant,
}

/// One shard, padded so that two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard {
    map: RwLock<ShardMap>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct ShardMap {
    /// Indices into `slots`, hashed by the key's xxh3.
    table: HashTable<u32>,
    /// Entries never move while they live, which keeps scan cursors valid.
    slots: Vec<Option<Slot>>,
    /// Vacant indices of `slots`.
    free: Vec<u32>,
    /// Entries with a TTL.
    expiring: usize,
    /// Next slot examined by the write-time sweep.
    sweep_pos: usize,
    /// xorshift state for eviction sampling.
    rng: u64,
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

    fn touch(&self, clock: u64) {
        // Skip the store when unchanged, so hot keys read from many cores stay shared.
        if self.access.load(Relaxed) != clock {
            self.access.store(clock, Relaxed);
        }
    }
}

fn weight(key: &str, value: &Bytes) -> u64 {
    (key.len() as u64)
        .saturating_add(value.len() as u64)
        .saturating_add(ENTRY_OVERHEAD)
}

fn hash_key(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// The shard of a hash: middle bits, since hashbrown uses the low bits for the bucket and the
/// top 7 as tag.
fn shard_index(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

fn deadline(now: Instant, ttl: Duration) -> Option<Instant> {
    now.checked_add(ttl.min(MAX_TTL))
}

fn to_i64(n: u64) -> InfoValue {
    InfoValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn zero_ttl(key: &str) -> Error {
    Error::invalid("TTL must be greater than zero").with_key(key)
}

impl ShardMap {
    fn new(seed: u64) -> Self {
        ShardMap {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            expiring: 0,
            sweep_pos: 0,
            rng: seed | 1,
        }
    }

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

    /// Stores a new entry (the key must be absent) and returns its index.
    fn insert(&mut self, slot: Slot) -> Result<u32> {
        let hash = slot.hash;
        if slot.expires_at.is_some() {
            self.expiring += 1;
        }
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
        let ShardMap { table, slots, .. } = self;
        table.insert_unique(hash, idx, |&i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |slot| slot.hash)
        });
        Ok(idx)
    }

    /// Takes the entry at `idx` out of the shard.
    fn take(&mut self, idx: u32) -> Option<Slot> {
        let hash = self.slot(idx)?.hash;
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        let slot = self.slots.get_mut(idx as usize)?.take()?;
        if slot.expires_at.is_some() {
            self.expiring = self.expiring.saturating_sub(1);
        }
        if self.table.is_empty() {
            // Nothing lives here, so no scan can miss anything: start the slab afresh.
            self.slots.clear();
            self.free.clear();
            self.sweep_pos = 0;
            if self.slots.capacity() > 1024 {
                self.slots.shrink_to(64);
                self.free.shrink_to(64);
                self.table.shrink_to(0, |_| 0);
            }
        } else {
            self.free.push(idx);
        }
        Some(slot)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Chooses an entry to evict (never `protect`): an expired one from a random sample if
    /// there is one, else the sample's least recently used. `(index, expired)`.
    fn pick_victim(&mut self, protect: Option<u32>, now: Instant) -> Option<(u32, bool)> {
        let n = self.slots.len();
        let candidates = self.table.len() - usize::from(protect.is_some());
        if n == 0 || candidates == 0 {
            return None;
        }
        let mut best: Option<(u32, u64)> = None;
        let mut sampled = 0;
        let mut probes = 0;
        while sampled < EVICTION_SAMPLES.min(candidates) && probes < EVICTION_SAMPLES * 4 {
            probes += 1;
            let idx = (self.next_random() % n as u64) as u32;
            if Some(idx) == protect {
                continue;
            }
            let Some(slot) = self.slot(idx) else {
                continue;
            };
            if slot.is_expired(now) {
                return Some((idx, true));
            }
            sampled += 1;
            let access = slot.access.load(Relaxed);
            if best.is_none_or(|(_, oldest)| access < oldest) {
                best = Some((idx, access));
            }
        }
        if best.is_none() {
            // A sparse slab defeated random probing: walk from a random place instead.
            let start = (self.next_random() % n as u64) as usize;
            best = (0..n)
                .map(|offset| ((start + offset) % n) as u32)
                .find(|&idx| Some(idx) != protect && self.slot(idx).is_some())
                .map(|idx| (idx, 0));
        }
        best.map(|(idx, _)| (idx, self.slot(idx).is_some_and(|s| s.is_expired(now))))
    }
}

impl Inner {
    fn new(mut config: MemoryConfig) -> Self {
        if config.max_entries == Some(0) {
            config.max_entries = Some(1);
        }
        let shards = (0..SHARDS as u64)
            .map(|i| Shard {
                map: RwLock::new(ShardMap::new((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            })
            .collect();
        Inner {
            shards,
            config,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            reaper_alive: AtomicBool::new(false),
            created: Instant::now(),
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[shard_index(hash)]
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

    fn added(&self, weight: u64) {
        self.entries.fetch_add(1, Relaxed);
        self.bytes.fetch_add(weight, Relaxed);
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

    /// The live entry at `key`, removing it first if it has expired.
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
        let shard = self.shard(hash);
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
        let new_weight = weight(key, &value);
        let hash = hash_key(key);
        let home = shard_index(hash);
        let now = Instant::now();
        let mut map = self.shards[home].map.write();
        let existing = self.find_live(&mut map, hash, key, now);
        if only_if_absent && existing.is_some() {
            return Ok(false);
        }
        if let Some(max) = self.config.max_bytes.filter(|&max| new_weight > max) {
            if let Some(idx) = existing {
                self.remove(&mut map, idx, Removal::Deleted);
            }
            return Err(Error::invalid(format!(
                "value of {} bytes does not fit in the memory backend's max_bytes ({max})",
                value.len()
            ))
            .with_key(key));
        }
        let stamp = self.clock.fetch_add(1, Relaxed);
        let expires_at = ttl.and_then(|ttl| deadline(now, ttl));
        let idx = match existing.and_then(|idx| Some((idx, map.slot_mut(idx)?))) {
            Some((idx, slot)) => {
                let old_weight = slot.weight();
                let had_ttl = slot.expires_at.is_some();
                slot.value = value;
                slot.expires_at = expires_at;
                slot.access.store(stamp, Relaxed);
                match (had_ttl, expires_at.is_some()) {
                    (false, true) => map.expiring += 1,
                    (true, false) => map.expiring = map.expiring.saturating_sub(1),
                    _ => {}
                }
                if new_weight >= old_weight {
                    self.bytes.fetch_add(new_weight - old_weight, Relaxed);
                } else {
                    self.bytes.fetch_sub(old_weight - new_weight, Relaxed);
                }
                idx
            }
            None => {
                let idx = map.insert(Slot {
                    key: key.into(),
                    value,
                    hash,
                    expires_at,
                    access: AtomicU64::new(stamp),
                })?;
                self.added(new_weight);
                idx
            }
        };
        self.sweep(&mut map, now);
        self.evict(map, home, Some(idx), now);
        Ok(true)
    }

    /// Reclaims a few expired entries of a shard being written to.
    fn sweep(&self, map: &mut ShardMap, now: Instant) {
        for _ in 0..SWEEP_PER_WRITE {
            if map.expiring == 0 || map.slots.is_empty() {
                return;
            }
            let pos = map.sweep_pos % map.slots.len();
            map.sweep_pos = pos + 1;
            let idx = pos as u32;
            if map.slot(idx).is_some_and(|slot| slot.is_expired(now)) {
                self.remove(map, idx, Removal::Expired);
            }
        }
    }

    /// Evicts until within limits: from the written shard first (never its `protect`ed entry),
    /// then one entry at a time from the other shards in turn.
    fn evict(
        &self,
        mut map: RwLockWriteGuard<'_, ShardMap>,
        home: usize,
        protect: Option<u32>,
        now: Instant,
    ) {
        while self.over_limit() {
            let Some((idx, expired)) = map.pick_victim(protect, now) else {
                break;
            };
            let why = if expired {
                Removal::Expired
            } else {
                Removal::Evicted
            };
            self.remove(&mut map, idx, why);
        }
        drop(map);
        while self.over_limit() {
            let mut progress = false;
            for offset in 1..SHARDS {
                if !self.over_limit() {
                    return;
                }
                let mut other = self.shards[(home + offset) % SHARDS].map.write();
                if let Some((idx, expired)) = other.pick_victim(None, now) {
                    let why = if expired {
                        Removal::Expired
                    } else {
                        Removal::Evicted
                    };
                    self.remove(&mut other, idx, why);
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Applies `op` to the live entry at `key` under its shard's write lock.
    fn with_live<T>(
        &self,
        key: &str,
        op: impl FnOnce(&mut ShardMap, Option<u32>, Instant) -> T,
    ) -> T {
        let hash = hash_key(key);
        let now = Instant::now();
        let mut map = self.shard(hash).map.write();
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
            match idx.filter(|&idx| map.slot(idx).is_some_and(|s| s.value.as_ref() == value)) {
                Some(idx) => self.remove(map, idx, Removal::Deleted).is_some(),
                None => false,
            }
        })
    }

    fn exists(&self, key: &str) -> bool {
        let hash = hash_key(key);
        let map = self.shard(hash).map.read();
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
                // As Redis: a non-positive TTL deletes the key.
                return self.remove(map, idx, Removal::Deleted).is_some();
            }
            let Some(slot) = map.slot_mut(idx) else {
                return false;
            };
            let had_ttl = slot.expires_at.is_some();
            slot.expires_at = deadline(now, ttl);
            if !had_ttl && slot.expires_at.is_some() {
                map.expiring += 1;
            }
            true
        })
    }

    fn persist(&self, key: &str) -> bool {
        self.with_live(key, |map, idx, _| {
            match idx.and_then(|idx| map.slot_mut(idx)) {
                Some(slot) if slot.expires_at.is_some() => {
                    slot.expires_at = None;
                    map.expiring = map.expiring.saturating_sub(1);
                    true
                }
                _ => false,
            }
        })
    }

    fn ttl(&self, key: &str) -> KeyTtl {
        let hash = hash_key(key);
        let map = self.shard(hash).map.read();
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
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut start = 0;
            loop {
                let expired: Vec<u32> = {
                    let map = shard.map.read();
                    if map.expiring == 0 || start >= map.slots.len() {
                        break;
                    }
                    let end = (start + REAP_CHUNK).min(map.slots.len());
                    let found = (start..end)
                        .map(|i| i as u32)
                        .filter(|&i| map.slot(i).is_some_and(|s| s.is_expired(now)))
                        .collect();
                    start = end;
                    found
                };
                if expired.is_empty() {
                    continue;
                }
                let mut map = shard.map.write();
                for idx in expired {
                    // Re-checked: the slot may have been reused since the read lock.
                    if map.slot(idx).is_some_and(|s| s.is_expired(now))
                        && self.remove(&mut map, idx, Removal::Expired).is_some()
                    {
                        removed += 1;
                    }
                }
            }
        }
        removed
    }

    fn info(&self) -> ServerInfo {
        let (mut hits, mut misses, mut expires) = (0, 0, 0u64);
        for shard in self.shards.iter() {
            hits += shard.hits.load(Relaxed);
            misses += shard.misses.load(Relaxed);
            expires += shard.map.read().expiring as u64;
        }
        let keys = self.entries.load(Relaxed);
        let used = self.bytes.load(Relaxed);
        let max_bytes = self.config.max_bytes.unwrap_or(0);
        let text = |s: &str| InfoValue::Text(s.to_owned());

        let mut info = ServerInfo::default();
        let server = BTreeMap::from([
            ("backend".to_owned(), text("memory")),
            ("shards".to_owned(), to_i64(SHARDS as u64)),
            (
                "uptime_in_seconds".to_owned(),
                to_i64(self.created.elapsed().as_secs()),
            ),
        ]);
        let memory = BTreeMap::from([
            ("used_memory".to_owned(), to_i64(used)),
            (
                "used_memory_human".to_owned(),
                InfoValue::Text(human_bytes(used)),
            ),
            ("maxmemory".to_owned(), to_i64(max_bytes)),
            (
                "maxmemory_human".to_owned(),
                InfoValue::Text(human_bytes(max_bytes)),
            ),
            ("maxmemory_policy".to_owned(), text("allkeys-lru")),
            (
                "max_entries".to_owned(),
                to_i64(self.config.max_entries.unwrap_or(0)),
            ),
        ]);
        let stats = BTreeMap::from([
            (
                "evicted_keys".to_owned(),
                to_i64(self.evicted.load(Relaxed)),
            ),
            (
                "expired_keys".to_owned(),
                to_i64(self.expired.load(Relaxed)),
            ),
            ("keyspace_hits".to_owned(), to_i64(hits)),
            ("keyspace_misses".to_owned(), to_i64(misses)),
        ]);
        let db0 = KeyspaceStats {
            keys,
            expires,
            avg_ttl_ms: 0,
        };
        let keyspace = BTreeMap::from([(
            "db0".to_owned(),
            InfoValue::Text(format!("keys={keys},expires={expires},avg_ttl=0")),
        )]);
        info.sections.insert("server".to_owned(), server);
        info.sections.insert("memory".to_owned(), memory);
        info.sections.insert("stats".to_owned(), stats);
        info.sections.insert("keyspace".to_owned(), keyspace);
        info.keyspace.insert("db0".to_owned(), db0);
        info
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.inner.get(key))
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

    /// Stores every item even if some fail; returns the first error (an item heavier than
    /// `max_bytes`, or a zero TTL, which then stores nothing).
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

        // Huge TTLs are capped instead of overflowing.
        m.set("long", b("v"), Some(Duration::MAX)).await.unwrap();
        assert!(m.ttl("long").await.unwrap().remaining().unwrap() >= MAX_TTL);
        assert!(m.expire("long", Duration::MAX).await.unwrap());
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
        assert!(m.inner.reaper_alive.load(Relaxed));
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
        assert!(!m.inner.reaper_alive.load(Relaxed));
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
            assert!(m.inner.reaper_alive.load(Relaxed), "started on first write");
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(m.is_empty());
        });
        drop(runtime);
        assert!(
            !m.inner.reaper_alive.load(Relaxed),
            "runtime gone, reaper gone"
        );
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
        assert_eq!(all_keys(&m, "a*b").await, ["a*b", "axb"]);
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
        assert_eq!(stat(&info, "memory", "maxmemory"), 0);
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

    /// Rough cost of a `get` hit, through the `Backend` trait and directly. Run with
    /// `cargo test --release -p cachette --lib get_hit_cost -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "timing, not a check"]
    async fn get_hit_cost() {
        let m = MemoryBackend::default();
        let keys: Vec<String> = (0..10_000)
            .map(|i| format!("cache:module:function:{i:016x}"))
            .collect();
        for key in &keys {
            m.set(key, b("{\"value\":42}"), Some(Duration::from_secs(600)))
                .await
                .unwrap();
        }
        let rounds = 200;
        let started = std::time::Instant::now();
        let mut hits = 0usize;
        for _ in 0..rounds {
            for key in &keys {
                hits += usize::from(m.get(key).await.unwrap().is_some());
            }
        }
        let per_trait = started.elapsed() / (rounds * keys.len()) as u32;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            for key in &keys {
                hits += usize::from(m.inner.get(key).is_some());
            }
        }
        let per_direct = started.elapsed() / (rounds * keys.len()) as u32;
        assert_eq!(hits, 2 * rounds * keys.len());
        println!("get hit: {per_trait:?} through Backend, {per_direct:?} direct");
    }
}
