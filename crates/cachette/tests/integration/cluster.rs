//! Redis Cluster specifics, on real local clusters: batches over every slot, whole-keyspace
//! operations over every primary, a slot migration (MOVED and ASK), a primary killed under
//! read-through load (3 primaries + 3 replicas).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::backend::cluster::slot;
use cachette::{CacheManager, LoadOptions, Ttl};
use cachette_test_support::{RedisCluster, CLUSTER_NODE_TIMEOUT_MS};

use crate::support::{shared_cluster, unique_prefix};

fn manager(cluster: &RedisCluster, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .cluster_nodes(cluster.seeds())
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("builds without connecting")
}

/// Keys of every node: `DBSIZE` of each primary.
fn sizes(cluster: &RedisCluster) -> Vec<u64> {
    cluster
        .primaries()
        .into_iter()
        .map(|i| cluster.cli(i, ["DBSIZE"]).parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_get_many_and_set_many_of_1000_keys_over_all_slots_keep_the_callers_order() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("batch");
    let cache = manager(cluster, &prefix);
    assert!(cache.describe().starts_with("redis-cluster://127.0.0.1:"));
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let slots: HashSet<u16> = keys
        .iter()
        .map(|k| slot(format!("{prefix}{k}").as_bytes()))
        .collect();
    assert!(slots.len() > 900, "the keys spread over many slots");
    let items: Vec<(String, u64)> = keys.iter().cloned().zip(0u64..).collect();
    cache.set_many(items, Ttl::secs(60)).await.unwrap();
    // Every primary got a share.
    assert!(
        sizes(cluster).iter().all(|&n| n > 200),
        "{:?}",
        sizes(cluster)
    );
    // Reversed, with missing keys interleaved: results in the caller's order.
    let mut asked: Vec<String> = Vec::new();
    for k in keys.iter().rev() {
        asked.push(k.clone());
        asked.push(format!("missing-{k}"));
    }
    let got: Vec<Option<u64>> = cache.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), 2000);
    for (i, v) in got.iter().enumerate() {
        let expected = (i % 2 == 0).then(|| 999 - (i / 2) as u64);
        assert_eq!(*v, expected, "position {i} ({})", asked[i]);
    }
    assert_eq!(cache.delete_many(&keys).await.unwrap(), 1000);
    let got: Vec<Option<u64>> = cache.get_many(&keys).await.unwrap();
    assert!(got.iter().all(Option::is_none));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keys_delete_pattern_and_clear_cover_every_primary() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("whole");
    let cache = manager(cluster, &prefix);
    let other = manager(cluster, &unique_prefix("other"));
    other.set("kept", &1u8, Ttl::secs(60)).await.unwrap();
    let items: Vec<(String, u32)> = (0..3000).map(|i| (format!("a:{i}"), i)).collect();
    cache.set_many(items, Ttl::secs(60)).await.unwrap();
    let items: Vec<(String, u32)> = (0..500).map(|i| (format!("b:{i}"), i)).collect();
    cache.set_many(items, Ttl::secs(60)).await.unwrap();
    let keys = cache.keys("a:*").await.unwrap();
    assert_eq!(keys.len(), 3000);
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), 3000);
    assert_eq!(cache.keys("*").await.unwrap().len(), 3500);
    // The single-cursor scan of the trait visits every primary too.
    let backend = cache.backend().clone();
    let mut cursor = 0;
    let mut seen = HashSet::new();
    for _ in 0..100_000 {
        let page = backend
            .scan(cursor, &format!("{prefix}a:*"), 100)
            .await
            .unwrap();
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 3000);
    assert_eq!(cache.delete_pattern("a:*").await.unwrap(), 3000);
    assert!(cache.keys("a:*").await.unwrap().is_empty());
    assert_eq!(cache.clear().await.unwrap(), 500);
    assert!(cache.keys("*").await.unwrap().is_empty());
    assert_eq!(other.get::<u8>("kept").await.unwrap(), Some(1));
    // INFO is summed over the primaries, with one line per node; reads on every primary
    // first.
    let spread: Vec<(String, u32)> = (0..30).map(|i| (format!("h{i}"), i)).collect();
    let spread_keys: Vec<String> = spread.iter().map(|(k, _)| k.clone()).collect();
    other.set_many(spread, Ttl::secs(60)).await.unwrap();
    let got: Vec<Option<u32>> = other.get_many(&spread_keys).await.unwrap();
    assert!(got.iter().all(Option::is_some));
    let info = other.info().await.unwrap();
    assert!(info.keys_in_db(0) >= 1);
    let section = &info.sections["cluster"];
    assert_eq!(section["primaries"].as_i64(), Some(3));
    assert_eq!(section.len(), 1 + 4 * 3, "{section:?}");
    let per_node = |field: &str| -> Vec<i64> {
        cluster
            .seeds()
            .iter()
            .map(|addr| section[&format!("{addr}_{field}")].as_i64().unwrap())
            .collect()
    };
    let hits = per_node("keyspace_hits");
    assert!(hits.iter().all(|&h| h > 0), "{hits:?}");
    let field = |name: &str| info.get(name).and_then(cachette::info::InfoValue::as_i64);
    assert_eq!(field("keyspace_hits"), Some(hits.iter().sum()));
    assert_eq!(
        field("keyspace_misses"),
        Some(per_node("keyspace_misses").iter().sum())
    );
    let keys = per_node("keys");
    assert_eq!(info.keys_in_db(0), keys.iter().sum::<i64>() as u64);
    assert_eq!(
        info.used_memory(),
        Some(per_node("used_memory").iter().sum::<i64>() as u64)
    );
}

