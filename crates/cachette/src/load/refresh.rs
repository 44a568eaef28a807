//! Time policies of read-through entries: probabilistic early refresh (XFetch) and TTL jitter.
//!
//! **XFetch** (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
//! Prevention", VLDB 2015): a reader recomputes a value before it expires when
//!
//! ```text
//! now − compute_time × beta × ln(u)  ≥  expires_at        (u uniform in (0, 1])
//! ```
//!
//! `−ln(u)` is exponentially distributed, so the chance to refresh is negligible while the
//! expiry is far away (in units of the computation time) and rises steeply as it nears: one
//! reader refreshes shortly before expiry, in time for the new value to be ready, and a slow
//! computation starts earlier than a fast one. `beta > 1` refreshes earlier, `beta < 1` later,
//! `0` never.
//!
//! **Jitter** shortens each TTL by a random fraction of up to `percent`% so that keys written
//! together do not expire together; a jittered TTL never exceeds the one asked for.

use std::time::Duration;

/// Whether a reader at `now_ms` should refresh a value expiring at `expires_at_ms` whose
/// computation took `compute_ms` (all in milliseconds, any common origin).
pub(crate) fn should_refresh_early(
    now_ms: u64,
    expires_at_ms: u64,
    compute_ms: u64,
    beta: f64,
) -> bool {
    if beta <= 0.0 || compute_ms == 0 {
        return false;
    }
    if now_ms >= expires_at_ms {
        return true;
    }
    // u in (0, 1]: ln(u) is finite and ≤ 0.
    let u = 1.0 - fastrand::f64();
    let gap = (-u.ln()) * beta * compute_ms as f64;
    now_ms as f64 + gap >= expires_at_ms as f64
}

/// `ttl` shortened by a uniformly random fraction in `[0, percent%)` (at least 1 ms).
pub(crate) fn jitter(ttl: Duration, percent: u8) -> Duration {
    if percent == 0 {
        return ttl;
    }
    let fraction = f64::from(percent.min(100)) / 100.0 * fastrand::f64();
    let jittered = ttl.mul_f64(1.0 - fraction);
    // Whole milliseconds, as every TTL (crate::ttl::check): backends then agree on it.
    crate::ttl::round_up_to_millis(jittered)
        .min(ttl)
        .max(Duration::from_millis(1))
}

/// The time since the Unix epoch in milliseconds (wall clock: metadata is shared between
/// processes and machines).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Rounds a duration up to whole milliseconds.
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if d > Duration::from_millis(ms) {
        ms.saturating_add(1)
    } else {
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(now: u64, exp: u64, compute: u64, beta: f64) -> f64 {
        let n = 20_000;
        let hits = (0..n)
            .filter(|_| should_refresh_early(now, exp, compute, beta))
            .count();
        hits as f64 / n as f64
    }

    #[test]
    fn probability_rises_as_expiry_nears() {
        // P(refresh) = exp(-(exp - now) / (compute × beta)).
        let far = rate(0, 10_000, 100, 1.0);
        let mid = rate(9_900, 10_000, 100, 1.0);
        let near = rate(9_990, 10_000, 100, 1.0);
        assert!(far < 0.001, "{far}");
        assert!((mid - (-1f64).exp()).abs() < 0.03, "{mid}");
        assert!(near > 0.85, "{near}");
        assert_eq!(rate(10_000, 10_000, 100, 1.0), 1.0);
        // Larger beta refreshes earlier; zero beta or zero compute time never does.
        assert!(rate(9_800, 10_000, 100, 4.0) > rate(9_800, 10_000, 100, 1.0));
        assert_eq!(rate(9_999, 10_000, 100, 0.0), 0.0);
        assert_eq!(rate(9_999, 10_000, 0, 1.0), 0.0);
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let ttl = Duration::from_secs(100);
        assert_eq!(jitter(ttl, 0), ttl);
        let samples: Vec<Duration> = (0..1000).map(|_| jitter(ttl, 10)).collect();
        assert!(samples
            .iter()
            .all(|d| *d <= ttl && *d >= Duration::from_secs(90)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 900);
        assert!(jitter(Duration::from_millis(1), 100) >= Duration::from_millis(1));
    }

    #[test]
    fn ceil_ms_rounds_up() {
        assert_eq!(ceil_ms(Duration::from_micros(1)), 1);
        assert_eq!(ceil_ms(Duration::from_millis(5)), 5);
        assert_eq!(ceil_ms(Duration::from_micros(5001)), 6);
        assert_eq!(ceil_ms(Duration::ZERO), 0);
    }
}
