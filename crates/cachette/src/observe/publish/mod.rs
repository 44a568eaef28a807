//! Shared statistics: every process adds its counters to one Redis hash, so `cachette stats`
//! shows the hit rate of each decorated function across all of them.
//!
//! Off by default. A [`StatsPublisher`] runs in the background: every `interval` (default 5 s)
//! it takes a snapshot of the per-function counters ([`crate::runtime::function_stats`], plus
//! any manager added with [`StatsPublisherBuilder::manager`]), subtracts what it published
//! before, and sends the non-zero differences as `HINCRBY`s in one `MULTI`/`EXEC` pipeline.
//! The hot path is untouched: a cache call only bumps its relaxed atomic counters, as it does
//! without a publisher; the publisher reads them once per interval.
//!
//! # The hash
//!
//! Key `{prefix}__cachette:stats` (`cache:__cachette:stats` by default), one field per
//! function and counter, `{function}|{counter}`, e.g. `app::users::get_user|hits`. Counters:
//! `hits`, `misses`, `writes`, `errors`, `decode_errors`, `coalesced`, `early_refreshes`,
//! `stale_served`, `fallbacks`, `loader_errors`, `loader_timeouts`, `evicted` (see
//! [`Stats`] for their meaning). Field `__cachette|published_at_ms` holds the Unix time in
//! milliseconds of the latest batch. The values are totals over every process since the hash
//! was last deleted (`cachette stats --reset`); nothing expires. A manager added with
//! [`StatsPublisherBuilder::manager`] (as [`CacheManager::stats_publisher`] does) that has a
//! near cache also publishes its near cache's counters and size as `__cachette:near|hits`,
//! `…|misses`, `…|invalidations`, `…|flushes`, `…|discarded`, `…|evictions`, `…|entries`,
//! `…|bytes` (see [`NEAR_COUNTERS`]; read back as [`Published::near`]).
//!
//! Delivery is at least once: a batch whose reply times out is sent again with the next one,
//! so a timeout can count a batch twice; a batch that fails is kept and added to the next.
//!
//! # On a Redis Cluster
//!
//! The hash lives on the primary that serves its slot. A batch is then one `EVAL` of a short
//! script doing the same `HINCRBY`s and `HSET` on that one key (a `MULTI` cannot follow a
//! redirection), routed by the cluster backend like any single-key command: `MOVED` and `ASK`
//! followed, the slot map refreshed after a failover, bounded by twice the command timeout.
//! [`CacheManager::stats_publisher`] reuses the manager's cluster backend (its slot map and
//! node connections); [`Config::stats_publisher`] builds one of the publisher's own from the
//! seeds. Read the hash back with [`CacheManager::published_stats`] (what `cachette stats`
//! does).
//!
//! # Guarantees
//!
//! The publisher never makes a cache call wait or fail: it runs in its own task, every batch
//! is bounded by the timeouts, and a failure is logged once (`warn`) and retried with the
//! next batch.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use cachette::{CacheManager, Config};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), cachette::Error> {
//! let config = Config::load()?;
//! let cache = config.clone().builder().build()?;
//! let stats = config
//!     .stats_publisher()? // the same server and prefix as the cache
//!     .interval(Duration::from_secs(5))
//!     .manager("direct", &cache) // this manager's own get/set counters, as "direct"
//!     .start()?;
//! // ... serve ...
//! stats.stop().await; // publishes the last counts (dropping it stops it too)
//! # Ok(())
//! # }
//! ```

mod near;
mod read;
mod sink;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

pub use self::near::{NEAR_COUNTERS, NEAR_NAME};
pub use self::read::{Published, PublishedFunction};
use self::sink::{Sink, Target};
use crate::backend::{ClusterBackend, DirectRedis};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::manager::CacheManager;
use crate::stats::Stats;

/// Appended to the key prefix to name the statistics hash.
pub const STATS_KEY_SUFFIX: &str = "__cachette:stats";

/// The field of the hash that holds the time of the latest batch (Unix milliseconds).
pub const PUBLISHED_AT_FIELD: &str = "__cachette|published_at_ms";

