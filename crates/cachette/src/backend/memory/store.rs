//! The sharded store: slots in open-addressing tables (one per shard, each behind its own
//! lock), deadline indexes, and the reads and writes of single entries.

use bytes::Bytes;
use tokio::time::Instant;

use super::*;

impl ShardMap {
    pub(super) fn slot(&self, idx: u32) -> Option<&Slot> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    pub(super) fn slot_mut(&mut self, idx: u32) -> Option<&mut Slot> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    pub(super) fn find(&self, hash: u64, key: &str) -> Option<u32> {
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

    pub(super) fn move_deadline(&mut self, idx: u32, old: Option<Instant>, new: Option<Instant>) {
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
    pub(super) fn insert(&mut self, slot: Slot) -> Result<u32> {
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
    pub(super) fn replace(
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
        // The decoded copy was of the old value.
        slot.decoded = None;
        slot.expires_at = expires_at;
        slot.access.store(stamp, Relaxed);
        self.move_deadline(idx, old_deadline, expires_at);
        Some(old_weight)
    }

    /// Takes the entry at `idx` out of the shard.
    pub(super) fn take(&mut self, idx: u32) -> Option<Slot> {
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
    pub(super) fn new(mut config: MemoryConfig) -> Self {
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

    pub(super) fn write(&self, shard: usize) -> ShardGuard<'_> {
        ShardGuard {
            map: self.shards[shard].map.write(),
            earliest: &self.earliest[shard],
            created: self.created,
        }
    }

    /// A pseudo-random number (splitmix64 over a shared counter).
    pub(super) fn random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Removes the entry at `idx` and accounts for it.
    pub(super) fn remove(&self, map: &mut ShardMap, idx: u32, why: Removal) -> Option<Slot> {
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

    /// The live entry at `key`, reclaiming it first if it has expired.
    pub(super) fn find_live(
        &self,
        map: &mut ShardMap,
        hash: u64,
        key: &str,
        now: Instant,
    ) -> Option<u32> {
        let idx = map.find(hash, key)?;
        if map.slot(idx).is_some_and(|slot| slot.is_expired(now)) {
            self.remove(map, idx, Removal::Expired);
            return None;
        }
        Some(idx)
    }

    /// `read` of the live entry of `key`, if there is one (counted as a hit or a miss; the
    /// entry's use is recorded for eviction).
    #[inline]
    fn lookup<R>(&self, key: &str, read: impl FnOnce(&Slot) -> R) -> Option<R> {
        let (found, shard) = self.read_live(key, |slot| Some(read(slot)));
        if found.is_none() {
            shard.misses.fetch_add(1, Relaxed);
        }
        found
    }

    /// `read` of the live entry of `key` under the shard's read lock; an entry `read`
    /// answers is a hit (counted, its use recorded for eviction), and nothing else is
    /// counted. Returns the answer and the key's shard.
    #[inline]
    fn read_live<R>(
        &self,
        key: &str,
        read: impl FnOnce(&Slot) -> Option<R>,
    ) -> (Option<R>, &Shard) {
        let hash = hash_key(key);
        let shard = &self.shards[shard_index(hash)];
        let map = shard.map.read();
        let found = map
            .find(hash, key)
            .and_then(|idx| map.slot(idx))
            .filter(|slot| slot.is_live())
            .and_then(|slot| {
                let answer = read(slot)?;
                slot.touch(self.clock.load(Relaxed));
                shard.hits.fetch_add(1, Relaxed);
                Some(answer)
            });
        (found, shard)
    }

    pub(super) fn get(&self, key: &str) -> Option<Bytes> {
        self.lookup(key, |slot| slot.value.clone())
    }

    /// [`get`](Self::get) for a typed read: the entry's decoded copy when it is a `T`, else its
    /// bytes.
    pub(super) fn get_shared<T: Any + Send + Sync>(&self, key: &str) -> Shared<T> {
        self.lookup(key, |slot| {
            match slot.decoded.clone().map(|d| d.downcast::<T>()) {
                Some(Ok(value)) => Shared::Decoded(value),
                _ => Shared::Encoded(slot.value.clone()),
            }
        })
        .unwrap_or(Shared::Missing)
    }

    /// See [`MemoryBackend::hit_cloned`].
    pub(super) fn get_cloned<T: Any + Send + Sync + Clone>(&self, key: &str) -> Option<T> {
        self.read_live(key, |slot| {
            let decoded: &(dyn Any + Send + Sync) = slot.decoded.as_deref()?;
            decoded.downcast_ref::<T>().cloned()
        })
        .0
    }

    /// See [`MemoryBackend::attach`].
    pub(super) fn attach<T: Any + Send + Sync>(&self, key: &str, bytes: &Bytes, decoded: Arc<T>) {
        let hash = hash_key(key);
        let mut map = self.shards[shard_index(hash)].map.write();
        let slot = map
            .find(hash, key)
            .and_then(|idx| map.slot_mut(idx))
            .filter(|slot| slot.is_live());
        if let Some(slot) = slot {
            // The same buffer, not equal bytes: a write since (even of equal bytes) is left
            // alone.
            if slot.value.as_ptr() == bytes.as_ptr() && slot.value.len() == bytes.len() {
                slot.decoded = Some(decoded);
            }
        }
    }

    /// `SET` (`only_if_absent: false`) and `SET NX`; returns whether the value was stored.
    pub(super) fn set(
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
                        decoded: None,
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

    /// Runs `op` on the live entry at `key` (if any) under its shard's write lock.
    pub(super) fn with_live<T>(
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

    pub(super) fn delete(&self, key: &str) -> bool {
        self.with_live(key, |map, idx, _| {
            idx.and_then(|idx| self.remove(map, idx, Removal::Deleted))
                .is_some()
        })
    }

    pub(super) fn delete_if_equals(&self, key: &str, value: &[u8]) -> bool {
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

    pub(super) fn exists(&self, key: &str) -> bool {
        let hash = hash_key(key);
        let map = self.shards[shard_index(hash)].map.read();
        map.find(hash, key)
            .and_then(|idx| map.slot(idx))
            .is_some_and(Slot::is_live)
    }

    pub(super) fn expire(&self, key: &str, ttl: Duration) -> bool {
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

    pub(super) fn persist(&self, key: &str) -> bool {
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

    pub(super) fn ttl(&self, key: &str) -> KeyTtl {
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

    pub(super) fn scan(&self, cursor: u64, pattern: &str, count: usize) -> ScanPage {
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
                        non_utf8_keys: Vec::new(),
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
        ScanPage {
            cursor: 0,
            keys,
            non_utf8_keys: Vec::new(),
        }
    }

    pub(super) fn info(&self) -> ServerInfo {
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