/// Moves the slot of a key from its owner to another primary while the manager reads and
/// writes it: `ASK` during the migration, `MOVED` after it, no wrong value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_follows_ask_during_and_moved_after_a_slot_migration() {
    let cluster = RedisCluster::new();
    let prefix = "mig:";
    let cache = manager(&cluster, prefix);
    cache
        .set("moving", &"before", Ttl::secs(600))
        .await
        .unwrap();
    cache.set("stays", &"here", Ttl::secs(600)).await.unwrap();
    let full = format!("{prefix}moving");
    let s = slot(full.as_bytes());
    let src = cluster.owner_of_slot(s).unwrap();
    let dst = (src + 1) % 3;
    let (src_id, dst_id) = (cluster.node_id(src), cluster.node_id(dst));
    let s_text = s.to_string();
    assert_eq!(
        cluster.cli(dst, ["CLUSTER", "SETSLOT", &s_text, "IMPORTING", &src_id]),
        "OK"
    );
    assert_eq!(
        cluster.cli(src, ["CLUSTER", "SETSLOT", &s_text, "MIGRATING", &dst_id]),
        "OK"
    );
    // A key of the slot that is not on the source any more: ASK to the target.
    let other = (0..100_000)
        .map(|i| format!("other{i}"))
        .find(|k| slot(format!("{prefix}{k}").as_bytes()) == s)
        .unwrap();
    let port = cluster.node(dst).port().to_string();
    cache.set(&other, &"asked", Ttl::secs(600)).await.unwrap();
    assert_eq!(
        cluster.cli(dst, ["CLUSTER", "COUNTKEYSINSLOT", &s_text]),
        "1",
        "the new key went to the importing node through ASK"
    );
    let out = cluster.cli(
        src,
        [
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "KEYS",
            &full,
        ],
    );
    assert_eq!(out, "OK");
    assert_eq!(
        cache.get::<String>("moving").await.unwrap().as_deref(),
        Some("before")
    );
    assert_eq!(
        cache.get::<String>(&other).await.unwrap().as_deref(),
        Some("asked")
    );
    for i in 0..3 {
        cluster.cli(i, ["CLUSTER", "SETSLOT", &s_text, "NODE", &dst_id]);
    }
    // Now MOVED (the manager's map still names the source).
    assert_eq!(
        cache.get::<String>("moving").await.unwrap().as_deref(),
        Some("before")
    );
    cache.set("moving", &"after", Ttl::secs(600)).await.unwrap();
    assert_eq!(
        cache.get::<String>("moving").await.unwrap().as_deref(),
        Some("after")
    );
    assert_eq!(cluster.cli(dst, ["GET", &full]), "\"after\"");
    assert_eq!(
        cache.get::<String>("stays").await.unwrap().as_deref(),
        Some("here")
    );
    let got: Vec<Option<String>> = cache
        .get_many(&["moving", other.as_str(), "stays"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some("after".into()),
            Some("asked".into()),
            Some("here".into())
        ]
    );
    assert_eq!(cache.keys("*").await.unwrap().len(), 3);
}

