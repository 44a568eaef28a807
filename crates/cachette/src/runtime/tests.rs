//! The runtime as plain Rust: read-through, write-through and eviction around hand-written
//! bodies, on the memory backend and on a backend whose reads or writes fail on demand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::backend::faulty::Faulty;
use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::{CacheManager, LoadOptions, Ttl};

static DEFAULTS: LoadOptions = LoadOptions::new();

/// The memory backend, with reads and/or writes failing while a switch is on.
fn flaky() -> (Arc<Faulty>, CacheManager) {
    let backend = Arc::new(Faulty::new());
    let manager = CacheManager::builder()
        .backend(backend.clone() as Arc<dyn Backend>)
        .build()
        .unwrap();
    (backend, manager)
}

#[derive(Debug, PartialEq)]
enum AppError {
    NotFound,
    Cache(ErrorKind),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Cache(e.kind())
    }
}

macro_rules! site {
    ($kind:ident) => {{
        static SITE: FnSite = FnSite::new(module_path!(), stringify!($kind), SiteKind::$kind);
        &SITE
    }};
}

fn call<'m>(site: &'static FnSite, manager: &'m CacheManager, key: &str) -> Call<'m> {
    let key = key.to_owned();
    static OPTIONS: LoadOptions = LoadOptions::new().with_ttl(Ttl::secs(60));
    Call::new(site, None, Some(manager), &OPTIONS, move || Ok(key))
}

/// A body that yields a few times before answering, counting its runs.
async fn body<T>(runs: &AtomicUsize, value: T) -> T {
    runs.fetch_add(1, Ordering::SeqCst);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    value
}

