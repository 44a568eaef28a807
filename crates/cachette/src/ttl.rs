//! Time-to-live policy for writes, and the one valid TTL range of every backend.
//!
//! A TTL is positive, at most [`MAX_TTL`] (100 years), and rounded up to whole milliseconds
//! ([`check`]). It is checked where it enters: each call taking a TTL (`set`, `set_raw`,
//! `set_many`, `set_nx`, `expire`, `get_or_load` and [`LoadOptions`](crate::LoadOptions),
//! `#[cached(ttl = ...)]`), the builder's `default_ttl` (at `build()`), `config.json`,
//! `REDIS_DEFAULT_TTL` and the CLI's `--ttl`.

use std::time::Duration;

/// How long a written value lives.
///
/// `Duration` converts into [`Ttl::After`], so `cache.set("k", &v, Duration::from_secs(300))`
/// reads naturally; use [`Ttl::Default`] for the manager's default and [`Ttl::Never`] for a
/// persistent key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// The manager's default TTL (3600 s unless configured otherwise).
    #[default]
    Default,
    /// No expiry.
    Never,
    /// Expires after this long: positive, at most [`MAX_TTL`] (100 years), rounded up to whole
    /// milliseconds on every backend (see [`check`]); anything else is refused with
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput).
    After(Duration),
}

impl Ttl {
    /// `Ttl::After(Duration::from_secs(secs))`.
    pub const fn secs(secs: u64) -> Ttl {
        Ttl::After(Duration::from_secs(secs))
    }

    /// Resolves the policy against a manager's default (`None` = persistent); no range check
    /// (the manager applies [`check`] to the result).
    pub fn resolve(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Ttl::Default => default,
            Ttl::Never => None,
            Ttl::After(d) => Some(d),
        }
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Ttl {
        Ttl::After(d)
    }
}

/// `Some(d)` expires after `d`; `None` never expires (as in the spec's `ttl=None`).
impl From<Option<Duration>> for Ttl {
    fn from(d: Option<Duration>) -> Ttl {
        d.map_or(Ttl::Never, Ttl::After)
    }
}

/// The longest TTL accepted, in seconds: 100 years of 365 days (3 153 600 000 s).
///
/// Redis stores an expiry as an absolute Unix time in milliseconds in a signed 64-bit integer
/// and refuses `PX`/`PEXPIRE` values that overflow it once the current time is added (about
/// 292 million years); the memory backend keeps deadlines as [`tokio::time::Instant`]s, which
/// overflow far earlier on some platforms. A century is inside both limits by a wide margin,
/// fits every integer type a caller is likely to use, and is the same on every backend.
pub const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 60 * 60;

/// The longest TTL accepted anywhere ([`MAX_TTL_SECS`] seconds).
pub const MAX_TTL: Duration = Duration::from_secs(MAX_TTL_SECS);

const NANOS_PER_MILLI: u32 = 1_000_000;

/// The one TTL rule of every backend: a TTL must be positive and at most [`MAX_TTL`]; it is
/// rounded **up** to whole milliseconds (so `1 ns` and `999 µs` live 1 ms, `1.5 ms` lives
/// 2 ms, and no TTL ever rounds down to zero or below what was asked).
///
/// Returns the rounded TTL, or a message saying what is wrong (callers turn it into an
/// [`InvalidInput`](crate::ErrorKind::InvalidInput) or [`Config`](crate::ErrorKind::Config)
/// error naming where the value came from).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cachette::ttl::{check, MAX_TTL};
///
/// assert_eq!(check(Duration::from_nanos(1)), Ok(Duration::from_millis(1)));
/// assert_eq!(check(Duration::from_micros(1500)), Ok(Duration::from_millis(2)));
/// assert_eq!(check(MAX_TTL), Ok(MAX_TTL));
/// assert!(check(MAX_TTL + Duration::from_nanos(1)).is_err());
/// assert!(check(Duration::ZERO).is_err());
/// ```
pub fn check(ttl: Duration) -> Result<Duration, String> {
    if ttl.is_zero() {
        return Err("a TTL must be positive (use Ttl::Never for no expiry)".to_owned());
    }
    if ttl > MAX_TTL {
        return Err(format!(
            "a TTL of {ttl:?} is longer than the maximum of {MAX_TTL_SECS} s (100 years)"
        ));
    }
    // MAX_TTL is a whole number of milliseconds, so rounding up never passes it.
    Ok(round_up_to_millis(ttl))
}

