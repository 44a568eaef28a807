//! Time-to-live policy for writes.

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
    /// Expires after this long (millisecond resolution; must be non-zero).
    After(Duration),
}

impl Ttl {
    /// `Ttl::After(Duration::from_secs(secs))`.
    pub const fn secs(secs: u64) -> Ttl {
        Ttl::After(Duration::from_secs(secs))
    }

    /// Resolves the policy against a manager's default (`None` = persistent).
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
