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
//! was last deleted (`cachette stats --reset`); nothing expires.
//!
//! Delivery is at least once: a batch whose reply times out is sent again with the next one,
//! so a timeout can count a batch twice; a batch that fails is kept and added to the next.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

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

/// Builds a [`StatsPublisher`]: from [`Config::stats_publisher`] (same server and prefix as
/// the cache) or [`StatsPublisher::builder`] (an explicit URL).
#[must_use]
pub struct StatsPublisherBuilder {
    /// The server, parsed where the URL entered; a parse error is returned by `start`.
    endpoint: std::result::Result<crate::RedisEndpoint, Arc<Error>>,
    prefix: String,
    interval: Duration,
    connect_timeout: Duration,
    command_timeout: Duration,
    functions: bool,
    extra: Vec<Source>,
}

impl fmt::Debug for StatsPublisherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsPublisherBuilder")
            .field(
                "url",
                &match &self.endpoint {
                    Ok(endpoint) => endpoint.to_string(),
                    Err(_) => "<invalid URL>".to_owned(),
                },
            )
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
    /// # Errors
    /// [`ErrorKind::Config`] when the manager does not run on a Redis server it was configured
    /// with (memory backend, or a backend of your own: use
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
        let config = self.redis_config().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "statistics are published to Redis, and this manager does not run on one",
            )
        })?;
        Ok(config.stats_publisher()?.manager("manager", self))
    }
}

impl Config {
    /// A [`StatsPublisherBuilder`] for the Redis server and key prefix of this configuration,
    /// with its timeouts.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the configuration names no Redis server (the memory backend
    /// lives in one process: read [`crate::runtime::function_stats`] there instead).
    pub fn stats_publisher(&self) -> Result<StatsPublisherBuilder> {
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

    /// Connect and command timeouts (default 1 s and 500 ms).
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
    /// `name`.
    pub fn manager(self, name: impl Into<String>, manager: &CacheManager) -> Self {
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
    /// [`ErrorKind::Config`] for an invalid URL, or outside a tokio runtime.
    pub fn start(self) -> Result<StatsPublisher> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "a StatsPublisher must be started inside a tokio runtime",
            )
        })?;
        let client = self.endpoint.map_err(|e| e.without_source())?.client()?;
        let mut sources = self.extra;
        if self.functions {
            sources.insert(0, Arc::new(function_snapshot));
        }
        let state = Arc::new(Mutex::new(State {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.command_timeout)),
            connection: None,
            key: stats_key(&self.prefix),
            sources,
            published: HashMap::new(),
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
            // Last counts on the way out.
            let _ = task_state.lock().await.publish().await;
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
        StatsPublisher::builder_with(endpoint)
    }

    /// A builder publishing to `endpoint`.
    pub fn builder_for(endpoint: crate::RedisEndpoint) -> StatsPublisherBuilder {
        StatsPublisher::builder_with(Ok(endpoint))
    }

    fn builder_with(
        endpoint: std::result::Result<crate::RedisEndpoint, Arc<Error>>,
    ) -> StatsPublisherBuilder {
        StatsPublisherBuilder {
            endpoint,
            prefix: crate::config::DEFAULT_PREFIX.to_owned(),
            interval: DEFAULT_INTERVAL,
            connect_timeout: Duration::from_millis(1000),
            command_timeout: Duration::from_millis(500),
            functions: true,
            extra: Vec::new(),
        }
    }

    /// The hash the counters go to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Publishes the counts since the last batch now; returns how many fields changed.
    ///
    /// # Errors
    /// [`ErrorKind::Connection`] or [`ErrorKind::Timeout`] when Redis does not take the batch
    /// (it is kept and sent with the next one).
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
    client: redis::Client,
    config: AsyncConnectionConfig,
    connection: Option<MultiplexedConnection>,
    key: String,
    sources: Vec<Source>,
    /// What this process has published so far, per function.
    published: HashMap<String, [u64; COUNTERS.len()]>,
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
    fn deltas(&self) -> (Vec<(String, u64)>, Snapshot) {
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
                    fields.push((format!("{name}|{counter}"), delta));
                }
            }
        }
        (fields, current.into_iter().collect())
    }

    async fn publish(&mut self) -> Result<usize> {
        let (fields, totals) = self.deltas();
        if fields.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, delta) in &fields {
            pipe.cmd("HINCRBY")
                .arg(&self.key)
                .arg(field)
                .arg(*delta)
                .ignore();
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        pipe.cmd("HSET")
            .arg(&self.key)
            .arg(PUBLISHED_AT_FIELD)
            .arg(now_ms)
            .ignore();
        match self.send(&pipe).await {
            Ok(()) => {
                self.published.extend(totals);
                if self.failing {
                    tracing::info!(key = %self.key, "cachette statistics published again");
                    self.failing = false;
                }
                Ok(fields.len())
            }
            Err(e) => {
                self.connection = None;
                if !self.failing {
                    tracing::warn!(key = %self.key, error = %e, "cannot publish cachette statistics; will retry");
                    self.failing = true;
                }
                Err(e)
            }
        }
    }

    async fn send(&mut self, pipe: &redis::Pipeline) -> Result<()> {
        let mut conn = match &self.connection {
            Some(conn) => conn.clone(),
            None => {
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
                    .map_err(|e| redis_error("connect", &e))?;
                self.connection = Some(conn.clone());
                conn
            }
        };
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| redis_error("HINCRBY pipeline", &e))
    }
}

