//! How a `#[cached]` hit gets its value: decoded from the stored bytes on every hit, or, for a
//! value type that is `Clone + Send + Sync + 'static`, cloned from the copy the near cache
//! keeps decoded beside its entry (decoded once per entry). The macro picks the path at
//! compile time by autoref specialisation over [`ValueProbe`], as it picks the error sharing
//! ([`ErrProbe`](super::ErrProbe)).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use crate::load::read_through::TypedHit;

/// How the hits of a `#[cached]` function get their value.
///
/// - [`HitPath::typed`] (`T: Clone + Send + Sync + 'static`): on a manager with a near cache
///   ([`CacheManagerBuilder::near_cache`](crate::CacheManagerBuilder::near_cache)), a hit
///   clones the value decoded once per near-cache entry (as
///   [`CacheManager::get_cloned`](crate::CacheManager::get_cloned) does), unless the
///   function's options read more than the entry (stale copies, early refresh, tags) or the
///   value was stored with tags; everything else is as [`HitPath::decode`];
/// - [`HitPath::decode`]: every hit decodes the stored bytes.
///
/// Either way a hit is counted, traced and checked the same. `#[cached]` picks `typed` when
/// the value type allows it where the function is defined ([`ValueProbe`]).
pub struct HitPath<T> {
    pub(crate) typed: Option<TypedHit<T>>,
}

impl<T> Clone for HitPath<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for HitPath<T> {}

impl<T> std::fmt::Debug for HitPath<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HitPath")
            .field("typed", &self.typed.is_some())
            .finish()
    }
}

impl<T> HitPath<T> {
    /// Every hit decodes the stored bytes.
    pub const fn decode() -> Self {
        HitPath { typed: None }
    }

    /// A near-cache hit clones the value decoded once per entry (see [`HitPath`]).
    pub fn typed() -> Self
    where
        T: Clone + Send + Sync + 'static,
    {
        HitPath {
            typed: Some(TypedHit::new()),
        }
    }
}

/// Picks a [`HitPath`] from the bounds of the cached value type `T` (autoref specialisation):
/// in scope of the traits [`HitByClone`] and [`HitByDecode`],
/// `(&&ValueProbe::of_value(&body)).hit_path()` is [`HitPath::typed`] when `T: Clone + Send +
/// Sync + 'static`, else [`HitPath::decode`]. What `#[cached]` expands into.
pub struct ValueProbe<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for ValueProbe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValueProbe")
    }
}

impl<T> ValueProbe<T> {
    /// The probe for `T`, the `Ok` type of `body`'s `Result<T, E>`.
    pub fn of_result<E, F: Future<Output = Result<T, E>>>(_body: &Pin<&mut F>) -> Self {
        ValueProbe(PhantomData)
    }

    /// The probe for `T`, the `Some` type of `body`'s `Option<T>` (only `Some` is cached).
    pub fn of_option<F: Future<Output = Option<T>>>(_body: &Pin<&mut F>) -> Self {
        ValueProbe(PhantomData)
    }

    /// The probe for `T`, `body`'s output (cached as a whole).
    pub fn of_value<F: Future<Output = T>>(_body: &Pin<&mut F>) -> Self {
        ValueProbe(PhantomData)
    }
}

/// See [`ValueProbe`]: `T: Clone + Send + Sync + 'static`.
pub trait HitByClone<T> {
    /// [`HitPath::typed`].
    fn hit_path(&self) -> HitPath<T>;
}

impl<T: Clone + Send + Sync + 'static> HitByClone<T> for &ValueProbe<T> {
    fn hit_path(&self) -> HitPath<T> {
        HitPath::typed()
    }
}

/// See [`ValueProbe`]: any other `T`.
pub trait HitByDecode<T> {
    /// [`HitPath::decode`].
    fn hit_path(&self) -> HitPath<T>;
}

impl<T> HitByDecode<T> for ValueProbe<T> {
    fn hit_path(&self) -> HitPath<T> {
        HitPath::decode()
    }
}
