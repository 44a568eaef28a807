//! Read-through and stampede control: everything between "the value is not cached" and "the
//! value is stored", layered over the manager's byte-level operations.
//!
//! - [`options`](self::options): [`LoadOptions`], [`LoadError`], [`Outcome`], the public knobs.
//! - `read_through`: `CacheManager::get_or_load*`, the entry points.
//! - `leader`: one call's path through a miss (lease, loader, store, stale fallback).
//! - `coalesce`: in-process single flight (one loader per key per process).
//! - `lease`: the cross-process lease (`SET NX PX` + token-checked release) and its pub/sub
//!   wake-ups.
//! - `refresh`: early-refresh (XFetch) probability and TTL jitter.
//! - `meta`: the stale-copy metadata stored beside a value.
//! - `detached`: refreshes that outlive their caller (spawned tasks).
//! - `state`: what every clone of a manager shares, and its byte-level operations.
//! - `tags`: tag versions, tagged values and their documents (O(1) invalidation by tag).
//! - `typed`: a decorated hit served from the decoded copy kept with the entry (no decoding).
//! - `fills`: tickets of the fills in flight, so that a write or eviction supersedes them.

pub(crate) mod coalesce;
mod detached;
pub(crate) mod fills;
pub(crate) mod leader;
pub(crate) mod lease;
pub(crate) mod meta;
pub(crate) mod read_through;
pub(crate) mod refresh;
pub(crate) mod state;
pub(crate) mod tags;
mod typed;

pub(crate) use read_through::LoadKey;
pub use read_through::{LoadError, LoadOptions, Outcome};
