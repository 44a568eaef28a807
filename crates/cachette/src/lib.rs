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
//! # Errors
//!
//! Every operation returns [`Error`], which tells its [`ErrorKind`] (`Timeout`, `Connection`,
//! `Decode` naming the key, `Config` naming the source and field, ...). Nothing in this crate
//! panics on I/O or bad data, and no error or `Debug` output contains a password.
//!
//! # Crate features
//!
//! - `msgpack`: `Codec::MessagePack` through `rmp-serde`.
//! - `tls`: `rediss://` URLs through rustls.
#![cfg_attr(
    not(test),
    deny(clippy::panic, clippy::unwrap_used, clippy::expect_used)
)]

pub mod backend;
pub mod codec;
pub mod config;
pub mod error;
pub mod glob;
pub mod info;
mod load;
mod manager;
pub mod stats;
mod ttl;

pub use backend::{Backend, KeyTtl};
pub use codec::Codec;
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use info::ServerInfo;
pub use load::{LoadError, LoadOptions, Outcome};
pub use manager::{CacheManager, CacheManagerBuilder};
pub use stats::Stats;
pub use ttl::Ttl;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
