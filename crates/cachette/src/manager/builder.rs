//! [`CacheManagerBuilder`]: from a [`Config`] (and the builder's own settings) to a running
//! [`CacheManager`]: which backend, behind which wrappers (circuit breaker, named layers such
//! as metrics), with which fast path.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::CacheManager;
use crate::backend::breaker::{BreakerPolicy, CircuitBreaker};
use crate::backend::near::{NearBackend, Upstream};
use crate::backend::{
    Backend, ClusterBackend, ClusterOptions, DirectRedis, MemoryBackend, MemoryConfig, NullBackend,
    RedisBackend,
};
use crate::codec::Codec;
use crate::config::{Config, RedisEndpoint, TlsOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::load::fills::Fills;
use crate::load::lease::Leases;
use crate::load::state::{FastPath, State};
use crate::stats::Counters;

/// How many connections cachette opens at most: each one is multiplexed, so a couple of them
/// carry any number of concurrent calls.
const MULTIPLEXED_CONNECTIONS: usize = 1;

/// Builds a [`CacheManager`]; obtained from [`CacheManager::builder`] (built-in defaults) or
/// [`Config::builder`] (a loaded configuration). Its setters win over every other source.
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheManagerBuilder {
    config: Config,
    /// An invalid [`CacheManagerBuilder::url`], reported by `build` (without the URL).
    url_error: Option<Arc<Error>>,
    backend: Option<Arc<dyn Backend>>,
    memory: Option<MemoryConfig>,
    layers: Layers,
}

/// Wraps the backend a manager is built on (see [`CacheManagerBuilder::wrap_backend`]): given
/// the backend and the manager's configuration, returns the backend the manager will use.
pub type BackendLayer = Arc<dyn Fn(Arc<dyn Backend>, &Config) -> Arc<dyn Backend> + Send + Sync>;

/// The named backend layers of a builder, applied in order; `Debug` prints their names.
#[derive(Clone, Default)]
struct Layers(Vec<(&'static str, BackendLayer)>);

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Config {
    /// A [`CacheManagerBuilder`] starting from this configuration.
    pub fn builder(self) -> CacheManagerBuilder {
        CacheManagerBuilder {
            config: self,
            url_error: None,
            backend: None,
            memory: None,
            layers: Layers::default(),
        }
    }
}

impl CacheManagerBuilder {
    /// Connects to Redis at `url` (`redis://[user[:password]@]host:port/db`, `rediss://`,
    /// `redis+unix://`; see [`RedisEndpoint`](crate::RedisEndpoint)). The URL is parsed here into its parts, which
    /// replace every part set before (host, port, db, credentials); setters called after it
    /// override single parts. An invalid URL makes [`build`](Self::build) fail with an error
    /// naming the wrong part, never showing the URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        match RedisEndpoint::parse(&url.into()) {
            Ok(endpoint) => {
                self.config.apply_endpoint(endpoint);
                self.url_error = None;
            }
            Err(e) => self.url_error = Some(Arc::new(e)),
        }
        self
    }

    /// Runs on the Redis Cluster reached through these seed nodes (`"host:port"` each, or
    /// comma-separated lists); replaces the configured ones. The user name, password and TLS
    /// setting of the configuration (or of a [`url`](Self::url)) apply to every node. An
    /// empty list goes back to the standalone/memory choice.
    pub fn cluster_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.cluster_nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Runs on the primary that these Redis Sentinel instances (`"host:port"` each, or
    /// comma-separated lists) name for the master `master`, following its failovers; replaces
    /// the configured ones. The database, user name, password and TLS setting of the
    /// configuration (or of a [`url`](Self::url), whose host and port are then not used)
    /// apply to the primary. An empty list with an empty name goes back to the
    /// standalone/memory choice; one without the other makes [`build`](Self::build) fail.
    pub fn sentinels<I, S>(mut self, sentinels: I, master: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.sentinels = sentinels.into_iter().map(Into::into).collect();
        let master = master.into();
        self.config.sentinel_master = (!master.is_empty()).then_some(master);
        self
    }

    /// The ACL user name and password the sentinels require (`requirepass`/`user` in
    /// sentinel.conf); both never printed.
    pub fn sentinel_auth(mut self, username: Option<String>, password: Option<String>) -> Self {
        self.config.sentinel_username = username;
        self.config.sentinel_password = password.map(crate::config::Secret::new);
        self
    }

    /// Connects to the Redis server `endpoint` (as [`url`](Self::url), already parsed).
    pub fn endpoint(mut self, endpoint: RedisEndpoint) -> Self {
        self.config.apply_endpoint(endpoint);
        self.url_error = None;
        self
    }

    /// Trusts the CA certificate(s) in the PEM file `path` for a `rediss://` server, instead of
    /// the bundled public roots ([`TlsOptions::ca_file`](crate::TlsOptions::ca_file)).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls_options.ca_file = Some(path.into());
        self
    }

    /// Presents the client certificate in the PEM file `cert` with its key in `key` (mutual
    /// TLS; [`TlsOptions::cert_file`](crate::TlsOptions::cert_file)).
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.tls_options.cert_file = Some(cert.into());
        self.config.tls_options.key_file = Some(key.into());
        self
    }

    /// **Development only**: `true` accepts any server certificate (no CA, expiry or host name
    /// check; logged at `warn` when the manager is built). See
    /// [`TlsOptions::insecure`](crate::TlsOptions::insecure).
    pub fn tls_insecure_skip_verify(mut self, insecure: bool) -> Self {
        self.config.tls_options.insecure = insecure;
        self
    }

    /// Replaces every TLS setting at once.
    pub fn tls_options(mut self, options: TlsOptions) -> Self {
        self.config.tls_options = options;
        self
    }

    /// Uses the embedded memory backend even if a Redis server is configured.
    pub fn memory(mut self) -> Self {
        self.config.url = None;
        self.config.host = None;
        self.config.port = None;
        self.config.socket = None;
        self.config.sentinels.clear();
        self.config.sentinel_master = None;
        self.url_error = None;
        self
    }

    /// Uses the memory backend with explicit bounds.
    pub fn memory_config(mut self, memory: MemoryConfig) -> Self {
        self.memory = Some(memory);
        self.memory()
    }

    /// Uses a backend of your own (or a shared one).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The prefix of every key (default `cache:`).
    ///
    /// `""` is allowed here, and only here (the file and the environment cannot set it): the
    /// cache then shares the key space with every other client of the database, and
    /// [`CacheManager::clear`] and a [`CacheManager::delete_pattern`] that could match every
    /// key refuse; [`CacheManager::delete_pattern_forced`] is the explicit way around that.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// The TTL of writes that use [`Ttl::Default`](crate::Ttl::Default); `None` = no expiry. Checked by `build()`
    /// against the range of [`crate::ttl::check`] (positive, at most 100 years; rounded up to
    /// whole milliseconds).
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.config.default_ttl = ttl;
        self
    }

    /// The value encoding.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Time allowed for one operation (default 500 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// Time allowed to connect (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The largest encoded value a write may store ([`Config::max_value_bytes`], default
    /// 32 MiB); a larger one fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) before anything is sent.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.config.max_value_bytes = bytes;
        self
    }

    /// Puts a near cache in front of Redis (a standalone server, the primary named by
    /// Sentinel, or a Redis Cluster, listening to every primary): reads are answered in
    /// process while the servers vouch that nothing changed (see
    /// [`NearCacheOptions`](crate::NearCacheOptions) for the guarantee and the bounds). `None`
    /// turns it off. Ignored on the memory backend (which is in process already).
    pub fn near_cache(mut self, options: Option<crate::NearCacheOptions>) -> Self {
        self.config.near_cache = options;
        self
    }

    /// Opens the circuit breaker around Redis after `failures` consecutive connection errors
    /// or timeouts, for `open_for` before a probe; `failures = 0` turns it off (default 5
    /// failures, 1 s).
    pub fn circuit_breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.config.breaker_failures = failures;
        self.config.breaker_open = open_for;
        self
    }

    /// Upper bound on connections.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Wraps the backend in `layer` when the manager is built: the way observability and other
    /// cross-cutting concerns attach to a manager from outside (the `metrics` feature's
    /// `cachette::metrics::MeteredBackend` is one). Layers apply in the order
    /// they were added, outermost last, around the backend the configuration selects (after the
    /// circuit breaker); a layer added again under the same `name` replaces the earlier one.
    /// A wrapped manager reads through the layer, without the built-in backends' unboxed fast
    /// path. A disabled manager (`enabled: false`) is never wrapped.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use cachette::{Backend, CacheManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = CacheManager::builder()
    ///     .wrap_backend("log", |backend: Arc<dyn Backend>, _config: &cachette::Config| {
    ///         println!("building on {}", backend.name());
    ///         backend
    ///     })
    ///     .build()?;
    /// assert_eq!(cache.backend_name(), "memory");
    /// # Ok(())
    /// # }
    /// ```
    pub fn wrap_backend(
        mut self,
        name: &'static str,
        layer: impl Fn(Arc<dyn Backend>, &Config) -> Arc<dyn Backend> + Send + Sync + 'static,
    ) -> Self {
        self.layers.0.retain(|(n, _)| *n != name);
        self.layers.0.push((name, Arc::new(layer)));
        self
    }

    /// Removes the layer added under `name`, if any.
    pub fn unwrap_backend(mut self, name: &str) -> Self {
        self.layers.0.retain(|(n, _)| *n != name);
        self
    }

    /// `false` builds a disabled manager (reads miss, writes do nothing).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Builds the manager. Does not connect: Redis is reached on first use and reconnected
    /// whenever it comes back, so a service starts even while its cache is down (check with
    /// [`CacheManager::ping`] if you want to fail fast).
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an invalid configuration or URL, or outside a tokio runtime.
    pub fn build(self) -> Result<CacheManager> {
        if let Some(e) = self.url_error {
            return Err(e.without_source());
        }
        let mut config = self.config;
        config.decompose_url()?;
        config.validate()?;
        let endpoint = config.endpoint()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "CacheManager must be built inside a tokio runtime",
            ));
        }
        let mut leases = Leases::Local;
        let mut breaker = None;
        let mut redis_config = None;
        let mut direct = None;
        let mut near = None;
        let shared_backend = config.enabled
            && (self.backend.is_some()
                || config.uses_redis()
                || config.uses_cluster()
                || config.uses_sentinel());
        let (backend, fast, description): (Arc<dyn Backend>, FastPath, String) = if !config.enabled
        {
            (Arc::new(NullBackend), FastPath::None, "disabled".to_owned())
        } else if let Some(backend) = self.backend {
            let name = backend.name().to_owned();
            (backend, FastPath::None, name)
        } else if config.uses_cluster() {
            // Redis Cluster: one backend routing to every node, behind one breaker for the
            // whole cluster (see `backend::cluster`).
            let seeds = config.cluster_endpoints()?;
            let cluster = ClusterBackend::connect_lazy(&ClusterOptions {
                seeds: seeds.clone(),
                connections_per_node: config.max_connections.min(MULTIPLEXED_CONNECTIONS),
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
            })?;
            let description = cluster.describe().to_owned();
            redis_config = Some(config.clone());
            direct = Some(DirectRedis::Cluster(cluster.clone()));
            // Lease wake-ups: classic pub/sub, which a cluster forwards to every node, through
            // one seed at a time; while none answers, waiters fall back to their re-checks.
            leases = Leases::redis(
                &seeds,
                &config.key_prefix,
                config.connect_timeout,
                config.command_timeout,
            );
            let backend: Arc<dyn Backend> = if config.breaker_failures > 0 {
                let b = Arc::new(CircuitBreaker::new(
                    Arc::new(cluster.clone()),
                    BreakerPolicy::new(config.breaker_failures, config.breaker_open),
                ));
                breaker = Some(b.clone());
                b
            } else {
                Arc::new(cluster.clone())
            };
            let front = near_front(
                &config,
                backend,
                FastPath::None,
                description,
                &breaker,
                || Upstream::Cluster(cluster),
            )?;
            near = front.1;
            front.0
        } else if let Some((redis, endpoint)) = standalone(&config, endpoint)? {
            redis_config = Some(config.clone());
            direct = Some(DirectRedis::Standalone(redis.clone()));
            // Sentinel: the primary moves, so lease wake-ups stay in this process (waiters in
            // other processes fall back to their periodic re-checks).
            if !config.uses_sentinel() {
                leases = Leases::redis(
                    std::slice::from_ref(&endpoint),
                    &config.key_prefix,
                    config.connect_timeout,
                    config.command_timeout,
                );
            }
            let description = if config.uses_sentinel() {
                config.describe_sentinel()
            } else {
                endpoint.to_string()
            };
            let (backend, fast) = if config.breaker_failures > 0 {
                let b = Arc::new(CircuitBreaker::new(
                    Arc::new(redis.clone()),
                    BreakerPolicy::new(config.breaker_failures, config.breaker_open),
                ));
                breaker = Some(b.clone());
                (
                    b.clone() as Arc<dyn Backend>,
                    FastPath::Guarded(b, redis.clone()),
                )
            } else {
                (
                    Arc::new(redis.clone()) as Arc<dyn Backend>,
                    FastPath::Redis(redis.clone()),
                )
            };
            let front = near_front(&config, backend, fast, description, &breaker, || {
                Upstream::Redis {
                    backend: redis,
                    endpoint: endpoint.clone(),
                }
            })?;
            near = front.1;
            front.0
        } else {
            let memory = self.memory.unwrap_or_else(|| MemoryConfig {
                max_entries: config.memory_max_entries,
                max_bytes: config.memory_max_bytes,
                ..MemoryConfig::default()
            });
            let memory = MemoryBackend::new(memory);
            (
                Arc::new(memory.clone()),
                FastPath::Memory(memory),
                "memory".to_owned(),
            )
        };
        let (backend, fast) = if self.layers.0.is_empty() || !config.enabled {
            (backend, fast)
        } else {
            let wrapped = self
                .layers
                .0
                .iter()
                .fold(backend, |backend, (_, layer)| layer(backend, &config));
            (wrapped, FastPath::None)
        };
        Ok(CacheManager {
            inner: Arc::new(State {
                backend,
                fast,
                prefix_pattern: crate::glob::escape(&config.key_prefix),
                prefix: config.key_prefix,
                default_ttl: config.default_ttl.map(crate::ttl::round_up_to_millis),
                codec: config.codec,
                enabled: config.enabled,
                counters: Counters::new(),
                description,
                flights: Arc::default(),
                fills: Fills::default(),
                shared_backend,
                leases,
                breaker,
                redis_config,
                direct,
                max_value_bytes: config.max_value_bytes,
                near,
            }),
        })
    }
}

