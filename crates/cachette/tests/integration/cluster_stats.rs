//! The stats publisher on a Redis Cluster: counters added to the hash on the primary that
//! serves its slot and read back through the manager, a second publisher adding to them, a
//! slot migration (MOVED) and a failover of that primary, and an unreachable cluster (bounded,
//! the cache unaffected).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::backend::cluster::slot;
use cachette::publish::stats_key;
use cachette::{CacheManager, Config, ErrorKind, LoadOptions, Ttl};
use cachette_test_support::RedisCluster;

use crate::support::{cluster_manager, manual_publisher, shared_cluster, unique_prefix};

/// `publish_now` fails with a connection error or a timeout, within `bound`.
async fn publish_fails_within(publisher: &cachette::publish::StatsPublisher, bound: Duration) {
    let started = Instant::now();
    let e = publisher.publish_now().await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{e}"
    );
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

/// `hits` reads of a stored key, `misses` reads of a missing one, one write.
async fn traffic(cache: &CacheManager, hits: usize, misses: usize) {
    cache.set("a", &1u32, Ttl::secs(600)).await.unwrap();
    for _ in 0..hits {
        assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(1));
    }
    for _ in 0..misses {
        assert_eq!(cache.get::<u32>("missing").await.unwrap(), None);
    }
}

/// `(hits, misses, writes)` of function `name` as read back through `cache`.
async fn read_back(cache: &CacheManager, name: &str) -> (u64, u64, u64) {
    let published = cache.published_stats().await.unwrap();
    let f = published
        .functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not published: {published:?}"));
    (f.get("hits"), f.get("misses"), f.get("writes"))
}

/// Waits until the replica of primary `i` has acknowledged everything written to it so far
/// (its offset in `INFO replication` reaches the primary's).
fn wait_replicated(cluster: &RedisCluster, i: usize) {
    let field = |info: &str, name: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    let info = cluster.cli(i, ["INFO", "replication"]);
    let target = field(&info, "master_repl_offset:").expect("a replication offset");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = cluster.cli(i, ["INFO", "replication"]);
        let acked = info
            .lines()
            .find(|l| l.starts_with("slave0:"))
            .and_then(|l| l.split(',').find_map(|kv| kv.strip_prefix("offset=")))
            .and_then(|v| v.parse::<u64>().ok());
        if acked.is_some_and(|o| o >= target) {
            return;
        }
        assert!(Instant::now() < deadline, "not replicated: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_publisher_adds_counters_to_the_hash_on_its_slot_owner() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("stats");
    let cache = cluster_manager(cluster, &prefix);
    traffic(&cache, 3, 1).await;
    let publisher = manual_publisher(&cache);
    assert_eq!(publisher.key(), stats_key(&prefix));
    assert_eq!(publisher.publish_now().await.unwrap(), 3);
    // Nothing new: nothing sent, nothing counted twice.
    assert_eq!(publisher.publish_now().await.unwrap(), 0);
    assert_eq!(read_back(&cache, "manager").await, (3, 1, 1));
    let published = cache.published_stats().await.unwrap();
    assert!(published.published_at_ms.is_some());
    // On the primary that serves the hash's slot, as a plain hash.
    let key = stats_key(&prefix);
    let owner = cluster.owner_of_slot(slot(key.as_bytes())).unwrap();
    assert_eq!(cluster.cli(owner, ["HGET", &key, "manager|hits"]), "3");
    assert_eq!(cluster.cli(owner, ["TYPE", &key]), "hash");

    // Another process (a manager of its own, a publisher from the configuration with a
    // cluster backend of its own) adds to the same totals.
    let mut config = Config::default();
    config.cluster_nodes = cluster.seeds();
    config.key_prefix = prefix.clone();
    config.command_timeout = Duration::from_secs(2);
    let other = config.clone().builder().build().unwrap();
    traffic(&other, 2, 0).await;
    let second = config
        .stats_publisher()
        .unwrap()
        .functions(false)
        .manager("manager", &other)
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    assert!(format!("{second:?}").contains(&key));
    second.stop().await; // the last batch on the way out
    assert_eq!(read_back(&cache, "manager").await, (5, 1, 2));
    // The first one's new counts only.
    traffic(&cache, 1, 0).await;
    publisher.stop().await;
    assert_eq!(read_back(&other, "manager").await, (6, 1, 3));

    assert!(cache.reset_published_stats().await.unwrap());
    assert!(cache.published_stats().await.unwrap().functions.is_empty());
    assert!(!other.reset_published_stats().await.unwrap());
    assert_eq!(cluster.cli(owner, ["EXISTS", &key]), "0");
}

/// The hash's slot moves to another primary between two batches: the next batch follows
/// `MOVED` (the manager's slot map still names the old owner), and so does the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_publisher_follows_moved_after_a_slot_migration() {
    let cluster = RedisCluster::new();
    let prefix = "migstats:";
    let cache = cluster_manager(&cluster, prefix);
    traffic(&cache, 2, 1).await;
    let publisher = manual_publisher(&cache);
    assert_eq!(publisher.publish_now().await.unwrap(), 3);
    let key = stats_key(prefix);
    let s = slot(key.as_bytes());
    let src = cluster.owner_of_slot(s).unwrap();
    let dst = (src + 1) % 3;
    let s_text = s.to_string();
    cluster.begin_migration(s, src, dst);
    cluster.migrate_keys(src, dst, &[&key]);
    cluster.finish_migration(s, src, dst);
    traffic(&cache, 4, 0).await;
    assert_eq!(publisher.publish_now().await.unwrap(), 2);
    assert_eq!(cluster.cli(dst, ["HGET", &key, "manager|hits"]), "6");
    assert_eq!(
        cluster.cli(src, ["CLUSTER", "COUNTKEYSINSLOT", &s_text]),
        "0"
    );
    assert_eq!(read_back(&cache, "manager").await, (6, 1, 2));
    publisher.stop().await;
}

