//! Near-cache counters in the statistics hash: fields `__cachette:near|{counter}` (see
//! [`NEAR_COUNTERS`]), added up over every publishing process whose manager has a near cache.
//!
//! `entries` and `bytes` are sizes, not counters: each process adds the change of its tier's
//! size since its previous batch (a negative `HINCRBY` when it shrank), and its last batch (when
//! the publisher stops) takes its whole size back, so the fields hold what the running
//! processes' tiers hold. A process that dies without stopping its publisher leaves its last
//! size behind until `cachette stats --reset`.

use crate::NearStats;

/// The name under which near-cache counters are published (not a function).
pub const NEAR_NAME: &str = "__cachette:near";

/// The near-cache fields published (`__cachette:near|{counter}`); the last two are sizes.
pub const NEAR_COUNTERS: [&str; 8] = [
    "hits",
    "misses",
    "invalidations",
    "flushes",
    "discarded",
    "evictions",
    "entries",
    "bytes",
];

/// How many of [`NEAR_COUNTERS`] only grow (the rest are sizes).
const MONOTONIC: usize = 6;

pub(super) type NearValues = [u64; NEAR_COUNTERS.len()];

/// The values of [`NEAR_COUNTERS`] for `stats`.
pub(super) fn values(s: &NearStats) -> NearValues {
    [
        s.hits,
        s.misses,
        s.invalidations,
        s.flushes,
        s.discarded,
        s.evictions,
        s.entries,
        s.bytes,
    ]
}

/// The sum of several tiers' values.
pub(super) fn sum(all: impl IntoIterator<Item = NearValues>) -> NearValues {
    all.into_iter().fold([0; NEAR_COUNTERS.len()], |mut t, v| {
        for (t, v) in t.iter_mut().zip(v) {
            *t += v;
        }
        t
    })
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The non-zero `(field, delta)` from `was` (what this process published) to `now`. A
/// counter below what was published was reset: all of it is new; a size adds its change.
pub(super) fn deltas(now: &NearValues, was: &NearValues) -> Vec<(String, i64)> {
    let mut fields = Vec::new();
    for (i, counter) in NEAR_COUNTERS.iter().enumerate() {
        let delta = if i >= MONOTONIC {
            signed(now[i]) - signed(was[i])
        } else if now[i] >= was[i] {
            signed(now[i] - was[i])
        } else {
            signed(now[i])
        };
        if delta != 0 {
            fields.push((format!("{NEAR_NAME}|{counter}"), delta));
        }
    }
    fields
}

/// `now` as published by a process that stops: its sizes go to zero.
pub(super) fn stopping(mut now: NearValues) -> NearValues {
    for v in &mut now[MONOTONIC..] {
        *v = 0;
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_their_growth_and_sizes_their_change() {
        let was = [10, 5, 1, 0, 0, 0, 100, 4000];
        let now = [12, 5, 3, 1, 0, 0, 60, 4000];
        assert_eq!(
            deltas(&now, &was),
            [
                (format!("{NEAR_NAME}|hits"), 2),
                (format!("{NEAR_NAME}|invalidations"), 2),
                (format!("{NEAR_NAME}|flushes"), 1),
                (format!("{NEAR_NAME}|entries"), -40),
            ]
        );
        // A counter reset below what was published: all of it is new.
        assert_eq!(
            deltas(&[3, 5, 1, 0, 0, 0, 100, 4000], &was),
            [(format!("{NEAR_NAME}|hits"), 3)]
        );
        // Stopping takes the sizes back.
        assert_eq!(
            deltas(&stopping(was), &was),
            [
                (format!("{NEAR_NAME}|entries"), -100),
                (format!("{NEAR_NAME}|bytes"), -4000),
            ]
        );
        assert_eq!(sum([was, now])[6], 160);
    }
}
