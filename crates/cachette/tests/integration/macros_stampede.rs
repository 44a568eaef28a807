//! The stampede and resilience options of `#[cached]` (`lock`, `lock_ttl`, `lock_wait`,
//! `early_refresh`, `stale_ttl`, `soft_timeout`, `hard_timeout`, `jitter`, `coalesce`) on
//! both backends: each test drives a decorated function and checks the behaviour the option
//! promises, against a control where that makes the assertion meaningful. Every loop is
//! bounded and every wait has a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachette::{cached, CacheManager, ErrorKind};
use tokio::sync::Barrier;

use crate::support::{lease_of, meta_of, unique_prefix, Fixture};

#[derive(Debug, PartialEq)]
struct Boom;

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(ErrorKind),
}

impl From<cachette::Error> for AppError {
    fn from(e: cachette::Error) -> Self {
        AppError::Cache(e.kind())
    }
}

/// Waits (at most 5 s) until `counter` reaches `n`.
async fn wait_for(counter: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "timed out waiting for {n}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---- lock, lock_ttl, lock_wait -----------------------------------------------------------------

const LOCKED_BODY: Duration = Duration::from_millis(300);

#[cached(
    cache = cache,
    key = "hot",
    ttl = 60,
    lock = true,
    lock_ttl = 30,
    lock_wait = 10
)]
async fn locked(cache: &CacheManager, runs: &AtomicUsize) -> String {
    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(LOCKED_BODY).await;
    format!("value #{n}")
}

async fn lock_runs_the_body_once_across_managers(fx: &Fixture) {
    // Two managers with their own connections on one server (or one memory backend): the
    // in-process coalescing alone would run the body once per manager.
    let prefix = unique_prefix("mlock");
    let managers = [fx.manager(&prefix), fx.manager(&prefix)];
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for cache in &managers {
        for _ in 0..20 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move { locked(&cache, &runs).await }));
        }
    }
    // While the body runs, the lease is held with `lock_ttl = 30` (the default is 10 s).
    wait_for(&runs, 1).await;
    let lease = managers[0]
        .ttl(&lease_of(&managers[0], "hot"))
        .await
        .unwrap()
        .remaining();
    assert!(
        lease.is_some_and(|t| t > Duration::from_secs(10) && t <= Duration::from_secs(30)),
        "lease TTL {lease:?}"
    );
    for t in tasks {
        assert_eq!(t.await.unwrap(), "value #1");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one body run for 40 callers"
    );
    assert!(
        !managers[0]
            .exists(&lease_of(&managers[0], "hot"))
            .await
            .unwrap(),
        "lease released"
    );
    for m in &managers {
        assert_eq!(m.loads_in_flight(), 0);
    }
}

#[cached(
    cache = cache,
    key = "held",
    ttl = 60,
    lock = true,
    lock_wait = Duration::from_millis(300)
)]
async fn wait_for_lease(cache: &CacheManager) -> String {
    "mine".to_owned()
}

async fn lock_wait_bounds_the_wait_for_another_process(fx: &Fixture) {
    let cache = fx.fresh();
    // Another process holds the lease and hangs (its lease would last 30 s).
    cache
        .set_raw(
            &lease_of(&cache, "held"),
            "4242:somebody-else",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(wait_for_lease(&cache).await, "mine");
    let took = started.elapsed();
    // The default `lock_wait` is 5 s.
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

// ---- stale_ttl ---------------------------------------------------------------------------------

#[cached(
    cache = cache,
    key = "stale",
    ttl = Duration::from_millis(200),
    stale_ttl = 10
)]
async fn flaky(cache: &CacheManager, fail: bool, version: u32) -> Result<String, Boom> {
    if fail {
        Err(Boom)
    } else {
        Ok(format!("v{version}"))
    }
}

#[cached(
    cache = cache,
    key = "stale-option",
    ttl = Duration::from_millis(200),
    stale_ttl = 10
)]
async fn flaky_option(cache: &CacheManager, version: Option<u32>) -> Option<String> {
    version.map(|v| format!("v{v}"))
}

async fn stale_ttl_serves_the_stale_value_when_the_body_fails(fx: &Fixture) {
    let cache = fx.fresh();
    assert_eq!(flaky(&cache, false, 1).await, Ok("v1".to_owned()));
    assert_eq!(flaky_option(&cache, Some(1)).await.as_deref(), Some("v1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired: the body runs and fails, the stale copy is served.
    assert_eq!(flaky(&cache, true, 2).await, Ok("v1".to_owned()));
    assert_eq!(flaky_option(&cache, None).await.as_deref(), Some("v1"));
    assert_eq!(cache.stats().stale_served, 2);
    // A working body replaces it.
    assert_eq!(flaky(&cache, false, 3).await, Ok("v3".to_owned()));
    assert_eq!(
        flaky(&cache, true, 4).await,
        Ok("v3".to_owned()),
        "a fresh hit"
    );
}

// ---- soft_timeout ------------------------------------------------------------------------------

const SLOW_BODY: Duration = Duration::from_millis(1500);

#[cached(
    cache = cache,
    key = "soft",
    ttl = Duration::from_millis(200),
    stale_ttl = 10,
    soft_timeout = Duration::from_millis(100)
)]
async fn slow(
    cache: &CacheManager,
    started: &AtomicUsize,
    version: u32,
    delay: Duration,
) -> Result<String, Boom> {
    started.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(delay).await;
    Ok(format!("v{version}"))
}

