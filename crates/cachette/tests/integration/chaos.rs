//! Chaos under read-through load, each test on its own spawned loopback `redis-server`:
//! killed and restarted, paused with SIGSTOP, a value corrupted by hand. Bounded in count and
//! time (a few seconds each).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{CacheManager, CircuitState, LoadOptions, Outcome, Ttl};
use cachette_test_support::RedisServer;
use serde::{Deserialize, Serialize};

const OP_TIMEOUT: Duration = Duration::from_millis(200);
const BREAKER_OPEN: Duration = Duration::from_millis(250);

fn chaos_manager(server: &RedisServer, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .url(server.url())
        .key_prefix(prefix)
        .command_timeout(OP_TIMEOUT)
        .connect_timeout(OP_TIMEOUT)
        .circuit_breaker(3, BREAKER_OPEN)
        .build()
        .expect("builds without connecting")
}

fn real_value(key: &str) -> String {
    format!("real value of {key}")
}

#[derive(Debug, Clone, Copy)]
struct Call {
    at: Duration,
    outcome: Outcome,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_under_load() {
    const WORKERS: usize = 8;
    const KEYS: usize = 20;
    let server = Arc::new(RedisServer::new());
    let cache = chaos_manager(&server, "chaos:kill:");
    // With leases too, so that lease operations face the outage as well.
    let options = LoadOptions::ttl(Ttl::secs(60)).lock(true);
    let t0 = Instant::now();
    let kill_at = Duration::from_millis(400);
    let restart_at = Duration::from_millis(1000);
    let end = restart_at + Duration::from_millis(2600);

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let cache = cache.clone();
            let options = options.clone();
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut i = w;
                while t0.elapsed() < end {
                    let key = format!("k{}", i % KEYS);
                    i += 1;
                    let (value, outcome) = cache
                        .get_or_load_traced(
                            &key,
                            &options,
                            None,
                            |_| true,
                            || async {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                                Ok::<_, std::convert::Infallible>(real_value(&key))
                            },
                        )
                        .await
                        .expect("read-through fails open");
                    assert_eq!(value, real_value(&key), "every call returns the real value");
                    calls.push(Call {
                        at: t0.elapsed(),
                        outcome,
                    });
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                calls
            })
        })
        .collect();

    tokio::time::sleep(kill_at).await;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.kill()).await.unwrap();
    let killed = t0.elapsed();
    tokio::time::sleep(restart_at.saturating_sub(t0.elapsed())).await;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.restart())
        .await
        .unwrap();
    let restarted = t0.elapsed();

    let mut calls = Vec::new();
    for w in workers {
        calls.extend(w.await.expect("no worker panicked"));
    }
    let stats = cache.stats();
    let during: Vec<_> = calls
        .iter()
        .filter(|c| c.at > killed + OP_TIMEOUT && c.at < restarted)
        .collect();
    assert!(!during.is_empty());
    assert!(
        during
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Fallback | Outcome::Coalesced)),
        "the loader ran uncached during the outage (once per key at a time)"
    );
    assert!(
        stats.circuit_opens >= 1 && stats.short_circuits > 0,
        "{stats:?}"
    );
    assert!(stats.fallbacks > 0, "{stats:?}");

    let first_hit = calls
        .iter()
        .filter(|c| c.at > restarted && c.outcome == Outcome::Hit)
        .map(|c| c.at)
        .min()
        .expect("hits after the restart");
    assert!(
        first_hit - restarted < Duration::from_secs(2),
        "first hit {:?} after the restart",
        first_hit - restarted
    );
    eprintln!(
        "kill/restart: {} calls, first hit {:?} after the restart, {stats:?}",
        calls.len(),
        first_hit - restarted
    );
    let late: Vec<_> = calls
        .iter()
        .filter(|c| c.at > restarted + Duration::from_secs(2))
        .collect();
    let hits = late.iter().filter(|c| c.outcome == Outcome::Hit).count();
    assert!(
        late.len() > 50 && hits as f64 / late.len() as f64 > 0.9,
        "hit rate {hits}/{} two seconds after the restart ({stats:?})",
        late.len()
    );
    assert_eq!(cache.stats().circuit, CircuitState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_calls_complete_within_timeout_plus_loader_time() {
    const LOADER: Duration = Duration::from_millis(50);
    // Scheduling slack on a busy 2-core machine (the deadline itself is at most one coarse
    // tick late).
    const SLACK: Duration = Duration::from_millis(300);
    let server = RedisServer::new();
    let cache = chaos_manager(&server, "chaos:pause:");
    let options = LoadOptions::ttl(Ttl::secs(60));
    let runs = Arc::new(AtomicUsize::new(0));
    let call = |key: String| {
        let cache = cache.clone();
        let options = options.clone();
        let runs = runs.clone();
        async move {
            let started = Instant::now();
            let (value, outcome) = cache
                .get_or_load_traced(
                    &key,
                    &options,
                    None,
                    |_| true,
                    || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOADER).await;
                        Ok::<_, std::convert::Infallible>(real_value(&key))
                    },
                )
                .await
                .unwrap();
            assert_eq!(value, real_value(&key));
            (outcome, started.elapsed())
        }
    };
    for i in 0..10 {
        call(format!("k{i}")).await;
    }

    server.stop_process();
    let tasks: Vec<_> = (0..50)
        .map(|i| tokio::spawn(call(format!("k{}", i % 20))))
        .collect();
    for t in tasks {
        let (outcome, took) = t.await.unwrap();
        assert!(
            matches!(outcome, Outcome::Fallback | Outcome::Coalesced),
            "{outcome:?}"
        );
        assert!(took < OP_TIMEOUT + LOADER + SLACK, "a call took {took:?}");
    }
    // The breaker is open now: the cache is not even asked, only the loader's time remains.
    assert_eq!(cache.stats().circuit, CircuitState::Open);
    let (_, took) = call("k1".to_owned()).await;
    assert!(took < LOADER + Duration::from_millis(40), "{took:?}");
    let started = Instant::now();
    for _ in 0..200 {
        let e = cache.get::<String>("k1").await.unwrap_err();
        assert_eq!(e.kind(), cachette::ErrorKind::CircuitOpen);
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "short circuits take microseconds, not a timeout: {:?}",
        started.elapsed()
    );

    server.continue_process();
    let back = Instant::now();
    loop {
        let (outcome, _) = call("k2".to_owned()).await;
        if outcome == Outcome::Hit {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "no hit after SIGCONT"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_value_is_a_miss_that_gets_overwritten() {
    let server = RedisServer::new();
    let cache = chaos_manager(&server, "chaos:corrupt:");
    let runs = Arc::new(AtomicUsize::new(0));
    for (key, options) in [
        ("user:1", LoadOptions::ttl(Ttl::secs(60))),
        // With metadata too: the hash in `#meta` no longer matches, so it is ignored.
        (
            "user:2",
            LoadOptions::ttl(Ttl::secs(60))
                .stale_ttl(Duration::from_secs(60))
                .early_refresh(1.0),
        ),
    ] {
        let load = || {
            let runs = runs.clone();
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(User {
                    id: 1,
                    name: "Ada".into(),
                })
            }
        };
        let before = cache.stats();
        let runs_before = runs.load(Ordering::SeqCst);
        let (_, outcome) = cache
            .get_or_load_traced(key, &options, None, |_| true, load())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Miss);
        let full = format!("chaos:corrupt:{key}");
        assert_eq!(server.cli(["SET", full.as_str(), "garbage"]).trim(), "OK");

        let (user, outcome) = cache
            .get_or_load_traced(key, &options, None, |_| true, load())
            .await
            .unwrap();
        assert_eq!(user.name, "Ada");
        assert_eq!(outcome, Outcome::Miss, "a corrupt value is a miss");
        assert_eq!(runs.load(Ordering::SeqCst), runs_before + 2);
        assert_eq!(cache.stats().decode_errors, before.decode_errors + 1);
        assert_eq!(
            server.cli(["GET", full.as_str()]).trim(),
            r#"{"id":1,"name":"Ada"}"#,
            "overwritten with the real value"
        );
        let (_, outcome) = cache
            .get_or_load_traced(key, &options, None, |_| true, load())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Hit);
    }
}