/// The counters published for each function, in the order [`counters_of`] returns them.
pub const COUNTERS: [&str; 12] = [
    "hits",
    "misses",
    "writes",
    "errors",
    "decode_errors",
    "coalesced",
    "early_refreshes",
    "stale_served",
    "fallbacks",
    "loader_errors",
    "loader_timeouts",
    "evicted",
];

/// Default time between two batches.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The name of the statistics hash for a key prefix.
pub fn stats_key(prefix: &str) -> String {
    format!("{prefix}{STATS_KEY_SUFFIX}")
}

/// The values of [`COUNTERS`] for `stats` and an `evicted` count.
pub fn counters_of(stats: &Stats, evicted: u64) -> [u64; COUNTERS.len()] {
    [
        stats.hits,
        stats.misses,
        stats.writes,
        stats.errors,
        stats.decode_errors,
        stats.coalesced,
        stats.early_refreshes,
        stats.stale_served,
        stats.fallbacks,
        stats.loader_errors,
        stats.loader_timeouts,
        evicted,
    ]
}

type Snapshot = Vec<(String, [u64; COUNTERS.len()])>;
type Source = Arc<dyn Fn() -> Snapshot + Send + Sync>;
/// The near-cache counters of one manager (see [`near`]).
type NearSource = Arc<dyn Fn() -> Option<crate::NearStats> + Send + Sync>;

/// Builds a [`StatsPublisher`]: from [`CacheManager::stats_publisher`] or
/// [`Config::stats_publisher`] (same server or cluster and prefix as the cache),
/// [`StatsPublisher::builder`] (an explicit URL) or [`StatsPublisher::builder_for_cluster`].
#[must_use]
pub struct StatsPublisherBuilder {
    /// Where the batches go (a URL parse error is returned by `start`).
    target: Target,
    prefix: String,
    interval: Duration,
    connect_timeout: Duration,
    command_timeout: Duration,
    functions: bool,
    extra: Vec<Source>,
    near: Vec<NearSource>,
}

impl fmt::Debug for StatsPublisherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsPublisherBuilder")
            .field("target", &self.target.describe())
            .field("prefix", &self.prefix)
            .field("interval", &self.interval)
            .field("functions", &self.functions)
            .field("extra_sources", &self.extra.len())
            .finish()
    }
}

impl CacheManager {
    /// A [`StatsPublisherBuilder`](StatsPublisherBuilder) for this manager's
    /// Redis server and prefix, with its timeouts, that also publishes this manager's own
    /// counters (as `manager`). Start it with `.start()`; `cachette stats` then shows the
    /// hit rates of every decorated function in every process that publishes.
    ///
    /// On a Redis Cluster the publisher goes through this manager's cluster backend (its slot
    /// map, redirections and node connections; see the [module docs](self)), outside its
    /// circuit breaker; on a standalone server it opens one connection of its own.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the manager does not run on a Redis server or cluster it was
    /// configured with (memory backend, or a backend of your own: use
    /// [`StatsPublisher::builder`](crate::observe::publish::StatsPublisher::builder)).
    ///
    /// # Examples
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::CacheManager::from_env()?;
    /// let publisher = cache.stats_publisher()?.start()?; // every 5 s, until dropped
    /// # drop(publisher);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats_publisher(&self) -> Result<StatsPublisherBuilder> {
        let (config, direct) = self.direct_redis().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "statistics are published to Redis, and this manager does not run on one",
            )
        })?;
        let builder = match direct {
            DirectRedis::Cluster(cluster) => StatsPublisher::builder_for_cluster(cluster.clone())
                .prefix(config.key_prefix.clone())
                .timeouts(config.connect_timeout, config.command_timeout),
            DirectRedis::Standalone(redis) if config.uses_sentinel() => {
                StatsPublisher::builder_with(Target::Standalone(redis.clone()))
                    .prefix(config.key_prefix.clone())
                    .timeouts(config.connect_timeout, config.command_timeout)
            }
            DirectRedis::Standalone(_) => config.stats_publisher()?,
        };
        Ok(builder.manager("manager", self))
    }
}

