//! Expiry: entries past their deadline are reclaimed by a background task (one per store,
//! while a tokio runtime with timers exists), by sweeps on writes, and on access.

use std::sync::Weak;

use tokio::time::Instant;

use super::*;

impl MemoryBackend {
    /// Starts the background reaper if it is not running and we are inside a runtime.
    pub(super) fn ensure_reaper(&self) {
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

impl Inner {
    /// Reclaims up to `max` expired entries of a shard, earliest deadline first.
    pub(super) fn pop_expired(&self, map: &mut ShardMap, now: Instant, max: usize) -> usize {
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

    pub(super) fn purge_expired(&self, now: Instant) -> u64 {
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
}