async fn soft_timeout_serves_stale_while_a_slow_body_runs(fx: &Fixture) {
    let cache = fx.fresh();
    let started = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        slow(&cache, &started, 1, Duration::ZERO).await,
        Ok("v1".to_owned())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The value is stale: one caller reloads it with a slow body...
    let leader = {
        let (cache, started) = (cache.clone(), started.clone());
        tokio::spawn(async move { slow(&cache, &started, 2, SLOW_BODY).await })
    };
    wait_for(&started, 2).await;
    // ...and the callers arriving meanwhile get the stale copy at the soft timeout instead of
    // waiting for it (they would get "v2" after ~1.5 s).
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let (cache, started) = (cache.clone(), started.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                (slow(&cache, &started, 3, SLOW_BODY).await, t.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (value, took) = w.await.unwrap();
        assert_eq!(value, Ok("v1".to_owned()));
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    assert_eq!(started.load(Ordering::SeqCst), 2, "the waiters ran no body");
    // The reload finished and was stored.
    assert_eq!(leader.await.unwrap(), Ok("v2".to_owned()));
    assert_eq!(
        cache.get::<String>("soft").await.unwrap().as_deref(),
        Some("v2")
    );
}

// ---- hard_timeout ------------------------------------------------------------------------------

const HANG: Duration = Duration::from_secs(4);
const HARD: Duration = Duration::from_millis(200);

/// Fails open on cache errors (the default), yet the hard timeout bounds the call.
#[cached(cache = cache, key = "hard", hard_timeout = HARD)]
async fn hang(cache: &CacheManager, runs: &AtomicUsize) -> Result<String, AppError> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(HANG).await;
    Ok("never".to_owned())
}

#[cached(
    cache = cache,
    key = "hard-strict",
    hard_timeout = HARD,
    fallback_on_error = false
)]
async fn hang_strict(cache: &CacheManager) -> Result<String, AppError> {
    tokio::time::sleep(HANG).await;
    Ok("never".to_owned())
}

/// In whole seconds: the options are a static.
#[cached(cache = cache, key = "hard-secs", hard_timeout = 1)]
async fn hang_secs(cache: &CacheManager) -> Result<String, AppError> {
    tokio::time::sleep(HANG).await;
    Ok("never".to_owned())
}

#[cached(
    cache = cache,
    key = "hard-stale",
    ttl = Duration::from_millis(200),
    stale_ttl = 10,
    hard_timeout = HARD
)]
async fn hang_or_not(cache: &CacheManager, hang: bool) -> Result<String, AppError> {
    if hang {
        tokio::time::sleep(HANG).await;
    }
    Ok("v1".to_owned())
}

/// Runs `call`, returning its output and how long it took.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = call.await;
    (out, started.elapsed())
}

