//! A Redis Cluster serving TLS only (`RedisCluster::spawn_tls`: TLS ports, TLS bus, one CA):
//! every node cachette connects to, the seeds and the ones `CLUSTER SLOTS`, `ASK` and `MOVED`
//! name, is reached in TLS with the configured CA, and an untrusted CA is an
//! `ErrorKind::Tls` error. (The conformance suite on such a cluster:
//! `conformance::tls_cluster_runs_the_whole_suite`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::key::slot;
use cachette::{CacheManager, Config, ErrorKind, LoadOptions, Ttl};
use cachette_test_support::RedisCluster;

/// A manager on `cluster` over TLS, trusting `ca` (breaker off).
fn manager(cluster: &RedisCluster, prefix: &str, ca: &std::path::Path) -> CacheManager {
    let mut config = Config::default();
    config.tls = true;
    config
        .builder()
        .cluster_nodes(cluster.seeds())
        .tls_ca_file(ca)
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .circuit_breaker(0, Duration::ZERO)
        .build()
        .expect("build manager")
}

/// A slot moves between two primaries while the manager uses it: the `ASK` to the importing
/// node and the `MOVED` after the migration both name TLS ports, which the manager follows
/// in TLS. Then the cross-process lease works across two managers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_is_followed_through_ask_and_moved() {
    let started = Instant::now();
    let cluster = RedisCluster::new_tls();
    eprintln!("TLS cluster up in {:?}", started.elapsed());
    let ca = cluster.tls_files().unwrap().ca_file.clone();
    let prefix = "tlsmig:";
    let cache = manager(&cluster, prefix, &ca);
    assert!(
        cache.describe().starts_with("rediss-cluster://"),
        "{}",
        cache.describe()
    );
    cache.set("moving", &1u32, Ttl::secs(600)).await.unwrap();
    let full = format!("{prefix}moving");
    let s = slot(full.as_bytes());
    let src = cluster.owner_of_slot(s).unwrap();
    let dst = (src + 1) % 3;
    cluster.begin_migration(s, src, dst);
    // A new key of the slot: `ASK` to the importing node.
    let other = (0..100_000)
        .map(|i| format!("other{i}"))
        .find(|k| slot(format!("{prefix}{k}").as_bytes()) == s)
        .unwrap();
    cache.set(&other, &2u32, Ttl::secs(600)).await.unwrap();
    assert_eq!(
        cluster.cli(dst, ["CLUSTER", "COUNTKEYSINSLOT", &s.to_string()]),
        "1",
        "the new key went to the importing node through ASK"
    );
    cluster.migrate_keys(src, dst, &[&full]);
    cluster.finish_migration(s, src, dst);
    // The manager's slot map still names the source: `MOVED`.
    assert_eq!(cache.get::<u32>("moving").await.unwrap(), Some(1));
    cache.set("moving", &3u32, Ttl::secs(600)).await.unwrap();
    assert_eq!(cluster.cli(dst, ["GET", &full]), "3");
    let got: Vec<Option<u32>> = cache.get_many(&["moving", other.as_str()]).await.unwrap();
    assert_eq!(got, vec![Some(3), Some(2)]);
    assert!(cache.ping().await);
    // The cross-process lease (its wake-ups through pub/sub, over TLS too): two managers, one
    // loader run.
    let other = manager(&cluster, prefix, &ca);
    let loads = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::ttl(Ttl::secs(60))
        .lock(true)
        .lock_wait(Duration::from_secs(5));
    let calls: Vec<_> = [cache.clone(), other]
        .into_iter()
        .enumerate()
        .map(|(i, cache)| {
            let (loads, options) = (loads.clone(), options.clone());
            tokio::spawn(async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                cache
                    .get_or_load("leased", &options, || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, std::convert::Infallible>(9u32)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 9);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

/// Seeds whose certificates are signed by a CA the client does not trust: every call fails
/// with an `ErrorKind::Tls` error naming the check, within the command timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_with_an_untrusted_ca_is_a_tls_error() {
    let cluster = RedisCluster::new_tls();
    let other_ca = cluster.tls_files().unwrap().other_ca_file.clone();
    let cache = manager(&cluster, "tlsbad:", &other_ca);
    for i in 0..5 {
        let started = Instant::now();
        let e = cache.get::<u32>(&format!("k{i}")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
        assert!(e.to_string().contains("not signed by a trusted CA"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    let e = cache.set("k", &1u32, Ttl::secs(60)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(!cache.ping().await);
}
