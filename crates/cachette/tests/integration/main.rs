//! cachette's integration tests: one binary (faster to build), real backends only.
//!
//! - `conformance`: the behaviour of `CacheManager`, written once and run against every
//!   backend (`memory`, `redis`), each Redis test on its own spawned `redis-server`.
//! - `redis_failure`: server down at start, killed and restarted, paused.

mod conformance;
mod redis_failure;
mod support;
