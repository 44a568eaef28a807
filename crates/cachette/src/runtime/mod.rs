//! The runtime behind the attribute macros, usable as plain Rust.
//!
//! `#[cached]`, `#[cache_put]`, `#[cache_evict]` and `#[cached_property]` contain no caching
//! logic: each rewrites the function body in place into a few calls to this module.
//! For `#[cached(ttl = 300)] async fn get_user(id: u64) -> Result<User, E> { body }`:
//!
//! ```text
//! async fn get_user(id: u64) -> Result<User, E> {
//!     static SITE: FnSite = FnSite::new(module_path!(), "get_user", SiteKind::Cached);
//!     static OPTIONS: LoadOptions = LoadOptions::new()      // every option a literal: a
//!         .with_ttl(Ttl::secs(300))                         // static; with an expression
//!         .fallback_on_error(true);                         // (`ttl = dur`), a local
//!     let manager = cachette::default_manager();            // or `cache = expr`
//!     let call = Call::new(&SITE, None, manager, &OPTIONS, || {
//!         // the default key: module:function:xxh3-128 of the arguments (see `cachette::key`)
//!     });
//!     cached_result(call, /* unless */ |_| false, async move { body }).await
//! }
//! ```
//!
//! - [`FnSite`] is the function's identity and counters ([`function_stats`]).
//! - [`Call`] resolves the manager and computes the key *before* the body takes the
//!   arguments; it skips the key when the manager is absent or disabled. It borrows the
//!   call's [`LoadOptions`](crate::LoadOptions): TTL, lock, early refresh, stale copies,
//!   timeouts, jitter, coalescing (`#[cached(lock = true, stale_ttl = 60, ...)]`).
//! - [`cached_result`], [`cached_result_strict`], [`cached_result_bounded`] (with a hard
//!   timeout), [`cached_option`], [`cached_value`] read
//!   through [`CacheManager::get_or_load_traced`](crate::CacheManager::get_or_load_traced);
//!   the macro calls their `_with` forms ([`cached_result_with`], [`cached_option_with`],
//!   [`cached_value_with`]) with a [`HitPath`]: for a value type that is
//!   `Clone + Send + Sync + 'static`, a hit on a manager with a near cache clones the value
//!   the near cache keeps decoded instead of decoding it ([`ValueProbe`] picks it at compile
//!   time);
//!   [`put_result`] and siblings write through; [`evict_result`] and siblings evict.
//! - [`install`] and [`default_manager`] manage the process-wide default manager.
//! - [`CachedProperty`] is the per-instance lazy value behind `#[cached_property]`.
//!
//! Set `CACHETTE_MACRO_DEBUG=1` while compiling to print every expansion (or
//! `CACHETTE_MACRO_DEBUG=get_user` for one function).
//!
//! # Errors
//!
//! By default (`fallback_on_error = true`) nothing here fails because of the cache: a cache
//! that is down, slow, or holds an undecodable value makes the function run uncached (logged
//! with `tracing::warn!` and counted as an error). The `_strict` variants return the cache
//! error through the function's error type instead (`E: From<cachette::Error>`). A body that
//! exceeds the options' hard timeout is not a cache failure: [`cached_result_bounded`] and
//! [`cached_result_strict`] return it as an `ErrorKind::Timeout` error the same way.

mod call;
mod default;
mod evict;
mod hit;
mod property;
mod read;
mod share;
mod site;
#[cfg(test)]
mod tests;
mod write;

use std::future::Future;

use crate::ttl::Ttl;

pub use self::call::{Call, OwnerFn};
pub use self::default::{default_manager, install};
pub use self::evict::{
    evict_result, evict_result_strict, evict_value, Evict, EvictPlan, EvictWhen,
};
pub use self::hit::{HitByClone, HitByDecode, HitPath, ValueProbe};
pub use self::property::CachedProperty;
pub use self::read::{
    cached_option, cached_option_with, cached_result, cached_result_bounded, cached_result_strict,
    cached_result_with, cached_value, cached_value_with, ErrProbe, ErrSharing, ResultMode,
    ShareByClone, ShareByFrom, ShareNone,
};
pub use self::site::{
    function_stats, function_stats_of, reset_function_stats, FnSite, FunctionStats, SiteKind,
};
pub use self::write::{put_option, put_result, put_result_strict, put_value};

/// Converts a `ttl = <expression>` option: a `Duration`, an `Option<Duration>` (`None` = no
/// expiry) or a [`Ttl`].
#[inline]
pub fn ttl(ttl: impl Into<Ttl>) -> Ttl {
    ttl.into()
}

/// The `unless` of functions that do not give one: caches every cacheable value.
#[inline]
pub fn never<T: ?Sized>(_: &T) -> bool {
    false
}

/// `#[cached_property]` on a method returning any `T`: the value of `property`, computed by
/// `body` when absent or expired. `ttl` is [`Ttl::Default`] when the attribute names none
/// (the property's own TTL applies).
pub async fn property<T, Fut>(property: &CachedProperty<T>, ttl: Ttl, body: Fut) -> T
where
    T: Clone,
    Fut: Future<Output = T>,
{
    property.get_or_init_for(ttl, || body).await
}

/// `#[cached_property]` on a method returning `Result<T, E>`: only `Ok` values are kept.
///
/// # Errors
/// The body's error (not stored).
pub async fn property_result<T, E, Fut>(
    property: &CachedProperty<T>,
    ttl: Ttl,
    body: Fut,
) -> Result<T, E>
where
    T: Clone,
    Fut: Future<Output = Result<T, E>>,
{
    property.get_or_try_init_for(ttl, || body).await
}
