//! The near cache on a Redis Cluster (one invalidation channel per primary) and through
//! Sentinel (a channel that follows the primary): every primary's writes reach the tier, and
//! a failover leaves no stale copy behind. The conformance suite runs on both too
//! (`conformance::cluster_near`, `conformance::sentinel_near_runs_the_whole_suite`).

use std::time::{Duration, Instant};

use cachette::backend::cluster::slot;
use cachette::{CacheManager, NearCacheOptions};
use cachette_test_support::{RedisCluster, RedisSentinel};

use crate::near::{eventually, hold, sees, stats, tracking_client_ids};
use crate::support::{shared_cluster, unique_prefix};

const LONG: Duration = Duration::from_secs(600);

/// Builds with `builder`'s servers, `prefix` and short timeouts; with a near cache when `near`.
fn build(builder: cachette::CacheManagerBuilder, prefix: &str, near: bool) -> CacheManager {
    builder
        .key_prefix(prefix)
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .near_cache(near.then(NearCacheOptions::default))
        .build()
        .expect("builds")
}

/// Waits until the near cache of `cache` is served (every channel vouches).
async fn live(cache: &CacheManager, within: Duration) {
    assert!(
        eventually(within, async || stats(cache).live).await,
        "the near cache never came up: {:?}",
        stats(cache)
    );
}

/// `per_node` keys (without the prefix) whose slots each primary of `cluster` serves.
fn keys_on_every_primary(cluster: &RedisCluster, prefix: &str, per_node: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for primary in cluster.primaries() {
        let mine = (0..)
            .map(|i| format!("k{i}"))
            .filter(|k| {
                cluster.owner_of_slot(slot(format!("{prefix}{k}").as_bytes())) == Some(primary)
            })
            .take(per_node);
        keys.extend(mine);
    }
    keys
}

/// A write on any primary reaches the tier: each key (three per primary) is held in the tier,
/// then rewritten by a manager without a near cache, and seen by the reader within the bound.
/// Fails if a primary has no channel (its keys are never held: their replies are not kept
/// without one) or if a channel's invalidations are not applied (stale until the bound ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_primary_announces_its_writes_to_the_tier() {
    let cluster = shared_cluster();
    let prefix = unique_prefix("nearc");
    let reader = build(
        CacheManager::builder().cluster_nodes(cluster.seeds()),
        &prefix,
        true,
    );
    let writer = build(
        CacheManager::builder().cluster_nodes(cluster.seeds()),
        &prefix,
        false,
    );
    assert!(
        reader.describe().ends_with("(near cache)"),
        "{}",
        reader.describe()
    );
    let keys = keys_on_every_primary(cluster, &prefix, 3);
    assert_eq!(keys.len(), 9);
    for k in &keys {
        writer.set(k, &1u32, LONG).await.unwrap();
    }
    live(&reader, Duration::from_secs(5)).await;
    for k in &keys {
        hold(&reader, k).await;
    }
    // A stable topology never flushes the tier.
    let flushes = stats(&reader).flushes;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(stats(&reader).flushes, flushes, "{:?}", stats(&reader));
    let invalidations = stats(&reader).invalidations;
    for k in &keys {
        writer.set(k, &2u32, LONG).await.unwrap();
    }
    for k in &keys {
        assert!(sees(&reader, k, 2).await, "{k}: stale beyond the bound");
    }
    assert!(
        stats(&reader).invalidations >= invalidations + 9,
        "{:?}",
        stats(&reader)
    );
    // Own writes and deletions forget the key before they return, on every node.
    for k in &keys {
        hold(&reader, k).await;
        reader.set(k, &3u32, LONG).await.unwrap();
        assert_eq!(reader.get::<u32>(k).await.unwrap(), Some(3));
        reader.delete(k).await.unwrap();
        assert_eq!(reader.get::<u32>(k).await.unwrap(), None);
    }
    // `get_many` is served by the tier too, and checks every node's keys.
    for k in &keys {
        writer.set(k, &4u32, LONG).await.unwrap();
    }
    let got: Vec<Option<u32>> = reader.get_many(&keys).await.unwrap();
    assert!(got.iter().all(|v| *v == Some(4)), "{got:?}");
    for k in &keys {
        hold(&reader, k).await;
    }
    let hits = stats(&reader).hits;
    let got: Vec<Option<u32>> = reader.get_many(&keys).await.unwrap();
    assert!(got.iter().all(|v| *v == Some(4)), "{got:?}");
    assert_eq!(stats(&reader).hits, hits + 9, "every key from the tier");
}

