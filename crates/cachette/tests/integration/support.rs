//! Fixtures: a backend under test and managers on it.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachette::backend::{Backend, MemoryBackend, MemoryConfig};
use cachette::{CacheManager, Config};
use cachette_test_support::{RedisCluster, RedisSentinel, RedisServer};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A unique prefix per call, so tests sharing a server never see each other's keys.
pub(crate) fn unique_prefix(tag: &str) -> String {
    format!(
        "{}{}:{tag}:",
        process_prefix(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One backend under test. Managers made from one fixture share its storage.
pub(crate) enum Fixture {
    Memory(Arc<MemoryBackend>),
    Redis(Box<RedisServer>),
    /// Redis through the `metrics` feature's metered backend.
    #[cfg(feature = "metrics")]
    Metered(Box<RedisServer>),
    /// Redis over TLS (`rediss://`, the server's own CA trusted).
    #[cfg(feature = "tls")]
    Tls(Box<RedisServer>),
    /// A 3-primary Redis Cluster of its own serving TLS only (seeds on the TLS ports, the
    /// cluster's CA trusted).
    #[cfg(feature = "tls")]
    TlsCluster(Box<RedisCluster>),
    /// The 3-primary Redis Cluster shared by every test of this binary (isolated by prefix).
    Cluster(&'static RedisCluster),
    /// Redis as the ACL user `cachette`, restricted to exactly `cachette::acl::rules` for
    /// caching and the lease, on the key prefix every test prefix of this process starts with.
    Acl(Box<RedisServer>),
    /// Redis with a near cache in every manager (`CacheManagerBuilder::near_cache`).
    Near(Box<RedisServer>),
    /// The primary of a Redis Sentinel deployment (a primary, a replica, three sentinels),
    /// reached through the sentinels.
    Sentinel(Box<RedisSentinel>),
    /// The shared Redis Cluster with a near cache in every manager (one invalidation channel
    /// per primary).
    NearCluster(&'static RedisCluster),
    /// A Sentinel deployment of its own with a near cache in every manager (its channel
    /// follows the primary).
    NearSentinel(Box<RedisSentinel>),
}

/// The prefix every [`unique_prefix`] of this process starts with.
pub(crate) fn process_prefix() -> String {
    format!("t{}:", std::process::id())
}

/// The password of the `cachette` user of [`Fixture::acl`].
pub(crate) const ACL_PASSWORD: &str = "acl-pw";

/// The 3-primary cluster shared by the tests of this process: the one `scripts/test` started
/// for the whole run (`CACHETTE_TEST_CLUSTER`), else one started on first use (killed when
/// the test process exits, by each node's watchdog). Tests on it never kill, pause or
/// reconfigure its nodes.
pub(crate) fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: std::sync::OnceLock<RedisCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::shared)
}

/// A manager on `cluster` (its seeds) with `prefix` and a 2 s command timeout.
pub(crate) fn cluster_manager(cluster: &RedisCluster, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .cluster_nodes(cluster.seeds())
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("builds without connecting")
}

/// A started stats publisher of `cache` that publishes only when asked (`publish_now`: its
/// interval is an hour), without per-function counters.
pub(crate) fn manual_publisher(cache: &CacheManager) -> cachette::publish::StatsPublisher {
    cache
        .stats_publisher()
        .expect("this manager can publish")
        .functions(false)
        .interval(Duration::from_secs(3600))
        .start()
        .expect("the publisher starts")
}

impl Fixture {
    pub(crate) fn memory() -> Fixture {
        Fixture::Memory(Arc::new(MemoryBackend::new(MemoryConfig {
            max_entries: None,
            max_bytes: None,
            ..MemoryConfig::default()
        })))
    }

    pub(crate) fn cluster() -> Fixture {
        Fixture::Cluster(shared_cluster())
    }

    pub(crate) fn redis() -> Fixture {
        Fixture::Redis(Box::new(RedisServer::new()))
    }

    pub(crate) fn near() -> Fixture {
        Fixture::Near(Box::new(RedisServer::new()))
    }

    pub(crate) fn near_cluster() -> Fixture {
        Fixture::NearCluster(shared_cluster())
    }

    pub(crate) fn near_sentinel() -> Fixture {
        Fixture::NearSentinel(Box::new(RedisSentinel::new()))
    }

    /// A server whose user `cachette` has exactly the rules cachette documents for plain
    /// caching and the lease (the default user keeps every right, for `redis-cli`).
    pub(crate) fn acl() -> Fixture {
        use cachette::acl::{rules, Feature};
        let mut user = vec!["on".to_owned(), format!(">{ACL_PASSWORD}")];
        user.extend(rules(&process_prefix(), &[Feature::Lease]));
        let server = RedisServer::builder()
            .acl_user("cachette", user)
            .spawn()
            .expect("redis-server with an ACL user");
        Fixture::Acl(Box::new(server))
    }

    /// A Redis Sentinel deployment of its own; managers find the primary through the
    /// sentinels.
    pub(crate) fn sentinel() -> Fixture {
        Fixture::Sentinel(Box::new(RedisSentinel::new()))
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls() -> Fixture {
        Fixture::Tls(Box::new(
            RedisServer::builder()
                .tls()
                .spawn()
                .expect("redis-server with TLS"),
        ))
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_cluster() -> Fixture {
        Fixture::TlsCluster(Box::new(
            RedisCluster::spawn_tls(3, 0).expect("a TLS Redis Cluster"),
        ))
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn metered() -> Fixture {
        Fixture::Metered(Box::new(RedisServer::new()))
    }

    pub(crate) fn is_redis(&self) -> bool {
        match self {
            Fixture::Redis(_)
            | Fixture::Cluster(_)
            | Fixture::Acl(_)
            | Fixture::Near(_)
            | Fixture::NearCluster(_)
            | Fixture::NearSentinel(_)
            | Fixture::Sentinel(_) => true,
            #[cfg(feature = "metrics")]
            Fixture::Metered(_) => true,
            #[cfg(feature = "tls")]
            Fixture::Tls(_) | Fixture::TlsCluster(_) => true,
            Fixture::Memory(_) => false,
        }
    }

    /// A manager with `prefix` on this fixture's storage; each Redis manager has its own
    /// connections.
    pub(crate) fn manager_with(
        &self,
        prefix: &str,
        config: impl FnOnce(Config) -> Config,
    ) -> CacheManager {
        let mut base = Config::default();
        base.key_prefix = prefix.to_owned();
        base.command_timeout = Duration::from_secs(5);
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut base = config(base);
        #[cfg(feature = "tls")]
        if let Fixture::TlsCluster(_) = self {
            // Every node, like the seeds, over TLS.
            base.tls = true;
        }
        let builder = base.builder();
        let builder = match self {
            Fixture::Memory(b) => builder.backend(b.clone() as Arc<dyn Backend>),
            Fixture::Redis(server) => builder.url(server.url()),
            Fixture::Cluster(cluster) => builder.cluster_nodes(cluster.seeds()),
            Fixture::Acl(server) => builder.url(server.url_for_user("cachette", ACL_PASSWORD)),
            Fixture::Near(server) => builder
                .url(server.url())
                .near_cache(Some(cachette::NearCacheOptions::default())),
            Fixture::Sentinel(d) => builder.sentinels(d.sentinel_addrs(), d.master_name()),
            Fixture::NearCluster(cluster) => builder
                .cluster_nodes(cluster.seeds())
                .near_cache(Some(cachette::NearCacheOptions::default())),
            Fixture::NearSentinel(d) => builder
                .sentinels(d.sentinel_addrs(), d.master_name())
                .near_cache(Some(cachette::NearCacheOptions::default())),
            #[cfg(feature = "metrics")]
            Fixture::Metered(server) => builder.url(server.url()).metrics(true),
            #[cfg(feature = "tls")]
            Fixture::Tls(server) => {
                let files = server.tls_files().expect("a TLS server");
                builder.url(server.url()).tls_ca_file(&files.ca_file)
            }
            #[cfg(feature = "tls")]
            Fixture::TlsCluster(cluster) => {
                let files = cluster.tls_files().expect("a TLS cluster");
                builder
                    .cluster_nodes(cluster.seeds())
                    .tls_ca_file(&files.ca_file)
            }
        };
        builder.build().expect("build manager")
    }

    pub(crate) fn manager(&self, prefix: &str) -> CacheManager {
        self.manager_with(prefix, |c| c)
    }

    /// A fresh manager under a unique prefix.
    pub(crate) fn fresh(&self) -> CacheManager {
        self.manager(&unique_prefix("c"))
    }
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `work` on a current-thread runtime of its own under a `tracing` subscriber that
/// records every event at `level` or above (no colours); returns what `work` returned and
/// the log.
pub(crate) fn logged<T>(level: tracing::Level, work: impl Future<Output = T>) -> (T, String) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    });
    let log = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (out, log)
}

/// The lease key of `key` in `cache`, without the prefix (`{key}#lock{T}`).
pub(crate) fn lease_of(cache: &CacheManager, key: &str) -> String {
    companion_of(cache, key, "#lock")
}

/// The metadata key of `key` in `cache`, without the prefix (`{key}#meta{T}`).
pub(crate) fn meta_of(cache: &CacheManager, key: &str) -> String {
    companion_of(cache, key, "#meta")
}

fn companion_of(cache: &CacheManager, key: &str, suffix: &str) -> String {
    let full = cache.full_key(key);
    let companion = cachette::key::companion_key(&full, suffix);
    companion[full.len() - key.len()..].to_owned()
}

/// Instantiates each named scenario `async fn name(fx: &Fixture)` of the calling module twice,
/// as `memory::name` and `redis::name` tests (multi-thread runtime, 2 workers).
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&crate::support::Fixture::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&crate::support::Fixture::redis()).await;
                }
            )*
        }
    };
}

/// Instantiates each named scenario `async fn name(fx: &Fixture)` of the calling module on one
/// more fixture, as `module::name` tests: `on_backend!(cluster => Fixture::cluster(); a, b)`.
macro_rules! on_backend {
    ($module:ident => $fixture:expr; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&$fixture).await;
                }
            )*
        }
    };
}
