//! cachette (crate docs are written last).
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