/// A primary of a 3+3 cluster is killed while its keys are held in the tier: no read returns
/// their old values once the cluster has promoted the replica and a write of new values
/// completed there, and the tier serves again (a channel to the promoted replica) afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_failover_leaves_no_stale_copy_and_the_tier_comes_back() {
    let cluster = RedisCluster::with_replicas();
    let prefix = unique_prefix("nearf");
    let reader = build(
        CacheManager::builder().cluster_nodes(cluster.seeds()),
        &prefix,
        true,
    );
    let writer = build(
        CacheManager::builder().cluster_nodes(cluster.seeds()),
        &prefix,
        false,
    );
    let victim = cluster.primaries()[0];
    let keys: Vec<String> = keys_on_every_primary(&cluster, &prefix, 2)
        .into_iter()
        .filter(|k| cluster.owner_of_slot(slot(format!("{prefix}{k}").as_bytes())) == Some(victim))
        .collect();
    assert_eq!(keys.len(), 2);
    for k in &keys {
        writer.set(k, &1u32, LONG).await.unwrap();
    }
    live(&reader, Duration::from_secs(5)).await;
    for k in &keys {
        hold(&reader, k).await;
    }
    let flushes = stats(&reader).flushes;
    cluster.node(victim).kill();
    // While the primary is gone, nothing is served from the tier.
    assert!(
        eventually(Duration::from_secs(2), async || !stats(&reader).live).await,
        "the tier kept serving with a primary gone: {:?}",
        stats(&reader)
    );
    assert!(stats(&reader).flushes > flushes, "{:?}", stats(&reader));
    assert!(
        cluster.wait_recovered(Duration::from_secs(30)),
        "the cluster never promoted the replica"
    );
    // Write the new values on the promoted replica (the writer follows the failover).
    let deadline = Instant::now() + Duration::from_secs(20);
    for k in &keys {
        while writer.set(k, &2u32, LONG).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the writer never reached the new primary"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let written = Instant::now();
    for k in &keys {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match reader.get::<u32>(k).await {
                Ok(Some(2)) => break,
                Ok(v) => assert!(
                    written.elapsed() < Duration::from_secs(1),
                    "{k}: {v:?} read {:?} after the write completed",
                    written.elapsed()
                ),
                // The reader may still be finding the new primary.
                Err(_) => assert!(Instant::now() < deadline, "the reader never recovered"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The tier comes back with a channel to the promoted replica, and serves its keys.
    live(&reader, Duration::from_secs(10)).await;
    for k in &keys {
        hold(&reader, k).await;
    }
    writer.set(&keys[0], &3u32, LONG).await.unwrap();
    assert!(
        sees(&reader, &keys[0], 3).await,
        "the new primary's channel announces"
    );
}

/// Through Sentinel, the channel follows the primary: after `SENTINEL FAILOVER` the tier is
/// flushed, the new primary gets the tracking connection (the demoted node keeps none of
/// ours), a write there is seen within the bound, and the tier serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_the_channel_follows_a_failover() {
    let d = RedisSentinel::new();
    let prefix = unique_prefix("nears");
    let sentinels = || CacheManager::builder().sentinels(d.sentinel_addrs(), d.master_name());
    let reader = build(sentinels(), &prefix, true);
    let writer = build(sentinels(), &prefix, false);
    writer.set("k", &1u32, LONG).await.unwrap();
    live(&reader, Duration::from_secs(5)).await;
    hold(&reader, "k").await;
    let old = d.primary_index().expect("a primary");
    assert_eq!(tracking_client_ids(d.node(old)).len(), 1);
    let flushes = stats(&reader).flushes;
    let started = Instant::now();
    d.failover().expect("SENTINEL FAILOVER");
    let new = d.primary_index().expect("a new primary");
    assert_ne!(new, old);
    // The channel moves to the new primary (and leaves the demoted one).
    let moved = eventually(Duration::from_secs(10), async || {
        tracking_client_ids(d.node(new)).len() == 1 && tracking_client_ids(d.node(old)).is_empty()
    })
    .await;
    assert!(
        moved,
        "the tracking connection did not follow the failover: new {:?}, old {:?}",
        tracking_client_ids(d.node(new)),
        tracking_client_ids(d.node(old))
    );
    assert!(stats(&reader).flushes > flushes, "{:?}", stats(&reader));
    eprintln!(
        "channel on the new primary {:?} after the failover began",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.set("k", &2u32, LONG).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the writer never reached the new primary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sees(&reader, "k", 2).await,
        "stale beyond the bound after a failover"
    );
    live(&reader, Duration::from_secs(5)).await;
    hold(&reader, "k").await;
    // A write on the new primary by another client is announced.
    d.node(new).cli(["SET", &format!("{prefix}k"), "3"]);
    assert!(sees(&reader, "k", 3).await);
}

/// A node that is not a primary in the known topology yet (a new node importing a slot): a
/// miss answered by it after an `ASK` is returned but not kept, since none of the tier's
/// channels would announce its writes. Fails if such a reply is kept (the next write there
/// leaves the tier stale), and checks the `GET`+`PTTL` pipeline follows `ASK` (an `ASKING`
/// before each command).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_reply_from_a_node_without_a_channel_is_not_kept() {
    let cluster = RedisCluster::spawn(3, 0).expect("a Redis Cluster");
    // A fourth node, met by the cluster but serving no slot (so `CLUSTER SLOTS` omits it).
    let extra = cachette_test_support::RedisServer::builder()
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ])
        .spawn()
        .expect("a fourth cluster node");
    let port = extra.port().to_string();
    assert_eq!(
        cluster.cli(0, ["CLUSTER", "MEET", "127.0.0.1", &port]),
        "OK"
    );
    let extra_id = extra.cli(["CLUSTER", "MYID"]);
    let prefix = unique_prefix("neara");
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| cluster.owner_of_slot(slot(format!("{prefix}{k}").as_bytes())) == Some(0))
        .expect("a key on node 0");
    let s = slot(format!("{prefix}{key}").as_bytes());
    let src_id = cluster.node_id(0);
    // Both sides must know each other, and the new node must see the cluster up (else it
    // answers `CLUSTERDOWN`), before the slot can be handed over.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(extra.cli(["CLUSTER", "INFO"]).contains("cluster_state:ok")
        && cluster.cli(0, ["CLUSTER", "NODES"]).contains(&extra_id))
    {
        assert!(Instant::now() < deadline, "the new node never joined");
        std::thread::sleep(Duration::from_millis(50));
    }
    let reader = build(
        CacheManager::builder().cluster_nodes(cluster.seeds()),
        &prefix,
        true,
    );
    let writer = build(
        CacheManager::builder().cluster_nodes(cluster.seeds()),
        &prefix,
        false,
    );
    live(&reader, Duration::from_secs(5)).await;
    let sl = s.to_string();
    assert_eq!(
        extra.cli(["CLUSTER", "SETSLOT", &sl, "IMPORTING", &src_id]),
        "OK"
    );
    assert_eq!(
        cluster.cli(0, ["CLUSTER", "SETSLOT", &sl, "MIGRATING", &extra_id]),
        "OK"
    );
    // The key does not exist at the source: the write goes to the new node (ASK).
    writer.set(&key, &1u32, LONG).await.unwrap();
    assert_eq!(extra.cli(["DBSIZE"]), "1", "written on the new node");
    let hits = stats(&reader).hits;
    for _ in 0..20 {
        assert_eq!(reader.get::<u32>(&key).await.unwrap(), Some(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        stats(&reader).hits,
        hits,
        "a reply from a node without a channel was kept: {:?}",
        stats(&reader)
    );
    writer.set(&key, &2u32, LONG).await.unwrap();
    assert_eq!(reader.get::<u32>(&key).await.unwrap(), Some(2));
}