/// The primary holding the hash dies (3 primaries + 3 replicas): batches fail meanwhile
/// without touching the cache, are kept, and are delivered to the promoted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_publisher_keeps_publishing_after_a_failover() {
    let cluster = Arc::new(RedisCluster::with_replicas());
    let prefix = "failstats:";
    let cache = CacheManager::builder()
        .cluster_nodes(cluster.seeds())
        .key_prefix(prefix)
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    traffic(&cache, 2, 0).await;
    let publisher = manual_publisher(&cache);
    assert_eq!(publisher.publish_now().await.unwrap(), 2);
    let key = stats_key(prefix);
    let owner = cluster.owner_of_slot(slot(key.as_bytes())).unwrap();
    // The replica has the hash before its primary dies (replication is asynchronous).
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || wait_replicated(&c, owner))
        .await
        .unwrap();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.node(owner).kill())
        .await
        .unwrap();
    // While the shard is down: reads of the other shards still work, those of this one fail
    // (and are counted as errors); a batch fails within its bound and is kept.
    for i in 0..30 {
        let _ = cache.get::<u32>(&format!("x{i}")).await;
    }
    assert!(cache.stats().errors > 0, "some keys live on the dead shard");
    // Bounded by twice the command timeout.
    publish_fails_within(&publisher, Duration::from_millis(1500)).await;
    let c = cluster.clone();
    let recovered = tokio::task::spawn_blocking(move || c.wait_recovered(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(recovered, "a replica took over");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match publisher.publish_now().await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "never published again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let new_owner = cluster.owner_of_slot(slot(key.as_bytes())).unwrap();
    assert_ne!(new_owner, owner);
    // Every count exactly once: the failed batch was kept and sent with the next one.
    let published = cache.published_stats().await.unwrap();
    let f = &published.functions[0];
    assert_eq!(f.name, "manager");
    let now = cache.stats();
    assert_eq!(
        (
            f.get("hits"),
            f.get("misses"),
            f.get("writes"),
            f.get("errors")
        ),
        (now.hits, now.misses, now.writes, now.errors),
        "{published:?}"
    );
    assert_eq!(
        cluster.cli(new_owner, ["HGET", &key, "manager|errors"]),
        now.errors.to_string()
    );
    publisher.stop().await;
}

/// Seeds nobody listens on: `start` does not connect, a batch fails within twice the command
/// timeout, the cache's own calls are not held up, and stopping does not hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_on_an_unreachable_cluster_fails_within_its_bound() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cache = CacheManager::builder()
        .cluster_nodes([format!("127.0.0.1:{closed}")])
        .key_prefix("down:")
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let publisher = cache
        .stats_publisher()
        .unwrap()
        .functions(false)
        .interval(Duration::from_millis(20))
        .start()
        .expect("starts without connecting");
    // Read-through fails open while the publisher keeps failing in the background.
    let options = LoadOptions::ttl(Ttl::secs(60));
    for _ in 0..3 {
        let v: u32 = cache
            .get_or_load("k", &options, || async {
                Ok::<_, std::convert::Infallible>(7)
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }
    publish_fails_within(&publisher, Duration::from_secs(1)).await;
    let e = cache.published_stats().await.unwrap_err();
    assert!(e.is_connection() || e.is_timeout(), "{e}");
    let started = Instant::now();
    publisher.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A manager on no Redis has no statistics hash.
    let memory = CacheManager::memory();
    assert_eq!(
        memory.stats_publisher().unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(
        memory.published_stats().await.unwrap_err().kind(),
        ErrorKind::Config
    );
}