impl Config {
    /// A [`StatsPublisherBuilder`] for the Redis server (or Redis Cluster, when
    /// [`cluster_nodes`](Config::cluster_nodes) names seeds) and key prefix of this
    /// configuration, with its timeouts. On a cluster the publisher gets a cluster backend of
    /// its own (its own node connections; [`CacheManager::stats_publisher`] shares the
    /// manager's instead); with Redis Sentinel, a Sentinel connection of its own that follows
    /// the primary.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the configuration names no Redis server (the memory backend
    /// lives in one process: read [`crate::runtime::function_stats`] there instead), or an
    /// invalid cluster seed.
    pub fn stats_publisher(&self) -> Result<StatsPublisherBuilder> {
        if self.uses_sentinel() {
            self.sentinel_options()?;
            return Ok(
                StatsPublisher::builder_with(Target::SentinelConfig(Box::new(self.clone())))
                    .prefix(self.key_prefix.clone())
                    .timeouts(self.connect_timeout, self.command_timeout),
            );
        }
        if self.uses_cluster() {
            return Ok(StatsPublisher::builder_with(Target::ClusterSeeds(
                self.cluster_endpoints()?,
            ))
            .prefix(self.key_prefix.clone())
            .timeouts(self.connect_timeout, self.command_timeout));
        }
        let endpoint = self.endpoint()?.ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "statistics are published to Redis, and no Redis server is configured",
            )
        })?;
        Ok(StatsPublisher::builder_for(endpoint)
            .prefix(self.key_prefix.clone())
            .timeouts(self.connect_timeout, self.command_timeout))
    }
}

impl StatsPublisherBuilder {
    /// The key prefix: the hash is `{prefix}__cachette:stats` (default `cache:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Time between two batches (default 5 s; at least 10 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Connect and command timeouts (default 1 s and 500 ms). A publisher on a cluster
    /// backend given to [`StatsPublisher::builder_for_cluster`] (or the manager's) keeps that
    /// backend's timeouts.
    pub fn timeouts(mut self, connect: Duration, command: Duration) -> Self {
        self.connect_timeout = connect;
        self.command_timeout = command;
        self
    }

    /// Whether to publish the counters of decorated functions (default `true`).
    pub fn functions(mut self, on: bool) -> Self {
        self.functions = on;
        self
    }

    /// Also publishes the counters of `manager` (its direct `get`/`set` calls) as function
    /// `name`, and, when it has a near cache, the near cache's counters and size (fields
    /// `__cachette:near|…`, see [`NEAR_COUNTERS`]; every manager's added up).
    pub fn manager(mut self, name: impl Into<String>, manager: &CacheManager) -> Self {
        if manager.near_stats().is_some() {
            let near = manager.clone();
            self.near.push(Arc::new(move || near.near_stats()));
        }
        let (name, manager) = (name.into(), manager.clone());
        self.source(move || vec![(name.clone(), manager.stats())])
    }

    /// Also publishes `(name, stats)` pairs computed by `source` at each interval (counters
    /// must only grow, or restart from zero).
    pub fn source<F>(mut self, source: F) -> Self
    where
        F: Fn() -> Vec<(String, Stats)> + Send + Sync + 'static,
    {
        self.extra.push(Arc::new(move || {
            source()
                .into_iter()
                .map(|(name, stats)| (name, counters_of(&stats, 0)))
                .collect()
        }));
        self
    }

