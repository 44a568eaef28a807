//! Redis Sentinel against real servers (a primary, a replica and three sentinels from
//! `cachette_test_support::RedisSentinel`): `#[cached]` load through a killed primary and a
//! `SENTINEL FAILOVER` (every call returns the function's value, and success is back to
//! ≥ 99 % within the failover time + 2 s; the recovery times are printed), writes after a
//! failover land on the new primary only, a node demoted under an open connection
//! (`READONLY`) is left for the rediscovered primary, and the typed errors of a wrong master
//! name, unreachable sentinels and half a configuration. The conformance suite runs through
//! Sentinel in `conformance::redis_sentinel`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{cached, CacheManager, ErrorKind, Ttl};
use cachette_test_support::{RedisSentinel, SENTINEL_DOWN_AFTER_MS};

use crate::support::unique_prefix;

/// A manager on the deployment's primary, with the default timeouts and breaker.
fn manager(d: &RedisSentinel, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .sentinels(d.sentinel_addrs(), d.master_name())
        .key_prefix(prefix)
        .build()
        .expect("builds without connecting")
}

/// The function under load: its value is checkable from its argument.
#[cached(cache = cache, skip(cache), ttl = 1)]
async fn triple_plus_one(cache: &CacheManager, x: u64) -> u64 {
    x * 3 + 1
}

/// One `#[cached]` call: when it started, and whether the cache served it without a failure
/// (no error, no fallback counted by its worker's own manager).
#[derive(Clone, Copy)]
struct Call {
    at: Duration,
    ok: bool,
}

/// What a chaos run measured, relative to the event (kill or `SENTINEL FAILOVER`).
struct Recovery {
    /// When every sentinel named the new primary (and it answered `ROLE` master).
    switched: Duration,
    /// The first call without a cache failure after the first failure (zero without any).
    first_success: Duration,
    /// From here on, every 250 ms window has ≥ 99 % of its calls without a cache failure.
    back_to_99: Duration,
    calls: usize,
    failures: usize,
}