/// `ttl` rounded up to the next whole millisecond (unchanged when already whole).
pub(crate) fn round_up_to_millis(ttl: Duration) -> Duration {
    match ttl.subsec_nanos() % NANOS_PER_MILLI {
        0 => ttl,
        rest => ttl.saturating_add(Duration::from_nanos(u64::from(NANOS_PER_MILLI - rest))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert_eq!(check(Duration::from_nanos(1)), Ok(Duration::from_millis(1)));
        assert_eq!(
            check(Duration::from_micros(999)),
            Ok(Duration::from_millis(1))
        );
        assert_eq!(
            check(Duration::from_millis(1)),
            Ok(Duration::from_millis(1))
        );
        assert_eq!(
            check(Duration::from_nanos(1_000_001)),
            Ok(Duration::from_millis(2))
        );
        assert_eq!(check(MAX_TTL), Ok(MAX_TTL));
        assert_eq!(
            check(MAX_TTL - Duration::from_nanos(1)),
            Ok(MAX_TTL),
            "rounding up stays in range"
        );
        let over = check(MAX_TTL + Duration::from_nanos(1)).unwrap_err();
        assert!(over.contains("maximum of 3153600000 s"), "{over}");
        assert!(check(Duration::MAX).unwrap_err().contains("maximum"));
        assert!(check(Duration::ZERO).unwrap_err().contains("positive"));
        assert_eq!(MAX_TTL_SECS, 3_153_600_000);
    }

    #[test]
    fn config_sources_refuse_a_ttl_out_of_range_naming_them() {
        use crate::config::Config;
        for secs in [
            "10000000000000000",
            "3153600001",
            "18446744073709551615",
            "99999999999999999999999",
        ] {
            let mut c = Config::default();
            let e = c
                .apply_env(|k| (k == "REDIS_DEFAULT_TTL").then(|| secs.to_owned()))
                .unwrap_err();
            assert!(e.is_config(), "{e}");
            assert!(e.to_string().contains("REDIS_DEFAULT_TTL"), "{e}");
            assert!(e.to_string().contains("100 years"), "{e}");
            let json = format!(r#"{{"redis": {{"default_ttl": {secs}}}}}"#);
            let e = Config::default()
                .apply_json(std::path::Path::new("config.json"), &json)
                .unwrap_err();
            assert!(e.is_config(), "{e}");
            assert!(e.to_string().contains("default_ttl"), "{e}");
            assert!(e.to_string().contains("config.json"), "{e}");
        }
        let mut c = Config::default();
        c.apply_env(|k| (k == "REDIS_DEFAULT_TTL").then(|| MAX_TTL_SECS.to_string()))
            .unwrap();
        assert_eq!(c.default_ttl, Some(MAX_TTL));
        c.apply_json(
            std::path::Path::new("config.json"),
            r#"{"redis": {"default_ttl": 3153600000}}"#,
        )
        .unwrap();
        assert_eq!(c.default_ttl, Some(MAX_TTL));
    }

    #[tokio::test]
    async fn the_builders_default_ttl_is_checked_at_build() {
        use crate::CacheManager;
        for bad in [
            MAX_TTL + Duration::from_nanos(1),
            Duration::MAX,
            Duration::ZERO,
        ] {
            let e = CacheManager::builder()
                .memory()
                .default_ttl(Some(bad))
                .build()
                .unwrap_err();
            assert!(e.is_config(), "{e}");
            assert!(e.to_string().contains("default_ttl"), "{e}");
        }
        let c = CacheManager::builder()
            .memory()
            .default_ttl(Some(Duration::from_nanos(1)))
            .build()
            .unwrap();
        assert_eq!(c.default_ttl(), Some(Duration::from_millis(1)));
        let max = CacheManager::builder()
            .memory()
            .default_ttl(Some(MAX_TTL))
            .build()
            .unwrap();
        assert_eq!(max.resolve_ttl(Ttl::Default).unwrap(), Some(MAX_TTL));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every duration is either refused (zero or above the maximum) or becomes the smallest
        /// whole number of milliseconds not below it, inside the range.
        #[test]
        fn check_rounds_up_to_whole_millis_inside_the_range(
            secs in prop_oneof![0u64..10, MAX_TTL_SECS - 2..MAX_TTL_SECS + 2, any::<u64>()],
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000, Just(999_999_999)],
        ) {
            let ttl = Duration::new(secs, nanos);
            match check(ttl) {
                Ok(d) => {
                    prop_assert!(!ttl.is_zero() && ttl <= MAX_TTL);
                    prop_assert!(d >= ttl && d <= MAX_TTL);
                    prop_assert_eq!(d.subsec_nanos() % NANOS_PER_MILLI, 0);
                    prop_assert!(d - ttl < Duration::from_millis(1));
                }
                Err(msg) => {
                    prop_assert!(ttl.is_zero() || ttl > MAX_TTL, "{:?}: {}", ttl, msg);
                    prop_assert!(msg.contains("TTL"));
                }
            }
        }
    }
}