#[tokio::test]
async fn read_through_misses_then_hits() {
    let cache = CacheManager::memory();
    let site = site!(Cached);
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = cached_value(call(site, &cache, "k"), never, body(&runs, 7u32)).await;
        assert_eq!(v, 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = site.stats().stats;
    assert_eq!((stats.misses, stats.hits, stats.writes), (1, 2, 1));
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
}

#[tokio::test]
async fn only_ok_and_some_are_cached_and_unless_is_honoured() {
    let cache = CacheManager::memory();
    let runs = AtomicUsize::new(0);
    let site = site!(Cached);
    for _ in 0..2 {
        let r: std::result::Result<u8, AppError> = cached_result(
            call(site, &cache, "err"),
            never,
            body(&runs, Err(AppError::NotFound)),
        )
        .await;
        assert_eq!(r, Err(AppError::NotFound));
        let none = cached_option(call(site, &cache, "none"), never, body(&runs, None::<u8>)).await;
        assert_eq!(none, None);
        let big = cached_value(
            call(site, &cache, "big"),
            |v: &u8| *v > 100,
            body(&runs, 200u8),
        )
        .await;
        assert_eq!(big, 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 6);
    assert!(cache.keys("*").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_read_runs_the_body_or_returns_the_error() {
    let (backend, cache) = flaky();
    backend.fail_reads.store(true, Ordering::SeqCst);
    let runs = AtomicUsize::new(0);
    let site = site!(Cached);
    let ok: std::result::Result<u8, AppError> =
        cached_result(call(site, &cache, "k"), never, body(&runs, Ok(1))).await;
    assert_eq!(ok, Ok(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let strict: std::result::Result<u8, AppError> =
        cached_result_strict(call(site, &cache, "k"), never, body(&runs, Ok(1))).await;
    assert!(matches!(strict, Err(AppError::Cache(_))), "{strict:?}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the strict body did not run"
    );
    assert!(site.stats().stats.errors >= 2);
}

#[tokio::test]
async fn a_failed_write_still_returns_the_value() {
    let (backend, cache) = flaky();
    backend.fail_writes.store(true, Ordering::SeqCst);
    let runs = AtomicUsize::new(0);
    let site = site!(Cached);
    let value = cached_value(
        call(site, &cache, "k"),
        never,
        body(&runs, String::from("v")),
    )
    .await;
    assert_eq!(value, "v", "the value the body produced comes back");
    let strict: std::result::Result<String, AppError> = cached_result_strict(
        call(site, &cache, "k"),
        never,
        body(&runs, Ok(String::from("v"))),
    )
    .await;
    assert!(matches!(strict, Err(AppError::Cache(_))), "{strict:?}");
    backend.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
}

#[tokio::test]
async fn absent_or_disabled_managers_bypass_the_cache() {
    let site = site!(Cached);
    let runs = AtomicUsize::new(0);
    let c = Call::new(site, None, None, &DEFAULTS, || -> Result<String> {
        panic!("no key without a manager")
    });
    assert!(c.key().is_none());
    assert_eq!(cached_value(c, never, body(&runs, 1u8)).await, 1);
    let disabled = CacheManager::builder().enabled(false).build().unwrap();
    let c = Call::new(
        site,
        None,
        Some(&disabled),
        &DEFAULTS,
        || -> Result<String> { panic!("no key when disabled") },
    );
    assert_eq!(cached_value(c, never, body(&runs, 2u8)).await, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn write_through_always_runs_and_stores() {
    let (backend, cache) = flaky();
    let site = site!(Put);
    let runs = AtomicUsize::new(0);
    for v in [1u8, 2] {
        assert_eq!(
            put_value(call(site, &cache, "p"), never, body(&runs, v)).await,
            v
        );
    }
    assert_eq!(cache.get::<u8>("p").await.unwrap(), Some(2));
    assert_eq!(site.stats().stats.writes, 2);
    backend.fail_writes.store(true, Ordering::SeqCst);
    let lenient: std::result::Result<u8, AppError> =
        put_result(call(site, &cache, "p"), never, body(&runs, Ok(3))).await;
    assert_eq!(lenient, Ok(3));
    let strict: std::result::Result<u8, AppError> =
        put_result_strict(call(site, &cache, "p"), never, body(&runs, Ok(4))).await;
    assert!(matches!(strict, Err(AppError::Cache(_))));
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn eviction_before_after_and_on_failure() {
    let (backend, cache) = flaky();
    let site = site!(Evict);
    let seed = |keys: &'static [&'static str]| {
        let cache = cache.clone();
        async move {
            for k in keys {
                cache.set(k, &1, Ttl::Default).await.unwrap();
            }
        }
    };
    let plan = |p: &mut EvictPlan| {
        p.key("a".into()).pattern("b:*".into());
    };
    seed(&["a", "b:1", "b:2", "c"]).await;
    let after = Evict::new(site, None, Some(&cache), EvictWhen::new(false, false), plan);
    assert_eq!(after.plan().keys(), ["a"]);
    let r: std::result::Result<(), AppError> = evict_result(after, async { Ok(()) }).await;
    assert_eq!(r, Ok(()));
    assert_eq!(cache.keys("*").await.unwrap(), ["c"]);
    assert_eq!(site.stats().evicted, 3);

    // After an Err: nothing, unless `always`.
    seed(&["a"]).await;
    let e = Evict::new(site, None, Some(&cache), EvictWhen::new(false, false), plan);
    let r: std::result::Result<(), AppError> =
        evict_result(e, async { Err(AppError::NotFound) }).await;
    assert_eq!(r, Err(AppError::NotFound));
    assert!(cache.exists("a").await.unwrap());
    let e = Evict::new(site, None, Some(&cache), EvictWhen::new(false, true), plan);
    let _: std::result::Result<(), AppError> =
        evict_result(e, async { Err(AppError::NotFound) }).await;
    assert!(!cache.exists("a").await.unwrap());

    // Before: the body sees the cache without the key.
    seed(&["a"]).await;
    let e = Evict::new(site, None, Some(&cache), EvictWhen::new(true, false), plan);
    let seen = evict_value(e, async { cache.exists("a").await.unwrap() }).await;
    assert!(!seen);

    // A failing backend: ignored, or returned (and then a `before` body does not run).
    backend.fail_writes.store(true, Ordering::SeqCst);
    let e = Evict::new(site, None, Some(&cache), EvictWhen::new(false, false), plan);
    let r: std::result::Result<u8, AppError> = evict_result(e, async { Ok(1) }).await;
    assert_eq!(r, Ok(1));
    let ran = AtomicBool::new(false);
    let e = Evict::new(site, None, Some(&cache), EvictWhen::new(true, false), plan);
    let r: std::result::Result<u8, AppError> = evict_result_strict(e, async {
        ran.store(true, Ordering::SeqCst);
        Ok(1)
    })
    .await;
    assert!(matches!(r, Err(AppError::Cache(_))));
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn function_stats_are_listed_by_name() {
    let cache = CacheManager::memory();
    static SITE: FnSite = FnSite::new("my_app::users", "listed_fn", SiteKind::Cached);
    let c = Call::new(
        &SITE,
        Some(|| "UserService"),
        Some(&cache),
        &DEFAULTS,
        || Ok("listed".to_owned()),
    );
    cached_value(c, never, async { 1u8 }).await;
    let stats = function_stats_of("my_app::users::UserService::listed_fn").unwrap();
    assert_eq!(stats.kind, SiteKind::Cached);
    assert_eq!(stats.stats.misses, 1);
    assert!(function_stats()
        .iter()
        .any(|s| s.name == "my_app::users::UserService::listed_fn"));
}

/// Structural guard for the `#[cached]` hit path (see `manager::tests` for why sizes matter):
/// the miss path is boxed out of line, so a hit carries only the read.
#[tokio::test]
async fn the_cached_hit_future_stays_small() {
    static SITE: FnSite = FnSite::new(module_path!(), "probe", SiteKind::Cached);
    let cache = CacheManager::builder()
        .url("redis://127.0.0.1:1/")
        .build()
        .expect("builds lazily");
    static OPTIONS: crate::LoadOptions = crate::LoadOptions::new().with_ttl(Ttl::secs(60));
    let call = Call::new(&SITE, None, Some(&cache), &OPTIONS, || Ok("k".to_owned()));
    let cached = cached_value(call, |_: &u64| false, async { 1u64 });
    assert!(
        std::mem::size_of_val(&cached) <= 2560,
        "{}",
        std::mem::size_of_val(&cached)
    );
    let opts = crate::LoadOptions::ttl(Duration::from_secs(1));
    let load = cache.get_or_load("k", &opts, || async { Ok::<u64, std::io::Error>(1) });
    assert!(
        std::mem::size_of_val(&load) <= 2048,
        "{}",
        std::mem::size_of_val(&load)
    );
}

/// A body that never finishes in a test's time.
async fn hang<T>(runs: &AtomicUsize, value: T) -> T {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    value
}

#[tokio::test]
async fn a_hard_timeout_is_returned_on_every_path_of_the_bounded_variant() {
    static BOUNDED: LoadOptions = LoadOptions::new()
        .with_ttl(Ttl::secs(60))
        .hard_timeout(Duration::from_millis(50));
    let site = site!(Cached);
    let runs = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let timed_out =
        |r: std::result::Result<u8, AppError>| r == Err(AppError::Cache(ErrorKind::Timeout));

    // A miss: the manager drives the body and drops it at the limit.
    let cache = CacheManager::memory();
    let c = Call::new(site, None, Some(&cache), &BOUNDED, || Ok("k".to_owned()));
    assert!(timed_out(
        cached_result_bounded(c, never, hang(&runs, Ok(1))).await
    ));
    // The cache fails: the body runs uncached, still bounded.
    let (backend, flaky) = flaky();
    backend.fail_reads.store(true, Ordering::SeqCst);
    let c = Call::new(site, None, Some(&flaky), &BOUNDED, || Ok("k".to_owned()));
    assert!(timed_out(
        cached_result_bounded(c, never, hang(&runs, Ok(1))).await
    ));
    // The key cannot be built: uncached, bounded.
    let c = Call::new(site, None, Some(&cache), &BOUNDED, || {
        Err(Error::new(ErrorKind::Encode, "no key"))
    });
    assert!(timed_out(
        cached_result_bounded(c, never, hang(&runs, Ok(1))).await
    ));
    // The strict variant too.
    let c = Call::new(site, None, Some(&cache), &BOUNDED, || Ok("s".to_owned()));
    assert!(timed_out(
        cached_result_strict(c, never, hang(&runs, Ok(1))).await
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(site.stats().stats.loader_timeouts >= 4);

    // A body within the limit is cached as usual.
    let c = Call::new(site, None, Some(&cache), &BOUNDED, || Ok("fast".to_owned()));
    let r: std::result::Result<u8, AppError> =
        cached_result_bounded(c, never, body(&runs, Ok(7))).await;
    assert_eq!(r, Ok(7));
    assert_eq!(cache.get::<u8>("fast").await.unwrap(), Some(7));
}

#[tokio::test]
async fn the_runtime_function_decides_whether_cache_failures_fail_open() {
    // Options saying `fallback_on_error = false`, given to a fail-open function, and the
    // reverse: the function wins.
    static STRICT_OPTIONS: LoadOptions = LoadOptions::new().fallback_on_error(false);
    let (backend, cache) = flaky();
    backend.fail_reads.store(true, Ordering::SeqCst);
    let site = site!(Cached);
    let runs = AtomicUsize::new(0);
    let c = Call::new(site, None, Some(&cache), &STRICT_OPTIONS, || {
        Ok("k".to_owned())
    });
    let open: std::result::Result<u8, AppError> = cached_result(c, never, body(&runs, Ok(1))).await;
    assert_eq!(open, Ok(1));
    let c = Call::new(site, None, Some(&cache), &DEFAULTS, || Ok("k".to_owned()));
    let strict: std::result::Result<u8, AppError> =
        cached_result_strict(c, never, body(&runs, Ok(1))).await;
    assert!(matches!(strict, Err(AppError::Cache(_))), "{strict:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