async fn hard_timeout_bounds_the_call(fx: &Fixture) {
    let cache = fx.fresh();
    let timed_out = Err(AppError::Cache(ErrorKind::Timeout));
    // Well under the body's 4 s, with room for a loaded machine.
    let bound = Duration::from_millis(1500);

    // Concurrent callers: the one running the body is cut at the hard timeout, the others get
    // its timeout instead of running their own.
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move { timed(hang(&cache, &runs)).await })
        })
        .collect();
    for c in callers {
        let (out, took) = c.await.unwrap();
        assert_eq!(out, timed_out);
        assert!(took < bound, "{took:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let (out, took) = timed(hang(&cache, &runs)).await;
    assert_eq!(out, timed_out, "nothing was cached");
    assert!(
        took >= HARD - Duration::from_millis(10) && took < bound,
        "{took:?}"
    );

    let (out, took) = timed(hang_strict(&cache)).await;
    assert_eq!(out, timed_out);
    assert!(took < bound, "{took:?}");

    let (out, took) = timed(hang_secs(&cache)).await;
    assert_eq!(out, timed_out);
    assert!(
        took >= Duration::from_millis(990) && took < Duration::from_millis(2500),
        "{took:?}"
    );

    // With a stale copy, the copy is served at the hard timeout.
    assert_eq!(hang_or_not(&cache, false).await, Ok("v1".to_owned()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (out, took) = timed(hang_or_not(&cache, true)).await;
    assert_eq!(out, Ok("v1".to_owned()));
    assert!(took < bound, "{took:?}");
    assert!(cache.stats().loader_timeouts >= 4, "{:?}", cache.stats());
}

// ---- early_refresh -----------------------------------------------------------------------------

/// A factor so large that any call after the first load refreshes (XFetch refreshes when
/// `now - compute * beta * ln(u) >= expiry`: with a 20 ms body the window is ~2e4 s times
/// `-ln(u)`, against a 5 s TTL, so a call keeps the cached value with probability ~2.5e-4).
#[cached(cache = cache, key = "early", ttl = 5, early_refresh = 1000000.0)]
async fn early(cache: &CacheManager, runs: &AtomicUsize) -> usize {
    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    n
}

async fn early_refresh_refreshes_before_expiry(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = AtomicUsize::new(0);
    let stored_at = Instant::now();
    assert_eq!(early(&cache, &runs).await, 1);
    // Well within the 5 s TTL, a call refreshes the value (a plain TTL would keep returning 1).
    let mut seen = Vec::new();
    for _ in 0..10 {
        let v = early(&cache, &runs).await;
        seen.push(v);
        if v >= 2 {
            break;
        }
    }
    assert!(seen.contains(&2), "no early refresh: {seen:?}");
    assert!(stored_at.elapsed() < Duration::from_secs(4));
    assert!(cache.stats().early_refreshes >= 1, "{:?}", cache.stats());
    // The refreshed value was stored, with metadata beside it.
    assert!(cache.get::<usize>("early").await.unwrap() >= Some(2));
    assert!(cache.exists(&meta_of(&cache, "early")).await.unwrap());
}

// ---- coalesce ----------------------------------------------------------------------------------

const CALLERS: usize = 8;

/// Each run waits until `CALLERS` runs are in progress (or 2 s): with coalescing off every
/// concurrent caller runs the body, so they all meet; with it on, one would wait alone.
#[cached(cache = cache, key = "solo", ttl = 60, coalesce = false)]
async fn uncoalesced(cache: &CacheManager, barrier: &Barrier, runs: &AtomicUsize) -> usize {
    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = tokio::time::timeout(Duration::from_secs(2), barrier.wait()).await;
    n
}

/// The control: the default (coalescing on).
#[cached(cache = cache, key = "shared", ttl = 60)]
async fn coalesced(cache: &CacheManager, barrier: &Barrier, runs: &AtomicUsize) -> usize {
    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = tokio::time::timeout(Duration::from_millis(300), barrier.wait()).await;
    n
}

async fn coalesce_false_lets_every_caller_run_the_body(fx: &Fixture) {
    let cache = fx.fresh();
    for off in [true, false] {
        let barrier = Arc::new(Barrier::new(CALLERS));
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (cache, barrier, runs) = (cache.clone(), barrier.clone(), runs.clone());
                tokio::spawn(async move {
                    if off {
                        uncoalesced(&cache, &barrier, &runs).await
                    } else {
                        coalesced(&cache, &barrier, &runs).await
                    }
                })
            })
            .collect();
        let started = Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        let runs = runs.load(Ordering::SeqCst);
        if off {
            assert_eq!(runs, CALLERS, "every caller ran the body");
            assert!(started.elapsed() < Duration::from_millis(1900), "they met");
        } else {
            assert_eq!(runs, 1, "the control: coalesced");
        }
    }
}

// ---- jitter ------------------------------------------------------------------------------------

#[cached(cache = cache, key = "j:{i}", ttl = 100, jitter = 20)]
async fn jittered(cache: &CacheManager, i: u32) -> u32 {
    i
}

#[cached(cache = cache, key = "p:{i}", ttl = 100)]
async fn plain(cache: &CacheManager, i: u32) -> u32 {
    i
}

async fn jitter_keeps_ttls_within_bounds(fx: &Fixture) {
    let cache = fx.fresh();
    let mut jitter_ttls = Vec::new();
    let mut plain_ttls = Vec::new();
    for i in 0..50 {
        jittered(&cache, i).await;
        plain(&cache, i).await;
        for (key, ttls) in [
            (format!("j:{i}"), &mut jitter_ttls),
            (format!("p:{i}"), &mut plain_ttls),
        ] {
            ttls.push(cache.ttl(&key).await.unwrap().remaining().unwrap());
        }
    }
    let spread = |ttls: &[Duration]| *ttls.iter().max().unwrap() - *ttls.iter().min().unwrap();
    assert!(
        jitter_ttls
            .iter()
            .all(|t| *t <= Duration::from_secs(100) && *t >= Duration::from_secs(79)),
        "{jitter_ttls:?}"
    );
    assert!(
        spread(&jitter_ttls) > Duration::from_secs(5),
        "{jitter_ttls:?}"
    );
    // The control: without jitter, keys written together expire together.
    assert!(
        spread(&plain_ttls) < Duration::from_secs(2),
        "{plain_ttls:?}"
    );
}

per_backend!(
    lock_runs_the_body_once_across_managers,
    lock_wait_bounds_the_wait_for_another_process,
    stale_ttl_serves_the_stale_value_when_the_body_fails,
    soft_timeout_serves_stale_while_a_slow_body_runs,
    hard_timeout_bounds_the_call,
    early_refresh_refreshes_before_expiry,
    coalesce_false_lets_every_caller_run_the_body,
    jitter_keeps_ttls_within_bounds,
);

on_backend!(
    cluster => crate::support::Fixture::cluster();
    lock_runs_the_body_once_across_managers,
    lock_wait_bounds_the_wait_for_another_process,
    stale_ttl_serves_the_stale_value_when_the_body_fails,
    early_refresh_refreshes_before_expiry,
);
