//! cachette's integration tests: one binary (faster to build), real backends only.
//!
//! - `conformance`: the behaviour of `CacheManager`, written once and run against every
//!   backend (`memory`, `redis`), each Redis test on its own spawned `redis-server`.
//! - `conformance_tags`: the tag scenarios of the conformance suite (invalidation by tag and
//!   of the namespace, read-through with tags, plain reads of tagged values, lost versions).
//! - `redis_failure`: server down at start, killed and restarted, paused.
//! - `redis_errors`: errors that are not connection problems (a key that is not UTF-8,
//!   `WRONGTYPE`, `NOPERM`, `OOM`, `ERR`, oversized values) keep the connection and the
//!   circuit breaker closed.
//! - `macros`: the attribute macros on every backend (the spec's usage examples);
//!   `macros_keys`: golden keys; `macros_default`: the process-wide default manager;
//!   `macros_failures`: `fallback_on_error` against a dead server; `macros_stampede`: the
//!   stampede options of `#[cached]` (`lock`, `stale_ttl`, `soft_timeout`, `hard_timeout`,
//!   `early_refresh`, `jitter`, `coalesce`); `macros_tags`: `tags = [...]` on `#[cached]`,
//!   `#[cache_put]` and `#[cache_evict]`; `macros_typed`: `#[cached]` hits served from the
//!   decoded copies the near cache and the memory backend keep (no decoding), other clients'
//!   writes, deletes and expiry, tagged values, non-`Clone` values. The `macros` and
//!   `macros_tags` scenarios also run with a near cache.
//! - `acl`: a least-privilege ACL user (the documented rules suffice and are all needed),
//!   `NOPERM` and wrong-password errors.
//! - `chaos`: kill/restart, SIGSTOP and a corrupted value under read-through load.
//! - `stampede`: coalescing, leases across managers and processes, early refresh, stale
//!   copies, jitter.
//! - `cluster`, `cluster_stampede`: Redis Cluster specifics (batches, every primary, slot
//!   migration, failover; leases and metadata in their value's slot, wake-ups).
//! - `near`: the near cache (`CacheManagerBuilder::near_cache`): hits in process, invalidation
//!   by other clients, own writes, `FLUSHALL`, a killed tracking connection, a dead server,
//!   expiry, bounds, and a versioned stress of the staleness bound; the conformance suite also
//!   runs with a near cache (`conformance::redis_near`); typed hits (`get_shared`).
//! - `near_process`: the near cache across separate OS processes (this binary re-run as
//!   workers): a write seen by another process within the bound, 10^6 versioned operations
//!   over three processes, chaos under load, each read checked against the staleness rule.
//! - `near_topologies`: the near cache on a Redis Cluster (every primary's writes reach the
//!   tier, a killed primary leaves no stale copy) and through Sentinel (the channel follows a
//!   failover); the conformance suite runs on both too.
//! - `warm`: cache warming in `set_many` batches.
//! - `secrets`: no credentials in any output (property test), the empty-prefix guard.
//! - `glob_vs_redis`: the memory glob matcher fuzzed against a real server's `KEYS`.
//! - `metrics` (feature `metrics`): what a Prometheus scrape shows.
//! - `cluster`: Redis Cluster batches, scans, redirections and a failover; `cluster_stats`:
//!   the stats publisher on a cluster (slot owner, MOVED, failover, unreachable seeds).
//! - `sentinel`: Redis Sentinel (a primary, a replica, three sentinels): `#[cached]` load
//!   through a killed primary and a `SENTINEL FAILOVER` (recovery times printed), writes
//!   after a failover, a demoted node, wrong master name, unreachable sentinels; the
//!   conformance suite runs through Sentinel too (`conformance::redis_sentinel`).
//! - `tls` (feature `tls`): `rediss://` against a TLS `redis-server` (good and bad
//!   certificates, mutual TLS, the stall watchdog, file errors); the conformance suite also
//!   runs over TLS (`conformance::redis_tls`).
//! - `tls_cluster` (feature `tls`): a Redis Cluster serving TLS only (redirections followed
//!   in TLS, an untrusted CA); the whole conformance suite runs on one too
//!   (`conformance::tls_cluster_runs_the_whole_suite`).

#[macro_use]
mod support;

mod acl;
mod chaos;
mod cluster;
mod cluster_stampede;
mod cluster_stats;
mod coalesced_failures;
mod conformance;
mod conformance_tags;
mod glob_vs_redis;
mod macros;
mod macros_default;
mod macros_failures;
mod macros_keys;
mod macros_stampede;
mod macros_tags;
mod macros_typed;
#[cfg(feature = "metrics")]
mod metrics;
mod near;
mod near_process;
mod near_topologies;
mod redis_errors;
mod redis_failure;
mod secrets;
mod sentinel;
mod stampede;
mod supersede;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_cluster;
mod warm;