/// Runs 8 workers of `#[cached]` calls (each with a manager of its own, to count its
/// failures exactly) while `event` (kill or failover, run on a blocking thread) changes the
/// primary; every call must return the function's value.
async fn chaos(name: &str, event: fn(&RedisSentinel) -> u16) -> Recovery {
    const WORKERS: u64 = 8;
    const WINDOW: Duration = Duration::from_millis(250);
    let d = Arc::new(RedisSentinel::new());
    let prefix = unique_prefix(name);
    let t0 = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let cache = manager(&d, &prefix);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut x = w;
                // Bounded: at most 60 s of calls even if the test's stop never comes.
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && t0.elapsed() < Duration::from_secs(60)
                {
                    x = (x + WORKERS) % 400;
                    let before = cache.stats();
                    let at = t0.elapsed();
                    let value = triple_plus_one(&cache, x).await;
                    assert_eq!(value, x * 3 + 1, "every call returns the function's value");
                    let after = cache.stats();
                    let ok = after.errors == before.errors && after.fallbacks == before.fallbacks;
                    calls.push(Call { at, ok });
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                calls
            })
        })
        .collect();
    // Warm up, then the event.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let event_at = t0.elapsed();
    let dd = d.clone();
    let new_primary = tokio::task::spawn_blocking(move || event(&dd))
        .await
        .expect("the event ran");
    let switched = t0.elapsed() - event_at;
    // Run on for the failover time + 2 s, plus a second to see it hold.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut calls = Vec::new();
    for w in workers {
        calls.extend(w.await.expect("no worker panicked"));
    }
    calls.sort_by_key(|c| c.at);
    assert_eq!(d.primary_port(), Some(new_primary));

    let after: Vec<Call> = calls.iter().filter(|c| c.at >= event_at).copied().collect();
    let first_failure = after.iter().find(|c| !c.ok).map(|c| c.at);
    let first_success = match first_failure {
        Some(f) => after
            .iter()
            .find(|c| c.at > f && c.ok)
            .map(|c| c.at - event_at)
            .expect("a success after the failures"),
        None => Duration::ZERO,
    };
    // Windows from the event to the end; recovery starts after the last window below 99 %.
    let end = calls.last().map_or(event_at, |c| c.at);
    let mut back_to_99 = Duration::ZERO;
    let mut start = event_at;
    while start < end {
        let window: Vec<&Call> = after
            .iter()
            .filter(|c| c.at >= start && c.at < start + WINDOW)
            .collect();
        let ok = window.iter().filter(|c| c.ok).count();
        if !window.is_empty() && (ok as f64) < 0.99 * window.len() as f64 {
            back_to_99 = start + WINDOW - event_at;
        }
        start += WINDOW;
    }
    let failures = after.iter().filter(|c| !c.ok).count();
    let recovery = Recovery {
        switched,
        first_success,
        back_to_99,
        calls: calls.len(),
        failures,
    };
    eprintln!(
        "sentinel chaos ({name}): {} calls, {} with a cache failure after the event; \
         sentinels switched after {:?}; first success after the failures at {:?}; \
         ≥ 99 % again from {:?} after the event",
        recovery.calls,
        recovery.failures,
        recovery.switched,
        recovery.first_success,
        recovery.back_to_99
    );
    assert!(
        recovery.back_to_99 <= recovery.switched + Duration::from_secs(2),
        "success back to 99 % {:?} after the event, the failover took {:?}",
        recovery.back_to_99,
        recovery.switched
    );
    recovery
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_load_survives_a_killed_primary() {
    let recovery = chaos("kill", |d| {
        let old = d.primary_port().expect("a primary");
        let i = d.primary_index().expect("a primary node");
        d.node(i).kill();
        d.wait_primary_change(Some(old), Duration::from_secs(30))
            .expect("the sentinels promote the replica")
    })
    .await;
    assert!(recovery.failures > 0, "a killed primary is noticed");
    assert!(recovery.switched >= Duration::from_millis(SENTINEL_DOWN_AFTER_MS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_load_survives_sentinel_failover() {
    chaos("failover", |d| d.failover().expect("SENTINEL FAILOVER")).await;
}

/// After `SENTINEL FAILOVER`, before the sentinels reconfigure the former primary (it is
/// still a primary of its own for a while), writes go to the new primary and none to the
/// former one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_a_failover_land_on_the_new_primary_only() {
    let d = RedisSentinel::new();
    let prefix = unique_prefix("after");
    let cache = manager(&d, &prefix);
    cache.set("before", &1, Ttl::Never).await.unwrap();
    let old = d.primary_index().unwrap();
    assert_eq!(d.node(old).cli(["GET", &format!("{prefix}before")]), "1");
    d.failover().expect("SENTINEL FAILOVER");
    let new = 1 - old;
    // The +switch-master message reaches the manager's watcher within moments.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut probe = 0;
    loop {
        probe += 1;
        cache
            .set(&format!("probe{probe}"), &probe, Ttl::Never)
            .await
            .unwrap();
        if d.node(new)
            .cli(["EXISTS", &format!("{prefix}probe{probe}")])
            == "1"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the manager never followed the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..50 {
        cache
            .set(&format!("after{i}"), &i, Ttl::Never)
            .await
            .unwrap();
    }
    let role = d.role(old);
    for i in 0..50 {
        let key = format!("{prefix}after{i}");
        assert_eq!(d.node(new).cli(["GET", &key]), i.to_string());
        if role.as_deref() == Some("master") {
            // Not yet a replica of the new primary: it can only have the key if we wrote it.
            assert_eq!(
                d.node(old).cli(["EXISTS", &key]),
                "0",
                "written to the former primary"
            );
        }
    }
    eprintln!(
        "the former primary was {:?} during the check; probe {probe} was the first on the new one",
        role
    );
    assert_eq!(cache.get::<i32>("after7").await.unwrap(), Some(7));
}

/// A primary demoted to a replica under an open connection, without the sentinels (who
/// still name it): the write gets `READONLY`, the connection is dropped, the retry asks the
/// sentinels, and `ROLE` refuses the node; nothing is written. Once it is a primary again,
/// writes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_node_is_not_written_to() {
    let d = RedisSentinel::new();
    let cache = manager(&d, &unique_prefix("demoted"));
    cache.set("k", &1, Ttl::Never).await.unwrap();
    let primary = d.primary_index().unwrap();
    let replica_port = d.node(1 - primary).port().to_string();
    d.node(primary)
        .cli(["REPLICAOF", "127.0.0.1", &replica_port]);
    let e = cache.set("k", &2, Ttl::Never).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("not a primary"), "{e}");
    d.node(primary).cli(["REPLICAOF", "NO", "ONE"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cache.set("k", &3, Ttl::Never).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_name_is_a_config_error() {
    let d = RedisSentinel::new();
    let cache = CacheManager::builder()
        .sentinels(d.sentinel_addrs(), "no-such-master")
        .circuit_breaker(0, Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..3 {
        let e = cache.get::<i32>("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(
            e.to_string()
                .contains("no sentinel monitors a master named \"no-such-master\""),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sentinels_are_a_connection_error() {
    let closed: Vec<String> = (0..2)
        .map(|_| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            format!("127.0.0.1:{port}")
        })
        .collect();
    let cache = CacheManager::builder()
        .sentinels(closed.clone(), "m")
        .build()
        .unwrap();
    let started = Instant::now();
    let e = cache.get::<i32>("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("no sentinel gave"), "{e}");
    assert!(e.to_string().contains(&closed[1]), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        cache.describe(),
        format!("redis+sentinel://{}/m/0", closed.join(","))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_sentinel_configuration_does_not_build() {
    let e = CacheManager::builder()
        .sentinels(["127.0.0.1:26379"], "")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("sentinel_master"), "{e}");
    let e = CacheManager::builder()
        .sentinels(Vec::<String>::new(), "m")
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("invalid sentinel_master from code"),
        "{e}"
    );
    assert!(e.to_string().contains("sentinels"), "{e}");
    let e = CacheManager::builder()
        .sentinels(["127.0.0.1:26379"], "m")
        .cluster_nodes(["127.0.0.1:7000"])
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("Cluster"), "{e}");
}

/// The sentinels' password is sent to them and never printed: a sentinel that has none
/// refuses `AUTH`, and the error says so without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sentinel_password_is_not_printed() {
    let d = RedisSentinel::new();
    let cache = CacheManager::builder()
        .sentinels(d.sentinel_addrs(), d.master_name())
        .sentinel_auth(Some("s3ntinel-user".into()), Some("s3ntinel-pw".into()))
        .build()
        .unwrap();
    let e = cache.get::<i32>("k").await.unwrap_err();
    let printed = format!("{e} {e:?} {cache:?} {}", cache.describe());
    assert!(!printed.contains("s3ntinel-pw"), "{printed}");
    assert!(!printed.contains("s3ntinel-user"), "{printed}");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}
