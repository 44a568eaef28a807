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
use crate::load::state::{FastPath, State};
use crate::load::tags::is_marked;
use crate::load::{LoadKey, LoadOptions};
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
    /// [`NearBackend::hit_cloned`] for `T`.
    near_cloned: fn(&NearBackend, &str) -> Option<T>,
    /// [`MemoryBackend::hit_cloned`] for `T`.
    memory_cloned: fn(&MemoryBackend, &str) -> Option<T>,
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

    /// A clone of the decoded copy, if there is one (a hit; nothing else is counted).
    fn cloned<T>(self, typed: &TypedHit<T>, full: &str) -> Option<T> {
        match self {
            TypedTier::Near(near) => (typed.near_cloned)(near, full),
            TypedTier::Memory(memory) => (typed.memory_cloned)(memory, full),
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
            near_cloned: NearBackend::hit_cloned::<T>,
            memory_cloned: MemoryBackend::hit_cloned::<T>,
            clone: T::clone,
        }
    }
}

impl State {
    /// The in-process tier a typed read of a call with `options` goes through: the near cache
    /// or the memory backend, unless the options read more than the entry (metadata for stale
    /// copies and early refresh, tags).
    pub(super) fn typed_tier(&self, options: &LoadOptions) -> Option<TypedTier<'_>> {
        if options.needs_meta() || !options.tags.is_empty() {
            return None;
        }
        match &self.fast {
            FastPath::Near(near) => Some(TypedTier::Near(near)),
            FastPath::Memory(memory) => Some(TypedTier::Memory(memory)),
            _ => None,
        }
    }

    /// A typed hit without awaiting anything: the clone of the decoded copy the near cache
    /// or the memory backend keeps with the entry of `full`, counted on the manager and on
    /// `counters`, as [`read_typed`](Self::read_typed) serves it. `None` is everything else,
    /// left (uncounted) for the read-through path to handle: no tier or options that read
    /// more than the entry, an entry that is missing or not decoded as `T`, a key or TTL
    /// that the read refuses (`checked_load_key`), or a `tracing` subscriber that may want
    /// the load's span (`DEBUG` enabled).
    ///
    /// What lets a decorated hit skip setting up the read-through future: the caller
    /// (`runtime::Call::hit_now`) only spends tokio's budget after it.
    pub(crate) fn hit_now<T>(
        &self,
        full: &str,
        options: &LoadOptions,
        counters: &Counters,
        typed: TypedHit<T>,
    ) -> Option<T> {
        let tier = self.typed_tier(options)?;
        if tracing::level_enabled!(tracing::Level::DEBUG)
            || self.checked_load_key(LoadKey::Full(full), options).is_err()
        {
            return None;
        }
        let value = tier.cloned(&typed, full)?;
        self.counters().hit();
        counters.hit();
        Some(value)
    }

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
