//! Stampede control: in-process coalescing, cross-process leases, early refresh, stale copies,
//! TTL jitter. Every test is bounded in count and time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{CacheManager, ErrorKind, LoadError, LoadOptions, Outcome, Ttl};
use cachette_test_support::RedisServer;

use crate::support::{lease_of, meta_of, unique_prefix, Fixture};

const LOADER_TIME: Duration = Duration::from_millis(50);

#[derive(Debug, PartialEq)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

/// `n` concurrent `get_or_load` calls of one key on `cache`; returns their results.
async fn stampede(
    cache: &CacheManager,
    key: &str,
    n: usize,
    options: LoadOptions,
    runs: &Arc<AtomicUsize>,
) -> Vec<Result<(String, Outcome), LoadError<Boom>>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            let key = key.to_owned();
            let options = options.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load_traced(
                        &key,
                        &options,
                        None,
                        |_| true,
                        || async move {
                            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(LOADER_TIME).await;
                            Ok::<_, Boom>(format!("value #{n}"))
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("no task panics"));
    }
    out
}

// ---- 1. in-process coalescing ----------------------------------------------------------------

async fn thousand_callers_run_the_loader_once(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let results = stampede(&cache, "hot", 1000, LoadOptions::ttl(Ttl::secs(60)), &runs).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the loader ran more than once"
    );
    let mut outcomes = std::collections::HashMap::new();
    for r in results {
        let (value, outcome) = r.expect("every caller gets the value");
        assert_eq!(value, "value #1");
        *outcomes.entry(format!("{outcome:?}")).or_insert(0) += 1;
    }
    assert_eq!(outcomes.get("Miss"), Some(&1), "{outcomes:?}");
    assert!(cache.stats().coalesced > 0, "{:?}", cache.stats());
    assert_eq!(cache.loads_in_flight(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

async fn without_coalescing_every_caller_loads(fx: &Fixture) {
    // The control for the test above: with coalescing off, concurrent misses all load.
    let cache = fx.fresh();
    let runs = Arc::new(AtomicUsize::new(0));
    let options = LoadOptions::ttl(Ttl::secs(60)).coalesce(false);
    let results = stampede(&cache, "hot", 50, options, &runs).await;
    assert!(results.iter().all(Result::is_ok));
    assert!(runs.load(Ordering::SeqCst) > 1);
}

async fn loader_error_reaches_every_waiter_and_the_next_call_retries(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("k", &LoadOptions::default(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOADER_TIME).await;
                        Err::<String, _>(Boom)
                    })
                    .await
            })
        })
        .collect();
    let (mut own, mut shared) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(LoadError::Loader(Boom)) => own += 1,
            Err(LoadError::Cache(e)) => {
                assert_eq!(e.kind(), ErrorKind::Loader, "{e}");
                shared += 1;
            }
            Ok(v) => panic!("unexpected value {v}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!((own, shared), (1, 99));
    assert_eq!(cache.loads_in_flight(), 0);
    let v: String = cache
        .get_or_load("k", &LoadOptions::default(), || async {
            Ok::<_, Boom>("ok".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(v, "ok");
}

async fn loader_panic_gives_waiters_an_error_and_the_next_call_retries(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("k", &LoadOptions::default(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOADER_TIME).await;
                        if true {
                            panic!("loader bug");
                        }
                        Ok::<String, Boom>(String::new())
                    })
                    .await
            })
        })
        .collect();
    let (mut panicked, mut errors) = (0, 0);
    for t in tasks {
        match t.await {
            Err(join) if join.is_panic() => panicked += 1,
            Ok(Err(LoadError::Cache(e))) if e.kind() == ErrorKind::Loader => errors += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        (panicked, errors),
        (1, 49),
        "the panic reaches its own caller only"
    );
    assert_eq!(cache.loads_in_flight(), 0);
    assert!(cache.stats().loader_errors >= 1);
    let v: String = cache
        .get_or_load("k", &LoadOptions::default(), || async {
            Ok::<_, Boom>("ok".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(v, "ok");
}

async fn cancelled_leader_hands_over_to_a_waiter(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(AtomicUsize::new(0));
    let slow = |runs: Arc<AtomicUsize>| {
        move || async move {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, Boom>(format!("value #{n}"))
        }
    };
    let leader = {
        let cache = cache.clone();
        let load = slow(runs.clone());
        tokio::spawn(async move { cache.get_or_load("k", &LoadOptions::default(), load).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            let load = slow(runs.clone());
            tokio::spawn(async move { cache.get_or_load("k", &LoadOptions::default(), load).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap(), "value #2");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "exactly one waiter took over"
    );
    assert_eq!(cache.loads_in_flight(), 0);
}

// ---- 2. cross-process coalescing ---------------------------------------------------------------

/// `managers` managers (each with its own connections), `per_manager` callers each.
async fn stampede_across_managers(
    managers: &[CacheManager],
    per_manager: usize,
    options: &LoadOptions,
    loader_time: Duration,
) -> (usize, Vec<String>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for cache in managers {
        for _ in 0..per_manager {
            let cache = cache.clone();
            let runs = runs.clone();
            let options = options.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load("shared-hot", &options, || async move {
                        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(loader_time).await;
                        Ok::<_, Boom>(format!("value #{n}"))
                    })
                    .await
            }));
        }
    }
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap().expect("every caller gets a value"));
    }
    (runs.load(Ordering::SeqCst), values)
}

async fn four_managers_two_hundred_callers_one_load(fx: &Fixture) {
    let prefix = unique_prefix("lock");
    let managers: Vec<_> = (0..4).map(|_| fx.manager(&prefix)).collect();
    // A long lease and re-check interval: waiters must be woken by the release message, not
    // by their own re-checks, to finish this fast.
    let options = LoadOptions::ttl(Ttl::secs(60))
        .lock(true)
        .lock_ttl(Duration::from_secs(30))
        .lock_wait(Duration::from_secs(10));
    let started = Instant::now();
    let (runs, values) =
        stampede_across_managers(&managers, 50, &options, Duration::from_millis(200)).await;
    let took = started.elapsed();
    assert_eq!(runs, 1, "one load across all managers");
    assert!(values.iter().all(|v| v == "value #1"), "{values:?}");
    assert!(
        took < Duration::from_millis(900),
        "waiters were not woken by the release (took {took:?})"
    );
    for m in &managers {
        assert_eq!(m.loads_in_flight(), 0);
    }
    // The lease is gone.
    assert!(!managers[0]
        .exists(&lease_of(&managers[0], "shared-hot"))
        .await
        .unwrap());
}

async fn lease_wait_is_bounded(fx: &Fixture) {
    let cache = fx.fresh();
    // Another process holds the lease and never finishes (it hangs; its lease would expire
    // after 30 s).
    cache
        .set_raw(
            &lease_of(&cache, "k"),
            "4242:somebody-else",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let options = LoadOptions::ttl(Ttl::secs(60))
        .lock(true)
        .lock_wait(Duration::from_millis(300));
    let started = Instant::now();
    let v: String = cache
        .get_or_load("k", &options, || async { Ok::<_, Boom>("mine".to_owned()) })
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        v, "mine",
        "after the wait, the caller computes the value itself"
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );

    // With a stale copy, the caller serves it instead.
    let options = LoadOptions::ttl(Duration::from_millis(200))
        .stale_ttl(Duration::from_secs(10))
        .lock(true)
        .lock_wait(Duration::from_millis(300));
    let _: String = cache
        .get_or_load("s", &options, || async { Ok::<_, Boom>("v1".to_owned()) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cache
        .set_raw(
            &lease_of(&cache, "s"),
            "4242:somebody-else",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let (v, outcome) = cache
        .get_or_load_traced(
            "s",
            &options,
            None,
            |_| true,
            || async { Ok::<_, Boom>("v2".to_owned()) },
        )
        .await
        .unwrap();
    assert_eq!((v.as_str(), outcome), ("v1", Outcome::Stale));
}

async fn without_lock_each_manager_loads_once(fx: &Fixture) {
    // The control: coalescing alone is per manager.
    let prefix = unique_prefix("nolock");
    let managers: Vec<_> = (0..4).map(|_| fx.manager(&prefix)).collect();
    let options = LoadOptions::ttl(Ttl::secs(60));
    let (runs, _) =
        stampede_across_managers(&managers, 50, &options, Duration::from_millis(200)).await;
    assert!(runs > 1, "{runs}");
}

// ---- 3. probabilistic early refresh ------------------------------------------------------------

async fn early_refresh_starts_before_expiry_and_never_overlaps(fx: &Fixture) {
    const KEYS: usize = 5;
    const CALLERS: usize = 4;
    const TTL: Duration = Duration::from_millis(800);
    const COMPUTE: Duration = Duration::from_millis(40);
    const RUN: Duration = Duration::from_millis(2000);
    // Two managers per key with a lease: refreshes must not overlap across managers either.
    let prefix = unique_prefix("xfetch");
    let managers = [fx.manager(&prefix), fx.manager(&prefix)];
    let options = LoadOptions::ttl(TTL).early_refresh(3.0).lock(true);

    #[derive(Default)]
    struct Key {
        inflight: AtomicUsize,
        max_inflight: AtomicUsize,
        /// (start, finish) of every loader run.
        runs: parking_lot::Mutex<Vec<(Instant, Instant)>>,
    }
    let keys: Arc<Vec<Key>> = Arc::new((0..KEYS).map(|_| Key::default()).collect());
    let deadline = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for k in 0..KEYS {
        for c in 0..CALLERS {
            let cache = managers[c % 2].clone();
            let keys = keys.clone();
            let options = options.clone();
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while Instant::now() < deadline {
                    let keys = keys.clone();
                    let started = Instant::now();
                    let (_, outcome) = cache
                        .get_or_load_traced(
                            &format!("k{k}"),
                            &options,
                            None,
                            |_| true,
                            || async move {
                                let key = &keys[k];
                                let start = Instant::now();
                                let now = key.inflight.fetch_add(1, Ordering::SeqCst) + 1;
                                key.max_inflight.fetch_max(now, Ordering::SeqCst);
                                tokio::time::sleep(COMPUTE).await;
                                key.inflight.fetch_sub(1, Ordering::SeqCst);
                                key.runs.lock().push((start, Instant::now()));
                                Ok::<_, Boom>(start.elapsed().as_micros() as u64)
                            },
                        )
                        .await
                        .unwrap();
                    seen.push((outcome, started.elapsed()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                seen
            }));
        }
    }
    let mut calls = Vec::new();
    for t in tasks {
        calls.extend(t.await.unwrap());
    }
    let count = |o: Outcome| calls.iter().filter(|(x, _)| *x == o).count();
    assert_eq!(
        count(Outcome::Miss),
        KEYS,
        "a value expired before its refresh: {:?}",
        managers[0].stats()
    );
    let mut refreshes = 0;
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            key.max_inflight.load(Ordering::SeqCst),
            1,
            "key {i}: refreshes overlapped"
        );
        let runs = key.runs.lock().clone();
        assert!(runs.len() >= 3, "key {i}: only {} loads", runs.len());
        for pair in runs.windows(2) {
            let ((_, finished), (next_start, _)) = (pair[0], pair[1]);
            // The value stored at `finished` expires at `finished + TTL` (a little later, in
            // fact: it is stored after the loader returns).
            assert!(
                next_start < finished + TTL,
                "key {i}: a refresh started after expiry"
            );
        }
        refreshes += runs.len() - 1;
    }
    assert_eq!(count(Outcome::Refreshed), refreshes);
    let early: u64 = managers.iter().map(|m| m.stats().early_refreshes).sum();
    assert_eq!(early as usize, refreshes);
    // Everyone else kept getting the cached value: no caller waited for a refresh, only for
    // the first fill of each key (by outcome, not by wall time, which a loaded machine skews).
    let waited = count(Outcome::Coalesced);
    assert!(
        waited < KEYS * CALLERS,
        "{waited} calls waited for a load, with {refreshes} refreshes"
    );
    assert_eq!(
        count(Outcome::Hit) + count(Outcome::Miss) + count(Outcome::Refreshed) + waited,
        calls.len(),
        "no other outcome"
    );
}

async fn without_early_refresh_values_expire_and_reload_on_a_miss(fx: &Fixture) {
    // The control: beta = 0 reloads only after expiry.
    let cache = fx.fresh();
    let options = LoadOptions::ttl(Duration::from_millis(150));
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(700);
    while Instant::now() < deadline {
        let (_, o) = cache
            .get_or_load_traced(
                "k",
                &options,
                None,
                |_| true,
                || async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, Boom>(1)
                },
            )
            .await
            .unwrap();
        outcomes.push(o);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(outcomes.iter().filter(|o| **o == Outcome::Miss).count() >= 3);
    assert!(!outcomes.contains(&Outcome::Refreshed));
}

async fn shared_variant_refreshes_early_in_the_background(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(AtomicUsize::new(0));
    // A slow first load makes the early-refresh window (compute time x beta) cover the TTL.
    let options = LoadOptions::ttl(Duration::from_secs(2)).early_refresh(20.0);
    let load = |runs: Arc<AtomicUsize>| {
        move || async move {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Boom>(n)
        }
    };
    let first: usize = cache
        .get_or_load_shared("k", &options, load(runs.clone()))
        .await
        .unwrap();
    assert_eq!(first, 1);
    for _ in 0..20 {
        let started = Instant::now();
        let v: usize = cache
            .get_or_load_shared("k", &options, load(runs.clone()))
            .await
            .unwrap();
        assert_eq!(v, 1, "callers get the cached value while the refresh runs");
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(cache.stats().early_refreshes >= 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one refresh at a time");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get::<usize>("k").await.unwrap(), Some(2));
}

// ---- 4. stale copies and loader timeouts --------------------------------------------------------

async fn stale_copy_is_served_when_the_loader_fails(fx: &Fixture) {
    let cache = fx.fresh();
    let options = LoadOptions::ttl(Duration::from_millis(200)).stale_ttl(Duration::from_secs(10));
    let v: String = cache
        .get_or_load("k", &options, || async { Ok::<_, Boom>("v1".to_owned()) })
        .await
        .unwrap();
    assert_eq!(v, "v1");
    // The value itself stays plain JSON; the metadata is a sibling key.
    assert_eq!(
        cache.get_raw("k").await.unwrap().unwrap().as_ref(),
        b"\"v1\""
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&cache.get_raw(&meta_of(&cache, "k")).await.unwrap().unwrap())
            .unwrap();
    assert_eq!(meta["v"], 1);
    assert!(meta["expires_at_ms"].as_u64().unwrap() > 0);
    assert_eq!(meta["value_xxh3"].as_str().unwrap().len(), 16);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (v, outcome) = cache
        .get_or_load_traced(
            "k",
            &options,
            None,
            |_| true,
            || async { Err::<String, _>(Boom) },
        )
        .await
        .unwrap();
    assert_eq!((v.as_str(), outcome), ("v1", Outcome::Stale));
    let stats = cache.stats();
    assert_eq!((stats.stale_served, stats.loader_errors), (1, 1));
    // A working loader replaces the stale copy.
    let (v, outcome) = cache
        .get_or_load_traced(
            "k",
            &options,
            None,
            |_| true,
            || async { Ok::<_, Boom>("v2".to_owned()) },
        )
        .await
        .unwrap();
    assert_eq!((v.as_str(), outcome), ("v2", Outcome::Miss));

    // The control: without stale_ttl the failure reaches the caller.
    let plain = LoadOptions::ttl(Duration::from_millis(200));
    let _: String = cache
        .get_or_load("p", &plain, || async { Ok::<_, Boom>("v1".to_owned()) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = cache
        .get_or_load("p", &plain, || async { Err::<String, _>(Boom) })
        .await;
    assert!(matches!(r, Err(LoadError::Loader(Boom))), "{r:?}");
}

async fn soft_timeout_serves_stale_to_waiters_while_the_reload_finishes(fx: &Fixture) {
    let cache = fx.fresh();
    let options = LoadOptions::ttl(Duration::from_millis(200))
        .stale_ttl(Duration::from_secs(10))
        .soft_timeout(Duration::from_millis(100));
    let _: String = cache
        .get_or_load("k", &options, || async { Ok::<_, Boom>("v1".to_owned()) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, Boom>("v2".to_owned())
    };
    let leader = {
        let cache = cache.clone();
        let options = options.clone();
        tokio::spawn(async move {
            cache
                .get_or_load_traced("k", &options, None, |_| true, slow)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            let options = options.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = cache
                    .get_or_load_traced("k", &options, None, |_| true, slow)
                    .await;
                (r, started.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (r, took) = w.await.unwrap();
        let (v, outcome) = r.unwrap();
        assert_eq!((v.as_str(), outcome), ("v1", Outcome::Stale));
        assert!(took < Duration::from_millis(350), "{took:?}");
    }
    // The leader's reload finished and was stored.
    let (v, outcome) = leader.await.unwrap().unwrap();
    assert_eq!((v.as_str(), outcome), ("v2", Outcome::Miss));
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v2")
    );
}

async fn hard_timeout_gives_up_or_serves_stale(fx: &Fixture) {
    let cache = fx.fresh();
    let hang = || async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok::<_, Boom>("never".to_owned())
    };
    let options =
        LoadOptions::ttl(Duration::from_millis(200)).hard_timeout(Duration::from_millis(150));
    let started = Instant::now();
    match cache.get_or_load("a", &options, hang).await {
        Err(LoadError::Cache(e)) => assert!(e.is_timeout(), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    let options = options.stale_ttl(Duration::from_secs(10));
    let _: String = cache
        .get_or_load("b", &options, || async { Ok::<_, Boom>("v1".to_owned()) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (v, outcome) = cache
        .get_or_load_traced("b", &options, None, |_| true, hang)
        .await
        .unwrap();
    assert_eq!((v.as_str(), outcome), ("v1", Outcome::Stale));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(cache.stats().loader_timeouts, 2);
}

async fn shared_variant_serves_stale_at_the_soft_timeout_and_finishes_in_background(fx: &Fixture) {
    let cache = fx.fresh();
    let options = LoadOptions::ttl(Duration::from_millis(200))
        .stale_ttl(Duration::from_secs(10))
        .soft_timeout(Duration::from_millis(100));
    let _: String = cache
        .get_or_load_shared("k", &options, || async { Ok::<_, Boom>("v1".to_owned()) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let v: String = cache
        .get_or_load_shared("k", &options, || async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok::<_, Boom>("v2".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(v, "v1");
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cache.stats().stale_served, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v2")
    );
}

// ---- 6. TTL jitter -----------------------------------------------------------------------------

async fn ttl_jitter_spreads_expiries(fx: &Fixture) {
    let cache = fx.fresh();
    let ttl = Duration::from_secs(100);
    let spread = |options: LoadOptions, tag: &'static str| {
        let cache = cache.clone();
        async move {
            let mut ttls = Vec::new();
            for i in 0..100 {
                let key = format!("{tag}{i}");
                let _: u32 = cache
                    .get_or_load(&key, &options, || async { Ok::<_, Boom>(1) })
                    .await
                    .unwrap();
                ttls.push(cache.ttl(&key).await.unwrap().remaining().unwrap());
            }
            ttls
        }
    };
    let jittered = spread(LoadOptions::ttl(ttl).jitter_percent(20), "j").await;
    assert!(
        jittered
            .iter()
            .all(|t| *t <= ttl && *t >= Duration::from_secs(79)),
        "{jittered:?}"
    );
    let (min, max) = (
        jittered.iter().min().unwrap(),
        jittered.iter().max().unwrap(),
    );
    assert!(*max - *min > Duration::from_secs(10), "{min:?}..{max:?}");
    // The control: without jitter, keys written together expire together.
    let plain = spread(LoadOptions::ttl(ttl), "p").await;
    let (min, max) = (plain.iter().min().unwrap(), plain.iter().max().unwrap());
    assert!(*max - *min < Duration::from_secs(2), "{min:?}..{max:?}");
}

per_backend!(
    thousand_callers_run_the_loader_once,
    without_coalescing_every_caller_loads,
    loader_error_reaches_every_waiter_and_the_next_call_retries,
    loader_panic_gives_waiters_an_error_and_the_next_call_retries,
    cancelled_leader_hands_over_to_a_waiter,
    four_managers_two_hundred_callers_one_load,
    without_lock_each_manager_loads_once,
    lease_wait_is_bounded,
    early_refresh_starts_before_expiry_and_never_overlaps,
    without_early_refresh_values_expire_and_reload_on_a_miss,
    shared_variant_refreshes_early_in_the_background,
    stale_copy_is_served_when_the_loader_fails,
    soft_timeout_serves_stale_to_waiters_while_the_reload_finishes,
    hard_timeout_gives_up_or_serves_stale,
    shared_variant_serves_stale_at_the_soft_timeout_and_finishes_in_background,
    ttl_jitter_spreads_expiries,
);

// The lease as a least-privilege ACL user (`cachette::acl::rules` with `Feature::Lease`):
// wake-ups must arrive through its channel, within the time the scenario allows.
on_backend!(
    redis_acl => crate::support::Fixture::acl();
    four_managers_two_hundred_callers_one_load,
    lease_wait_is_bounded,
    early_refresh_starts_before_expiry_and_never_overlaps,
    stale_copy_is_served_when_the_loader_fails,
);

// Cross-process coalescing, early refresh and stale copies on the shared cluster.
on_backend!(
    cluster => crate::support::Fixture::cluster();
    four_managers_two_hundred_callers_one_load,
    lease_wait_is_bounded,
    early_refresh_starts_before_expiry_and_never_overlaps,
    stale_copy_is_served_when_the_loader_fails,
    soft_timeout_serves_stale_to_waiters_while_the_reload_finishes,
);

// ---- 2b. separate OS processes -----------------------------------------------------------------

/// Set in the child processes of `separate_processes_run_the_loader_once`:
/// `{url}|{prefix}|{start at, Unix ms}`.
const CHILD_ENV: &str = "CACHETTE_STAMPEDE_CHILD";
const CHILD_TEST: &str = "stampede::lease_child_process";
const PROCESSES: usize = 4;
const CALLERS_PER_PROCESS: usize = 50;

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Not a test by itself: the body of one child process of
/// `separate_processes_run_the_loader_once` (returns at once when run normally).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (url, prefix, start_at) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<u64>().unwrap(),
    );
    let cache = CacheManager::builder()
        .url(url)
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let options = LoadOptions::ttl(Ttl::secs(60))
        .lock(true)
        .lock_ttl(Duration::from_secs(30));
    assert!(cache.ping().await);
    // Everyone starts together.
    tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(unix_ms()))).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS_PER_PROCESS)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            let options = options.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load_traced(
                        "cross-process",
                        &options,
                        None,
                        |_| true,
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            Ok::<_, Boom>(format!("loaded by process {}", std::process::id()))
                        },
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut values = std::collections::BTreeSet::new();
    let mut outcomes = std::collections::BTreeMap::new();
    for t in tasks {
        let (value, outcome) = t.await.unwrap();
        values.insert(value);
        *outcomes.entry(format!("{outcome:?}")).or_insert(0) += 1;
    }
    println!(
        "\nCHILD runs={} miss={} values={}",
        runs.load(Ordering::SeqCst),
        outcomes.get("Miss").copied().unwrap_or(0),
        values.into_iter().collect::<Vec<_>>().join(",")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_run_the_loader_once() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let server = RedisServer::new();
    let prefix = unique_prefix("procs");
    // Far enough ahead for every child to be connected and waiting.
    let start_at = unix_ms() + 1500;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads", "1"])
                .env(
                    CHILD_ENV,
                    format!("{}|{}|{}", server.url(), prefix, start_at),
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("re-run the test binary")
        })
        .collect();
    let (mut runs, mut misses, mut values) = (0, 0, std::collections::BTreeSet::new());
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("child finished in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no result line in {stdout}"));
        for field in line.split(' ') {
            match field.split_once('=') {
                Some(("runs", n)) => runs += n.parse::<usize>().unwrap(),
                Some(("miss", n)) => misses += n.parse::<usize>().unwrap(),
                Some(("values", v)) => values.extend(v.split(',').map(str::to_owned)),
                _ => {}
            }
        }
    }
    assert_eq!(
        runs, 1,
        "{PROCESSES} processes x {CALLERS_PER_PROCESS} callers ran the loader {runs} times"
    );
    assert_eq!(misses, 1);
    assert_eq!(values.len(), 1, "everyone got the same value: {values:?}");
}
