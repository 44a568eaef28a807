//! Typed hits of decorated calls: a `#[cached]` hit of a `Clone + Send + Sync + 'static` value
//! served from the decoded copy the near cache or the memory backend keeps with its entry (a
//! clone, no decoding), chosen at compile time by the macro (`runtime::HitPath`).

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::backend::memory::MemoryBackend;
use crate::backend::near::{NearBackend, Shared as Tiered};
use crate::load::leader::{Begin, Call, Read};
use crate::load::read_through::First;
use crate::load::state::State;
use crate::load::tags::is_marked;
use crate::stats::Counters;

/// How a decorated call's first read serves a hit from the decoded copy the near cache or the
/// memory backend keeps with its entry, for a value type that is `Clone + Send + Sync +
/// 'static` (the bounds [`NearBackend::hit_shared`] and [`MemoryBackend::hit_shared`] need,
/// which the read-through machinery does not have): their operations, monomorphized where the
/// bounds are known (`runtime::HitPath::typed`).
pub(crate) struct TypedHit<T> {
    /// [`NearBackend::hit_shared`] for `T`.
    near_lookup: fn(&NearBackend, &str) -> Tiered<T>,
    /// [`NearBackend::attach`] for `T`.
    near_attach: fn(&NearBackend, &str, &Bytes, Arc<T>),
    /// [`MemoryBackend::hit_shared`] for `T`.
    memory_lookup: fn(&MemoryBackend, &str) -> Tiered<T>,
    /// [`MemoryBackend::attach`] for `T`.
    memory_attach: fn(&MemoryBackend, &str, &Bytes, Arc<T>),
    /// `T::clone`.
    clone: fn(&T) -> T,
}

/// The in-process tier a typed read goes through.
#[derive(Clone, Copy)]
pub(super) enum TypedTier<'a> {
    Near(&'a NearBackend),
    Memory(&'a MemoryBackend),
}

impl TypedTier<'_> {
    fn lookup<T>(self, typed: &TypedHit<T>, full: &str) -> Tiered<T> {
        match self {
            TypedTier::Near(near) => (typed.near_lookup)(near, full),
            TypedTier::Memory(memory) => (typed.memory_lookup)(memory, full),
        }
    }

    fn attach<T>(self, typed: &TypedHit<T>, full: &str, bytes: &Bytes, value: Arc<T>) {
        match self {
            TypedTier::Near(near) => (typed.near_attach)(near, full, bytes, value),
            TypedTier::Memory(memory) => (typed.memory_attach)(memory, full, bytes, value),
        }
    }

    /// A read the tier did not answer: from Redis behind the near cache; the memory backend
    /// answered already (nothing).
    async fn miss(self, full: &str) -> crate::Result<Option<Bytes>> {
        match self {
            TypedTier::Near(near) => Box::pin(near.miss(full)).await,
            TypedTier::Memory(_) => {
                // As `FastPath::get`: a memory read spends tokio's budget, found or not.
                crate::backend::memory::cooperate().await;
                Ok(None)
            }
        }
    }
}

impl<T> Clone for TypedHit<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TypedHit<T> {}

impl<T: Clone + Send + Sync + 'static> TypedHit<T> {
    /// The operations for `T`.
    pub(crate) fn new() -> Self {
        TypedHit {
            near_lookup: NearBackend::hit_shared::<T>,
            near_attach: NearBackend::attach::<T>,
            memory_lookup: MemoryBackend::hit_shared::<T>,
            memory_attach: MemoryBackend::attach::<T>,
            clone: T::clone,
        }
    }
}

impl State {
    /// [`Call::read`] of a plain entry (no metadata, no tags wanted) through the near cache or
    /// the memory backend, with the value decoded once per entry: a decoded copy is cloned; an
    /// entry without one (or with another type's) is decoded and the result kept with it. A
    /// tagged value (one written with tags) is checked against its tags and decoded every
    /// time, never kept (see `load::tags`). Counted, and everything but a hit handed back, as
    /// `Call::read` and [`read_first`](Self::read_first) do.
    pub(super) async fn read_typed<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        tier: TypedTier<'_>,
        typed: TypedHit<T>,
    ) -> First<T> {
        let full: &str = &call.full;
        let fetched = match tier.lookup(&typed, full) {
            Tiered::Decoded(value) => {
                // A hit never waits: spend tokio's budget now and then (see `FastPath::get`).
                crate::backend::memory::cooperate().await;
                self.counters().hit();
                call.mine(Counters::hit);
                return First::Hit((typed.clone)(&value));
            }
            Tiered::Encoded(stored) => {
                crate::backend::memory::cooperate().await;
                Ok(Some(stored))
            }
            // A round trip (near cache): out of line, so that a hit's future stays small.
            Tiered::Missing => tier.miss(full).await,
        };
        // What `read_entry` does with the bytes read: a tagged value is checked.
        let found = match fetched {
            Ok(Some(stored)) if is_marked(&stored) => Box::pin(self.check_marked(full, stored))
                .await
                .map(|checked| checked.map(|bytes| (bytes, false))),
            Ok(found) => Ok(found.map(|bytes| (bytes, true))),
            Err(e) => Err(e),
        };
        let (bytes, keep) = match found {
            Ok(Some(found)) => {
                self.counters().hit();
                found
            }
            Ok(None) => {
                self.counters().miss();
                return First::Rest(Begin::After(Ok(Read::Miss)));
            }
            Err(e) => {
                self.counters().error();
                return First::Rest(Begin::After(Ok(Read::Failed(e.with_key(full)))));
            }
        };
        match self.codec().decode::<T>(full, &bytes) {
            // No metadata: always fresh.
            Ok(value) => {
                call.mine(Counters::hit);
                if !keep {
                    return First::Hit(value);
                }
                let copy = (typed.clone)(&value);
                tier.attach(&typed, full, &bytes, Arc::new(value));
                First::Hit(copy)
            }
            Err(e) => {
                // An undecodable value is a miss that gets overwritten.
                call.both(Counters::decode_error);
                tracing::warn!(error = %e, "cachette: treating an undecodable cached value as a miss");
                First::Rest(Begin::After(Ok(Read::Miss)))
            }
        }
    }
}