fn redis_error(what: &str, e: &redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ErrorKind::Connection
    } else {
        ErrorKind::Backend
    };
    let detail = e.detail().map_or_else(String::new, |d| format!(": {d}"));
    Error::new(
        kind,
        format!("statistics publisher: {what}: {:?}{detail}", e.kind()),
    )
}

/// One function's totals as read back from the hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedFunction {
    /// The function (`module::function`), or a name given to [`StatsPublisherBuilder::manager`].
    pub name: String,
    /// Counter name to total, for every counter present (see [`COUNTERS`]; counters of newer
    /// versions are kept too).
    pub counters: BTreeMap<String, u64>,
}

impl PublishedFunction {
    /// A counter's total (`0` when absent).
    pub fn get(&self, counter: &str) -> u64 {
        self.counters.get(counter).copied().unwrap_or(0)
    }

    /// `hits / (hits + misses)`, `None` before any read.
    pub fn hit_rate(&self) -> Option<f64> {
        let (hits, misses) = (self.get("hits"), self.get("misses"));
        (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
    }
}

/// The content of the statistics hash, as `HGETALL` returns it, by function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Per function, sorted by name.
    pub functions: Vec<PublishedFunction>,
    /// Unix time in milliseconds of the latest batch from any process.
    pub published_at_ms: Option<u64>,
}

impl Published {
    /// Groups `HGETALL` fields (`function|counter` to a number); ignores malformed fields.
    pub fn parse<I, K, V>(fields: I) -> Published
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut published = Published::default();
        let mut by_name: BTreeMap<String, PublishedFunction> = BTreeMap::new();
        for (field, value) in fields {
            let (field, value) = (field.as_ref(), value.as_ref());
            if field == PUBLISHED_AT_FIELD {
                published.published_at_ms = value.parse().ok();
                continue;
            }
            let (Some((name, counter)), Ok(n)) = (field.rsplit_once('|'), value.parse::<u64>())
            else {
                continue;
            };
            by_name
                .entry(name.to_owned())
                .or_insert_with(|| PublishedFunction {
                    name: name.to_owned(),
                    counters: BTreeMap::new(),
                })
                .counters
                .insert(counter.to_owned(), n);
        }
        published.functions = by_name.into_values().collect();
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(source: Source) -> State {
        State {
            client: redis::Client::open("redis://127.0.0.1:1/").unwrap(),
            config: AsyncConnectionConfig::new(),
            connection: None,
            key: stats_key("t:"),
            sources: vec![source],
            published: HashMap::new(),
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

    #[test]
    fn parse_groups_fields_by_function() {
        let p = Published::parse([
            ("a::f|hits", "3"),
            ("a::f|misses", "1"),
            ("b|errors", "2"),
            (PUBLISHED_AT_FIELD, "1700000000000"),
            ("garbage", "1"),
            ("c|hits", "x"),
        ]);
        assert_eq!(p.published_at_ms, Some(1_700_000_000_000));
        assert_eq!(p.functions.len(), 2);
        assert_eq!(p.functions[0].name, "a::f");
        assert_eq!(p.functions[0].hit_rate(), Some(0.75));
        assert_eq!(p.functions[1].get("errors"), 2);
        assert_eq!(p.functions[1].hit_rate(), None);
    }
}
