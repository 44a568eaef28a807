//! Stampede control on a real cluster: a value's lease and metadata live in its slot (on its
//! node), and lease wake-ups reach waiters in other managers even when the first seed is dead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::key::slot;
use cachette::{CacheManager, LoadOptions, Ttl};
use cachette_test_support::{RedisCluster, RedisServer};

use crate::support::{lease_of, meta_of, shared_cluster, unique_prefix};

fn manager(seeds: Vec<String>, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .cluster_nodes(seeds)
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .expect("builds without connecting")
}

/// The node that holds `full` (asks every primary, so it checks real placement rather than
/// our own slot arithmetic).
fn holder(cluster: &RedisCluster, full: &str) -> Vec<usize> {
    cluster
        .primaries()
        .into_iter()
        .filter(|&i| cluster.cli(i, ["EXISTS", full]) == "1")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lease_and_metadata_live_on_their_values_node() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("companion");
    let cache = manager(cluster.seeds(), &prefix);
    // Keys with and without a hash tag of their own, and one with a brace but no tag.
    for key in ["plain:1", "{user:7}:profile", "odd{brace", "{}empty-tag"] {
        let full = cache.full_key(key);
        let lease = cache.full_key(&lease_of(&cache, key));
        let meta = cache.full_key(&meta_of(&cache, key));
        // The server's own hashing agrees.
        let keyslot = |k: &str| cluster.cli(0, ["CLUSTER", "KEYSLOT", k]);
        assert_eq!(keyslot(&lease), keyslot(&full), "{lease}");
        assert_eq!(keyslot(&meta), keyslot(&full), "{meta}");
        assert_eq!(keyslot(&full), slot(full.as_bytes()).to_string());

        // A stale-capable fill writes the metadata beside the value: same node.
        let options = LoadOptions::ttl(Ttl::secs(60)).stale_ttl(Duration::from_secs(60));
        let v: u32 = cache
            .get_or_load(key, &options, || async {
                Ok::<_, std::convert::Infallible>(7)
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
        let value_node = holder(cluster, &full);
        assert_eq!(value_node.len(), 1, "{full}");
        assert_eq!(holder(cluster, &meta), value_node, "{meta}");

        // A lease held by another process sits there too.
        cache
            .set_raw(
                &lease_of(&cache, key),
                "4242:other",
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(holder(cluster, &lease), value_node, "{lease}");
        // An eviction removes the lease first (one more scan of `{pattern}#lock{*}`).
        assert_eq!(
            cache.delete_pattern("*").await.unwrap(),
            2,
            "the value and its metadata"
        );
        assert!(holder(cluster, &lease).is_empty());
    }
}

/// The first seed is dead from the start: the cluster backend uses the others, and so does
/// the lease notifier, for publishing and for subscribing. Waiters in other managers are
/// woken by the release message, well before their own re-check (1 s with a 30 s lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wake_ups_skip_a_dead_seed() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("wake");
    // A port where nothing listens: a server started and killed.
    let dead = {
        let server = RedisServer::new();
        let addr = format!("127.0.0.1:{}", server.port());
        drop(server);
        addr
    };
    let mut seeds = vec![dead];
    seeds.extend(cluster.seeds());
    let options = LoadOptions::ttl(Ttl::secs(60))
        .lock(true)
        .lock_ttl(Duration::from_secs(30))
        .lock_wait(Duration::from_secs(10));
    let managers: Vec<CacheManager> = (0..3).map(|_| manager(seeds.clone(), &prefix)).collect();
    // Each round: the loader in one manager holds the lease for 200 ms; the others wait. The
    // first round also lets every manager's subscriber find a live seed.
    for round in 0..3 {
        let loads = Arc::new(AtomicUsize::new(0));
        let key = format!("hot{round}");
        let started = Instant::now();
        let calls: Vec<_> = managers
            .iter()
            .enumerate()
            .map(|(i, cache)| {
                let cache = cache.clone();
                let loads = loads.clone();
                let options = options.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    // The first manager starts first, so it leads.
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    cache
                        .get_or_load(&key, &options, || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Ok::<_, std::convert::Infallible>(round)
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), round);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "round {round}");
        let took = started.elapsed();
        if round > 0 {
            assert!(
                took < Duration::from_millis(800),
                "round {round}: waiters were not woken by the release ({took:?})"
            );
        }
    }
}
