//! Redis-backed and embedded caching for async Rust services.
//!
//! cachette gives a service one caching API over two backends that behave identically:
//!
//! - an **embedded memory backend**, the default when no Redis server is configured: bounded
//!   by entries and/or bytes, per-key TTLs reclaimed in the background, Redis glob patterns;
//! - **Redis** (standalone) over the `redis` crate: multiplexed connections that reconnect by
//!   themselves, a timeout on every operation, `SCAN`/`UNLINK` instead of `KEYS`/`DEL`.
//!
//! Values are stored as exactly `serde_json::to_vec(&value)` by default, so other services can
//! read them, and every key carries the manager's prefix (default `cache:`).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use cachette::{CacheManager, KeyTtl, Ttl};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cachette::Error> {
//! // In a service: `CacheManager::from_env()?` reads config.json and REDIS_* variables.
//! let cache = CacheManager::memory();
//!
//! cache.set("user:1", &vec!["admin", "author"], Duration::from_secs(300)).await?;
//! let roles: Option<Vec<String>> = cache.get("user:1").await?;
//! assert_eq!(roles.unwrap(), ["admin", "author"]);
//!
//! cache.set("settings", &42, Ttl::Never).await?;
//! assert_eq!(cache.ttl("settings").await?, KeyTtl::Persistent);
//!
//! cache.set_many([("post:1", "a"), ("post:2", "b")], Ttl::Default).await?;
//! assert_eq!(cache.keys("post:*").await?, ["post:1", "post:2"]);
//! assert_eq!(cache.clear().await?, 4);
//! # Ok(())
//! # }
//! ```
//!
//! # Backends
//!
//! [`Config`] decides: a Redis URL, host or port named in `config.json`, the environment or
//! the builder selects Redis; otherwise the memory backend runs. A custom [`Backend`] can be
//! plugged in with [`CacheManagerBuilder::backend`].
//!
//! # Attribute macros
//!
//! [`macro@cached`], [`macro@cache_put`], [`macro@cache_evict`] and [`macro@cached_property`]
//! are the spec's decorators: put one on an `async fn` or method and its results are cached in
//! the process-wide default manager ([`install`], [`default_manager`]) or the one named with
//! `cache = ...`. Default keys are stable across processes, machines and releases
//! (`{prefix}{module}:{function}:{xxh3-128 of the arguments}`, see [`key`]); the macros expand
//! into the plain-Rust [`runtime`], which also keeps per-function hit/miss counters.
//!
//! ```
//! use cachette::{cache_evict, cached};
//!
//! #[cached(ttl = 300, key = "user:{user_id}")]
//! async fn get_user(user_id: u64) -> Result<String, std::io::Error> {
//!     Ok(format!("user {user_id}")) // the database query
//! }
//!
//! #[cache_evict(key = "user:{user_id}")]
//! async fn rename_user(user_id: u64, name: &str) -> Result<(), std::io::Error> {
//!     Ok(()) // the database update
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! get_user(1).await?; // miss: runs the query and stores "user 1" under cache:user:1
//! get_user(1).await?; // hit
//! rename_user(1, "Ada").await?; // evicts cache:user:1
//! let cache = cachette::default_manager().ok_or("invalid configuration")?;
//! assert!(!cache.exists("user:1").await?);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every operation returns [`Error`], which tells its [`ErrorKind`] (`Timeout`, `Connection`,
//! `Decode` naming the key, `Config` naming the source and field, ...). Nothing in this crate
//! panics on I/O or bad data, and no error or `Debug` output contains a password.
//!
//! # Layout
//!
//! How the crate is organised (layers, what each folder may and may never do, and the path of
//! one `#[cached]` call from the macro to the wire and back) is in [`architecture`], the
//! repository's `ARCHITECTURE.md`.
//!
//! # Crate features
//!
//! - `msgpack`: `Codec::MessagePack` through `rmp-serde`.
//! - `tls`: `rediss://` URLs through rustls.
//! - `metrics`: counters and histograms through the `metrics` facade (module `cachette::metrics`).
#![cfg_attr(
    not(test),
    deny(clippy::panic, clippy::unwrap_used, clippy::expect_used)
)]

pub mod acl;
pub mod backend;
pub mod codec;
pub mod config;
pub mod error;
pub mod glob;
pub mod key;
mod load;
mod manager;
mod observe;
pub mod runtime;
mod secret;
pub mod stats;
pub mod ttl;

// Paths users have today, kept stable across the layout change.
pub use backend::{breaker, info};
#[cfg(feature = "metrics")]
pub use observe::metrics;
pub use observe::publish;

pub use backend::{Backend, KeyTtl, NearCacheOptions, NearStats};
pub use breaker::{BreakerPolicy, CircuitBreaker, CircuitState};
pub use codec::Codec;
pub use config::Config;
pub use config::{RedisEndpoint, TlsOptions};
pub use error::{Error, ErrorKind, Result};
pub use info::ServerInfo;
pub use load::{LoadError, LoadOptions, Outcome};
pub use manager::{
    BackendLayer, CacheManager, CacheManagerBuilder, Warm, WarmProgress, WarmReport,
};
pub use publish::StatsPublisher;
pub use stats::Stats;
pub use ttl::Ttl;

pub use cachette_macros::{cache_evict, cache_put, cached, cached_property};
pub use runtime::{default_manager, install, CachedProperty};

/// What the attribute macros expand into; not a public API (use [`runtime`] and [`key`]).
#[doc(hidden)]
pub mod __private {
    pub use crate::key::{type_label, ArgsHasher, KeyTemplate};
    pub use crate::runtime::*;
    pub use crate::{CacheManager, Error, LoadOptions, Ttl};
}

#[doc = include_str!("../../../ARCHITECTURE.md")]
pub mod architecture {}

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