    /// Starts publishing in a background task; it stops when the returned handle is dropped
    /// or [`StatsPublisher::stop`]ped. Does not connect until the first batch.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid URL or cluster seed, or outside a tokio runtime.
    pub fn start(self) -> Result<StatsPublisher> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "a StatsPublisher must be started inside a tokio runtime",
            )
        })?;
        let sink = self
            .target
            .into_sink(self.connect_timeout, self.command_timeout)?;
        let mut sources = self.extra;
        if self.functions {
            sources.insert(0, Arc::new(function_snapshot));
        }
        let state = Arc::new(Mutex::new(State {
            sink,
            key: stats_key(&self.prefix),
            sources,
            published: HashMap::new(),
            near_sources: self.near,
            near_published: [0; NEAR_COUNTERS.len()],
            failing: false,
        }));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let task_state = state.clone();
        let interval = self.interval;
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate: nothing to publish yet
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        let _ = task_state.lock().await.publish().await;
                    }
                    _ = stop_rx.changed() => break,
                }
            }
            // Last counts on the way out (and this process's near-cache size taken back).
            let _ = task_state.lock().await.publish_as(true).await;
        });
        Ok(StatsPublisher {
            state,
            stop: stop_tx,
            task: Some(task),
            key: stats_key(&self.prefix),
            interval,
        })
    }
}

/// A running statistics publisher (see the [module docs](self)). Dropping it stops it after
/// one last batch.
pub struct StatsPublisher {
    state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    key: String,
    interval: Duration,
}

impl fmt::Debug for StatsPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsPublisher")
            .field("key", &self.key)
            .field("interval", &self.interval)
            .finish()
    }
}

impl StatsPublisher {
    /// A builder publishing to the Redis server at `url` (credentials allowed; never printed).
    ///
    /// The URL is parsed here (see [`RedisEndpoint`](crate::RedisEndpoint)); an invalid one is reported by
    /// [`StatsPublisherBuilder::start`], without its text.
    pub fn builder(url: impl Into<String>) -> StatsPublisherBuilder {
        let endpoint = crate::RedisEndpoint::parse(&url.into()).map_err(Arc::new);
        StatsPublisher::builder_with(Target::Redis(endpoint))
    }

    /// A builder publishing to `endpoint`.
    pub fn builder_for(endpoint: crate::RedisEndpoint) -> StatsPublisherBuilder {
        StatsPublisher::builder_with(Target::Redis(Ok(endpoint)))
    }

    /// A builder publishing to the Redis Cluster of `cluster`, through it: each batch goes to
    /// the primary serving the hash's slot, with the backend's redirections, node connections
    /// and timeouts (see the [module docs](self)).
    pub fn builder_for_cluster(cluster: ClusterBackend) -> StatsPublisherBuilder {
        StatsPublisher::builder_with(Target::Cluster(cluster))
    }

    fn builder_with(target: Target) -> StatsPublisherBuilder {
        StatsPublisherBuilder {
            target,
            prefix: crate::config::DEFAULT_PREFIX.to_owned(),
            interval: DEFAULT_INTERVAL,
            connect_timeout: Duration::from_millis(1000),
            command_timeout: Duration::from_millis(500),
            functions: true,
            extra: Vec::new(),
            near: Vec::new(),
        }
    }

    /// The hash the counters go to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Publishes the counts since the last batch now; returns how many fields changed.
    ///
    /// # Errors
    /// [`ErrorKind::Connection`] or [`ErrorKind::Timeout`] when Redis does not take the batch,
    /// [`ErrorKind::Backend`] when it refuses it (the hash holds another type); the batch is
    /// kept and sent with the next one.
    pub async fn publish_now(&self) -> Result<usize> {
        self.state.lock().await.publish().await
    }

    /// Stops the background task after one last batch, and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StatsPublisher {
    fn drop(&mut self) {
        // The task sends its last batch and ends by itself.
        let _ = self.stop.send(true);
    }
}

struct State {
    sink: Sink,
    key: String,
    sources: Vec<Source>,
    /// What this process has published so far, per function.
    published: HashMap<String, [u64; COUNTERS.len()]>,
    near_sources: Vec<NearSource>,
    /// What this process has published so far of its near caches (summed).
    near_published: near::NearValues,
    /// Whether the last batch failed (to log a failure once, not every interval).
    failing: bool,
}

fn function_snapshot() -> Snapshot {
    crate::runtime::function_stats()
        .into_iter()
        .map(|f| (f.name, counters_of(&f.stats, f.evicted)))
        .collect()
}

