//! Fixtures: a backend under test and managers on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
    /// The 3-primary Redis Cluster shared by every test of this binary (isolated by prefix).
    Cluster(&'static RedisCluster),
    /// Redis as the ACL user `cachette`, restricted to exactly `cachette::acl::rules` for
    /// caching and the lease, on the key prefix every test prefix of this process starts with.
    Acl(Box<RedisServer>),
    /// The primary of a Redis Sentinel deployment (a primary, a replica, three sentinels),
    /// reached through the sentinels.
    Sentinel(Box<RedisSentinel>),
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

    #[cfg(feature = "metrics")]
    pub(crate) fn metered() -> Fixture {
        Fixture::Metered(Box::new(RedisServer::new()))
    }

    pub(crate) fn is_redis(&self) -> bool {
        match self {
            Fixture::Redis(_) | Fixture::Cluster(_) | Fixture::Acl(_) | Fixture::Sentinel(_) => {
                true
            }
            #[cfg(feature = "metrics")]
            Fixture::Metered(_) => true,
            #[cfg(feature = "tls")]
            Fixture::Tls(_) => true,
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
        let base = config(base);
        let builder = base.builder();
        let builder = match self {
            Fixture::Memory(b) => builder.backend(b.clone() as Arc<dyn Backend>),
            Fixture::Redis(server) => builder.url(server.url()),
            Fixture::Cluster(cluster) => builder.cluster_nodes(cluster.seeds()),
            Fixture::Acl(server) => builder.url(server.url_for_user("cachette", ACL_PASSWORD)),
            Fixture::Sentinel(d) => builder.sentinels(d.sentinel_addrs(), d.master_name()),
            #[cfg(feature = "metrics")]
            Fixture::Metered(server) => builder.url(server.url()).metrics(true),
            #[cfg(feature = "tls")]
            Fixture::Tls(server) => {
                let files = server.tls_files().expect("a TLS server");
                builder.url(server.url()).tls_ca_file(&files.ca_file)
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
