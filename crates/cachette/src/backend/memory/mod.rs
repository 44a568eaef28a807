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

mod eviction;
mod expiry;
mod store;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockWriteGuard};
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

use super::near::Shared;
use super::{Backend, KeyTtl, ScanPage};
use crate::backend::info::{human_bytes, InfoValue, KeyspaceStats, ServerInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::glob::Pattern;

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

    /// The value at `key` for a typed read: the copy decoded as `T` kept with the entry, or
    /// its bytes (to decode and [`attach`](Self::attach)). Counted as [`get_now`](Self::get_now).
    #[inline]
    pub(crate) fn hit_shared<T: Any + Send + Sync>(&self, key: &str) -> Shared<T> {
        self.inner.get_shared(key)
    }

    /// A clone of the copy of `key` decoded as `T` kept with the entry, made under the shard's
    /// read lock (no reference count touched): counted as a hit. `None` (not counted) when
    /// the entry is missing, expired or not decoded as `T`: the read that follows counts it.
    #[inline]
    pub(crate) fn hit_cloned<T: Any + Send + Sync + Clone>(&self, key: &str) -> Option<T> {
        self.inner.get_cloned(key)
    }

    /// Keeps `decoded`, the value `bytes` of `key` decoded as `T`, with the entry for the next
    /// typed reads, if the entry still holds exactly these bytes (the same buffer: a write
    /// since, even of equal bytes, is left alone). One type per entry: another type replaces
    /// it. Every write of the entry drops it; a delete, expiry or eviction drops it with the
    /// entry.
    pub(crate) fn attach<T: Any + Send + Sync>(&self, key: &str, bytes: &Bytes, decoded: Arc<T>) {
        self.inner.attach(key, bytes, decoded);
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

/// A value decoded by a typed read, with its type.
type Decoded = Option<Arc<dyn Any + Send + Sync>>;

struct Slot {
    key: Box<str>,
    value: Bytes,
    /// `value` decoded by a typed read (`MemoryBackend::attach`, under the shard's write
    /// lock); dropped when `value` is replaced.
    decoded: Decoded,
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

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// Completes without waiting, but cooperates with tokio's task budget (one unit every 8th read of a thread): a
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
mod tests;