impl State {
    /// The non-zero differences between the current counters and what was published, as
    /// `(field, delta)`, and the new totals to remember once they are sent.
    fn deltas(&self) -> (Vec<(String, i64)>, Snapshot) {
        let mut current: BTreeMap<String, [u64; COUNTERS.len()]> = BTreeMap::new();
        for source in &self.sources {
            for (name, counters) in source() {
                // Two sites with one name (a function with #[cached] and #[cache_evict]) add up.
                let total = current.entry(name).or_insert([0; COUNTERS.len()]);
                for (t, c) in total.iter_mut().zip(counters) {
                    *t += c;
                }
            }
        }
        let mut fields = Vec::new();
        for (name, now) in &current {
            let before = self.published.get(name);
            for (i, counter) in COUNTERS.iter().enumerate() {
                let was = before.map_or(0, |b| b[i]);
                // A counter below what was published was reset: all of it is new.
                let delta = if now[i] >= was { now[i] - was } else { now[i] };
                if delta > 0 {
                    fields.push((
                        format!("{name}|{counter}"),
                        i64::try_from(delta).unwrap_or(i64::MAX),
                    ));
                }
            }
        }
        (fields, current.into_iter().collect())
    }

    async fn publish(&mut self) -> Result<usize> {
        self.publish_as(false).await
    }

    /// A batch; `last` when the publisher stops (the near-cache sizes are taken back).
    async fn publish_as(&mut self, last: bool) -> Result<usize> {
        let (mut fields, totals) = self.deltas();
        let near_now = (!self.near_sources.is_empty()).then(|| {
            let now = near::sum(
                self.near_sources
                    .iter()
                    .filter_map(|source| source())
                    .map(|s| near::values(&s)),
            );
            if last {
                near::stopping(now)
            } else {
                now
            }
        });
        if let Some(now) = &near_now {
            fields.extend(near::deltas(now, &self.near_published));
        }
        if fields.is_empty() {
            return Ok(0);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match self.sink.send(&self.key, &fields, now_ms).await {
            Ok(()) => {
                self.published.extend(totals);
                if let Some(now) = near_now {
                    self.near_published = now;
                }
                if self.failing {
                    tracing::info!(key = %self.key, "cachette statistics published again");
                    self.failing = false;
                }
                Ok(fields.len())
            }
            Err(e) => {
                self.sink.reset();
                if !self.failing {
                    tracing::warn!(key = %self.key, error = %e, "cannot publish cachette statistics; will retry");
                    self.failing = true;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(source: Source) -> State {
        let target = Target::Redis(Ok(crate::RedisEndpoint::tcp("127.0.0.1", 1)));
        State {
            sink: target
                .into_sink(Duration::from_secs(1), Duration::from_secs(1))
                .unwrap(),
            key: stats_key("t:"),
            sources: vec![source],
            published: HashMap::new(),
            near_sources: Vec::new(),
            near_published: [0; NEAR_COUNTERS.len()],
            failing: false,
        }
    }

    #[test]
    fn deltas_cover_growth_resets_and_merge_duplicate_names() {
        let counts = Arc::new(parking_lot::Mutex::new(vec![5u64, 2]));
        let c = counts.clone();
        let mut s = state(Arc::new(move || {
            let c = c.lock();
            let mut a = [0; COUNTERS.len()];
            a[0] = c[0];
            let mut b = [0; COUNTERS.len()];
            b[0] = c[1];
            b[1] = 1;
            vec![("f".into(), a), ("f".into(), b)]
        }));
        let (fields, totals) = s.deltas();
        assert_eq!(fields, [("f|hits".into(), 7), ("f|misses".into(), 1)]);
        s.published.extend(totals);
        assert!(s.deltas().0.is_empty());
        *counts.lock() = vec![10, 2];
        assert_eq!(s.deltas().0, [("f|hits".to_owned(), 5)]);
        // Reset below the published total: everything counts as new.
        *counts.lock() = vec![1, 0];
        assert_eq!(s.deltas().0, [("f|hits".to_owned(), 1)]);
    }
}
