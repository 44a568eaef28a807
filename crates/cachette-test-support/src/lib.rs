//! Real `redis-server` processes on ephemeral loopback ports, for cachette's tests and benches.
//!
//! Modelled on redis-rs' `redis-test` crate: every [`RedisServer`] is its own `redis-server`
//! process, bound to `127.0.0.1` on a port picked by the kernel, with no persistence, its working
//! directory and log in a temporary directory that lives as long as the value. Unlike
//! `redis-test`, [`RedisServer::spawn`] waits until the server answers `PING`, and every failure
//! message carries the server's log.
//!
//! # Examples
//!
//! ```no_run
//! use cachette_test_support::RedisServer;
//!
//! let server = RedisServer::new(); // panics with the log if redis-server cannot start
//! assert_eq!(server.cli(["SET", "k", "v"]), "OK");
//! let url = server.url(); // "redis://127.0.0.1:PORT/"
//! # let _ = url;
//!
//! // Chaos: kill it, bring it back on the same port, pause it.
//! server.kill();
//! server.restart();
//! server.stop_process();
//! server.continue_process();
//! ```
//!
//! With a password and keyspace notifications:
//!
//! ```no_run
//! use cachette_test_support::RedisServer;
//!
//! let server = RedisServer::builder()
//!     .password("s3cret")
//!     .arg("--notify-keyspace-events")
//!     .arg("KEA")
//!     .spawn()?;
//! assert!(server.url().starts_with("redis://:s3cret@127.0.0.1:"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Finding `redis-server`
//!
//! `REDIS_SERVER_BIN` names the binary; otherwise `redis-server` is looked up on `PATH`.
//! [`RedisServer::cli`] uses `REDIS_CLI_BIN`, else a `redis-cli` next to the server binary, else
//! `redis-cli` on `PATH`. [`redis_available`] tells whether a server binary can be run.
//!
//! # Processes never outlive the test
//!
//! Dropping a [`RedisServer`] kills the process and waits for it. A server kept in a `static`
//! is never dropped, so each server also gets a tiny `sh` watchdog that holds a pipe from the
//! test process and, when that pipe closes, i.e. when the test process exits for any reason
//! (including being killed by a test runner's timeout), SIGKILLs the server and removes its
//! temporary directory.

mod binary;
mod builder;
mod cluster;
mod error;
mod process;
mod resp;
mod sentinel;
mod server;
mod tls;
mod url;

pub use binary::redis_available;
pub use builder::RedisServerBuilder;
pub use cluster::{RedisCluster, CLUSTER_NODE_TIMEOUT_MS};
pub use error::{SpawnError, SpawnErrorKind};
pub use sentinel::{RedisSentinel, SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS};
pub use server::RedisServer;
pub use tls::TlsFiles;

#[cfg(test)]
mod tests;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
