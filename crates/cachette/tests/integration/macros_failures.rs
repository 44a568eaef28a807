//! `fallback_on_error` in the macros: a cache that is down (a killed `redis-server`) or a key
//! that cannot be built makes decorated functions run uncached by default, and return the
//! cache error through their own error type with `fallback_on_error = false`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachette::{cache_evict, cache_put, cached, CacheManager, ErrorKind};
use cachette_test_support::RedisServer;
use serde::{Serialize, Serializer};

use crate::macros::DbError;

const TIMEOUT: Duration = Duration::from_millis(300);

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = cache, skip(cache), ttl = 60)]
async fn lenient(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(id)
}

#[cached(cache = cache, skip(cache), ttl = 60, fallback_on_error = false)]
async fn strict(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[cached(cache = cache, skip(cache), ttl = 60)]
async fn plain(cache: &CacheManager, id: u64) -> u64 {
    id * 2
}

#[cache_evict(cache = cache, key = "user:{id}")]
async fn evict_lenient(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[cache_evict(cache = cache, key = "user:{id}", fallback_on_error = false)]
async fn evict_strict(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[cache_evict(cache = cache, key = "user:{id}", before = true, fallback_on_error = false)]
async fn evict_strict_before(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    RUNS.fetch_add(1000, Ordering::SeqCst);
    Ok(id)
}

#[cache_put(cache = cache, key = "user:{id}", fallback_on_error = false)]
async fn put_strict(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[cache_put(cache = cache, key = "user:{id}")]
async fn put_lenient(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

fn is_down(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Cache(ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::CircuitOpen)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_runs_functions_uncached_or_returns_the_error() {
    let server = RedisServer::new();
    let cache = CacheManager::builder()
        .url(server.url())
        .key_prefix(crate::support::unique_prefix("down"))
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .unwrap();
    assert_eq!(lenient(&cache, 1).await, Ok(1));
    server.kill();

    let started = Instant::now();
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(lenient(&cache, 2).await, Ok(2), "fail open: runs uncached");
    assert_eq!(RUNS.load(Ordering::SeqCst), before + 1);
    assert_eq!(plain(&cache, 2).await, 4);
    let e = strict(&cache, 2).await.unwrap_err();
    assert!(is_down(&e), "{e:?}");
    assert_eq!(evict_lenient(&cache, 2).await, Ok(2));
    assert!(is_down(&evict_strict(&cache, 2).await.unwrap_err()));
    let runs = RUNS.load(Ordering::SeqCst);
    assert!(is_down(&evict_strict_before(&cache, 2).await.unwrap_err()));
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        runs,
        "the body does not run after a failed eviction before it"
    );
    assert_eq!(put_lenient(&cache, 2).await, Ok(2));
    assert!(is_down(&put_strict(&cache, 2).await.unwrap_err()));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "every call is bounded by the command timeout: {:?}",
        started.elapsed()
    );
    let stats = cachette::runtime::function_stats_of(&format!("{}::lenient", module_path!()))
        .unwrap()
        .stats;
    assert!(stats.errors >= 1, "{stats:?}");

    // Back up: caching resumes on the same manager.
    server.restart();
    let mut cached_again = false;
    for _ in 0..50 {
        if put_strict(&cache, 3).await.is_ok() {
            cached_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cached_again, "the manager reconnects");
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(lenient(&cache, 3).await, Ok(3));
    assert_eq!(lenient(&cache, 3).await, Ok(3));
    assert_eq!(RUNS.load(Ordering::SeqCst), before + 1);
}

/// An argument whose `Serialize` fails at run time: the key cannot be built.
struct Unhashable;

impl Serialize for Unhashable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not today"))
    }
}

#[cached(cache = cache, skip(cache))]
async fn with_unhashable(cache: &CacheManager, arg: Unhashable) -> Result<u8, DbError> {
    let _ = arg;
    Ok(1)
}

#[cached(cache = cache, skip(cache), fallback_on_error = false)]
async fn with_unhashable_strict(cache: &CacheManager, arg: Unhashable) -> Result<u8, DbError> {
    let _ = arg;
    Ok(1)
}

#[tokio::test]
async fn a_key_that_cannot_be_built_runs_uncached_or_fails() {
    let cache = CacheManager::memory();
    assert_eq!(with_unhashable(&cache, Unhashable).await, Ok(1));
    assert_eq!(
        with_unhashable_strict(&cache, Unhashable).await,
        Err(DbError::Cache(ErrorKind::Encode))
    );
    assert!(cache.keys("*").await.unwrap().is_empty());
    assert_eq!(cache.stats().errors, 2);
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = cache, skip(cache), fallback_on_error = false)]
async fn slow_failure(cache: &CacheManager, id: u64) -> Result<u64, DbError> {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(DbError::NotFound(id))
}

/// Concurrent calls of one key are coalesced by the manager; when the call they waited for
/// fails, the others do not run the body again: `DbError` is not `Clone`, so they get
/// `DbError::from` an `ErrorKind::Loader` error (issue 9, item 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_a_failing_function_get_its_error() {
    let cache = CacheManager::memory();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { slow_failure(&cache, 5).await })
        })
        .collect();
    let mut own = 0;
    for call in calls {
        match call.await.unwrap() {
            Err(DbError::NotFound(5)) => own += 1,
            Err(DbError::Cache(ErrorKind::Loader)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(own, 1, "one caller ran the body and got its own error");
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    assert!(cache.keys("*").await.unwrap().is_empty());
}