/// A backend, its fast path and description, and its near cache: `backend` (Redis or a
/// cluster, behind `breaker` if any) as it is, or with a near cache in front of `upstream`
/// when `config` asks for one.
fn near_front(
    config: &Config,
    backend: Arc<dyn Backend>,
    fast: FastPath,
    description: String,
    breaker: &Option<Arc<CircuitBreaker>>,
    upstream: impl FnOnce() -> Upstream,
) -> Result<(Front, Option<Arc<NearBackend>>)> {
    let Some(options) = config.near_cache else {
        return Ok(((backend, fast, description), None));
    };
    let near = Arc::new(NearBackend::new(
        backend,
        upstream(),
        breaker.clone(),
        config.key_prefix.clone(),
        options,
        (config.connect_timeout, config.command_timeout),
    )?);
    Ok((
        (
            near.clone(),
            FastPath::Near(near.clone()),
            format!("{description} (near cache)"),
        ),
        Some(near),
    ))
}

/// The backend a manager calls, its unboxed fast path, and its description.
type Front = (Arc<dyn Backend>, FastPath, String);

/// The standalone backend of `config`: on the server `endpoint` names, or on the primary
/// that the sentinels name (with the endpoint's database, credentials and TLS settings);
/// `None` without either.
fn standalone(
    config: &Config,
    endpoint: Option<RedisEndpoint>,
) -> Result<Option<(RedisBackend, RedisEndpoint)>> {
    let connections = config.max_connections.min(MULTIPLEXED_CONNECTIONS);
    if config.uses_sentinel() {
        let (template, options) = config.sentinel_options()?;
        let redis = RedisBackend::connect_sentinel(
            &template,
            options,
            config.describe_sentinel(),
            connections,
            config.connect_timeout,
            config.command_timeout,
        )?;
        return Ok(Some((redis, template)));
    }
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let redis = RedisBackend::connect_endpoint(
        &endpoint,
        connections,
        config.connect_timeout,
        config.command_timeout,
    )?;
    Ok(Some((redis, endpoint)))
}
