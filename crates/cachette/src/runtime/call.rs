//! [`Call`]: one invocation of a `#[cached]` or `#[cache_put]` function, resolved to a manager
//! and a key before the body runs.

use std::fmt;

use crate::error::Error;
use crate::load::LoadOptions;
use crate::manager::CacheManager;
use crate::stats::Counters;

use super::hit::HitPath;
use super::site::FnSite;

/// Returns the type label of a method's receiver (`cachette::key::type_label::<Self>`).
pub type OwnerFn = fn() -> &'static str;

/// One call of a decorated function: its site, the manager and key it uses, and its
/// [`LoadOptions`].
///
/// Built by the code `#[cached]` and `#[cache_put]` expand into, before the function body
/// takes ownership of the arguments; consumed by [`cached_result`](super::cached_result) and
/// its siblings. The key is only computed when a manager is in use and enabled.
///
/// The options are borrowed: the expansion keeps them in a `static` when every option is a
/// literal (so a call costs nothing to set up), and in a local of the function otherwise.
/// Read-through (`cached_*`) uses all of them; write-through (`put_*`) only their TTL.
pub struct Call<'m> {
    pub(crate) site: &'static FnSite,
    pub(crate) counters: &'static Counters,
    pub(crate) state: CallState<'m>,
    pub(crate) options: &'m LoadOptions,
}

pub(crate) enum CallState<'m> {
    /// No manager, or a disabled one: run the body uncached.
    Bypass,
    /// The key could not be computed (a failing `Serialize` implementation).
    /// (Boxed: rare, and it would double the size of every call's state.)
    KeyFailed(Box<Error>),
    /// Cache under `full` (the key with the manager's prefix, built once) in `manager`.
    Active {
        manager: &'m CacheManager,
        full: String,
    },
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            CallState::Bypass => "bypass".to_owned(),
            CallState::KeyFailed(e) => format!("key failed: {e}"),
            CallState::Active { manager, full } => format!("key {:?}", key_of(manager, full)),
        };
        f.debug_struct("Call")
            .field("state", &state)
            .field("options", self.options)
            .finish()
    }
}

impl<'m> Call<'m> {
    /// Resolves a call: registers `site` (once), and computes the key with `key` when
    /// `manager` is `Some` and enabled. `owner` gives the receiver's type label of a method
    /// (for the statistics' name); `options` are the TTL and stampede options of the call
    /// (their `fallback_on_error` is decided by the runtime function the call is given to).
    #[inline]
    pub fn new(
        site: &'static FnSite,
        owner: Option<OwnerFn>,
        manager: Option<&'m CacheManager>,
        options: &'m LoadOptions,
        key: impl FnOnce() -> Result<String, Error>,
    ) -> Self {
        Self::with_prefixed_key(site, owner, manager, options, |prefix| {
            let key = key()?;
            if prefix.is_empty() {
                return Ok(key);
            }
            let mut full = String::with_capacity(prefix.len() + key.len());
            full.push_str(prefix);
            full.push_str(&key);
            Ok(full)
        })
    }

    /// [`new`](Self::new) with a key function that builds the full key: the manager's prefix
    /// (its argument) followed by the key, in one allocation (what `#[cached]` expands into
    /// for a default key).
    #[doc(hidden)]
    #[inline]
    pub fn with_prefixed_key(
        site: &'static FnSite,
        owner: Option<OwnerFn>,
        manager: Option<&'m CacheManager>,
        options: &'m LoadOptions,
        full: impl FnOnce(&str) -> Result<String, Error>,
    ) -> Self {
        let counters = site.enter(owner);
        let state = match manager {
            Some(manager) if manager.is_enabled() => match full(manager.prefix()) {
                Ok(full) => CallState::Active { manager, full },
                Err(e) => {
                    counters.error();
                    manager.counters().error();
                    tracing::warn!(error = %e, function = site.name(), "cachette: cannot build the cache key; running uncached");
                    CallState::KeyFailed(Box::new(e))
                }
            },
            _ => CallState::Bypass,
        };
        Call {
            site,
            counters,
            state,
            options,
        }
    }

    /// The value of a hit served from a decoded copy without awaiting (`hit` says whether
    /// the value type allows it), counted as any hit; `None` leaves the call to the
    /// read-through path (see `State::hit_now`).
    #[inline]
    pub(crate) fn hit_now<T>(&self, hit: &HitPath<T>) -> Option<T> {
        match (&self.state, hit.typed) {
            (CallState::Active { manager, full }, Some(typed)) => {
                manager.hit_now(full, self.options, self.counters, typed)
            }
            _ => None,
        }
    }

    /// The options of this call.
    pub fn options(&self) -> &LoadOptions {
        self.options
    }

    /// The key this call uses, when it uses the cache.
    pub fn key(&self) -> Option<&str> {
        match &self.state {
            CallState::Active { manager, full } => Some(key_of(manager, full)),
            _ => None,
        }
    }
}

/// The key of a full key of `manager` (its prefix removed).
pub(crate) fn key_of<'k>(manager: &CacheManager, full: &'k str) -> &'k str {
    full.get(manager.prefix().len()..).unwrap_or(full)
}
