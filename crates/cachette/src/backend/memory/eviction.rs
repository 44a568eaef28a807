//! Eviction: when a bound (entries or bytes) is exceeded, sampled LRU. A handful of random
//! entries are probed across shards and the least recently used one is removed; expired entries
//! are preferred.

use tokio::time::Instant;

use super::*;

impl Inner {
    pub(super) fn over_limit(&self) -> bool {
        self.config
            .max_entries
            .is_some_and(|max| self.entries.load(Relaxed) > max)
            || self
                .config
                .max_bytes
                .is_some_and(|max| self.bytes.load(Relaxed) > max)
    }

    /// Removes entries until within limits: expired ones first, then approximately least
    /// recently used ones. Never removes the entry `(hash, key)` just written.
    pub(super) fn evict(&self, home: usize, hash: u64, key: &str, now: Instant) {
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
    pub(super) fn pick_victim(&self, hash: u64, key: &str) -> Option<Victim> {
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
}