/// A primary of a 3+3 cluster is killed during read-through load: no panic, every call returns
/// the loader's value, and calls succeed through the cache again after the promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_kill_a_primary_under_read_through_load() {
    let cluster = Arc::new(RedisCluster::with_replicas());
    let cache = CacheManager::builder()
        .cluster_nodes(cluster.seeds())
        .key_prefix("chaos:")
        .command_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .circuit_breaker(50, Duration::from_millis(200))
        .build()
        .unwrap();
    let options = LoadOptions::ttl(Ttl::secs(60));
    let t0 = Instant::now();
    let kill_at = Duration::from_millis(500);
    let end = kill_at + Duration::from_millis(CLUSTER_NODE_TIMEOUT_MS) + Duration::from_secs(5);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let cache = cache.clone();
            let options = options.clone();
            tokio::spawn(async move {
                let mut stored_late = 0usize;
                let mut late = 0usize;
                let mut i = w;
                while t0.elapsed() < end {
                    let key = format!("k{}", i % 60);
                    i += 1;
                    let value: String = cache
                        .get_or_load(&key, &options, || async {
                            Ok::<_, std::convert::Infallible>(format!("v-{key}"))
                        })
                        .await
                        .expect("read-through fails open");
                    assert_eq!(value, format!("v-{key}"));
                    if t0.elapsed() > end - Duration::from_secs(1) {
                        late += 1;
                        if cache.get::<String>(&key).await.is_ok() {
                            stored_late += 1;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                (late, stored_late)
            })
        })
        .collect();
    tokio::time::sleep(kill_at).await;
    let victim = cluster.primaries()[0];
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.node(victim).kill())
        .await
        .unwrap();
    let mut late = 0;
    let mut ok = 0;
    for w in workers {
        let (l, s) = w.await.expect("no worker panicked");
        late += l;
        ok += s;
    }
    let c = cluster.clone();
    let recovered = tokio::task::spawn_blocking(move || c.wait_recovered(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(recovered, "a replica took over");
    assert!(late > 0);
    assert!(
        ok * 100 >= late * 99,
        "the cache answers again after the promotion: {ok}/{late}"
    );
    // Every key is readable and writable through the cache.
    for i in 0..60 {
        let key = format!("k{i}");
        cache.set(&key, &i, Ttl::secs(60)).await.unwrap();
        assert_eq!(cache.get::<i32>(&key).await.unwrap(), Some(i));
    }
}

/// A server's error reply on a cluster node (`WRONGTYPE`) is a backend error that leaves the
/// circuit breaker closed, however often it happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_server_errors_never_open_the_breaker() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("wrongtype");
    let cache = CacheManager::builder()
        .cluster_nodes(cluster.seeds())
        .key_prefix(&prefix)
        .circuit_breaker(2, Duration::from_secs(5))
        .build()
        .unwrap();
    let full = format!("{prefix}list");
    let owner = cluster.owner_of_slot(slot(full.as_bytes())).unwrap();
    cluster.cli(owner, ["RPUSH", &full, "x"]);
    for _ in 0..5 {
        let e = cache.get::<String>("list").await.unwrap_err();
        assert_eq!(e.kind(), cachette::ErrorKind::Backend, "{e}");
    }
    assert_eq!(
        cache.circuit_breaker().unwrap().state(),
        cachette::CircuitState::Closed
    );
    cache.set("ok", &1u8, Ttl::secs(60)).await.unwrap();
}

/// The cross-process lease on a cluster: managers racing for one missing key run the loader
/// once, and every waiter gets its value (wake-ups through pub/sub, else re-checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lease_runs_the_loader_once_across_managers() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("lease");
    let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let options = LoadOptions::ttl(Ttl::secs(60)).lock(true);
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let cache = manager(cluster, &prefix);
            let loads = loads.clone();
            let options = options.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("hot", &options, || async {
                        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, std::convert::Infallible>(42u32)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 42);
    }
    assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}
