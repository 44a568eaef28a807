//! Coalesced `#[cached]` calls whose body fails (`Err`), returns `None` or panics: the callers
//! that waited get the leader's outcome without running their own body, or (when it cannot be
//! rebuilt) run it one at a time, never together (issue 9, item 5). Both backends, the default
//! `fallback_on_error` and the strict one. Bounded in count and time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachette::{cached, CacheManager, ErrorKind};

use crate::support::Fixture;

const CALLERS: usize = 50;
const BODY: Duration = Duration::from_millis(200);

/// Counts body runs and the most bodies running at once.
#[derive(Default)]
struct Runs {
    total: AtomicUsize,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Runs {
    async fn run(&self, time: Duration) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(time).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
    fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// Clone: shared by clone.
#[derive(Debug, Clone, PartialEq)]
struct DbDown(String);

/// Not Clone, From<cachette::Error>: shared by conversion.
#[derive(Debug)]
enum AppError {
    Db(String),
    Cache(ErrorKind),
}

impl From<cachette::Error> for AppError {
    fn from(e: cachette::Error) -> Self {
        AppError::Cache(e.kind())
    }
}

/// Neither Clone nor From<cachette::Error>.
#[derive(Debug)]
struct Opaque;

#[cached(cache = cache, key = "err-clone", ttl = 60)]
async fn fails_clone(cache: &CacheManager, runs: &Runs) -> Result<String, DbDown> {
    runs.run(BODY).await;
    Err(DbDown("connection refused".to_owned()))
}

#[cached(cache = cache, key = "err-clone-strict", ttl = 60, fallback_on_error = false)]
async fn fails_clone_strict(cache: &CacheManager, runs: &Runs) -> Result<String, DbDownStrict> {
    runs.run(BODY).await;
    Err(DbDownStrict::Db)
}

#[derive(Debug, Clone, PartialEq)]
enum DbDownStrict {
    Db,
    Cache(ErrorKind),
}

impl From<cachette::Error> for DbDownStrict {
    fn from(e: cachette::Error) -> Self {
        DbDownStrict::Cache(e.kind())
    }
}

#[cached(cache = cache, key = "err-from", ttl = 60)]
async fn fails_from(cache: &CacheManager, runs: &Runs) -> Result<String, AppError> {
    runs.run(BODY).await;
    Err(AppError::Db("down".to_owned()))
}

#[cached(cache = cache, key = "err-opaque", ttl = 60)]
async fn fails_opaque(cache: &CacheManager, runs: &Runs) -> Result<String, Opaque> {
    runs.run(Duration::from_millis(10)).await;
    Err(Opaque)
}

#[cached(cache = cache, key = "none", ttl = 60)]
async fn finds_nothing(cache: &CacheManager, runs: &Runs) -> Option<String> {
    runs.run(BODY).await;
    None
}

#[cached(cache = cache, key = "panic-result", ttl = 60)]
async fn panics_result(cache: &CacheManager, runs: &Runs) -> Result<String, AppError> {
    runs.run(BODY).await;
    panic!("the body panicked")
}

#[cached(cache = cache, key = "panic-option", ttl = 60)]
async fn panics_option(cache: &CacheManager, runs: &Runs) -> Option<String> {
    runs.run(Duration::from_millis(10)).await;
    panic!("the body panicked")
}

/// Runs `n` concurrent calls of `f` and returns their outputs (`Err` for a panic), bounded.
async fn concurrently<T, F, Fut>(n: usize, f: F) -> Vec<Result<T, ()>>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        let joined = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("bounded");
        out.push(joined.map_err(|e| assert!(e.is_panic(), "{e}")));
    }
    out
}

async fn a_clone_error_is_shared_with_the_waiters(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(Runs::default());
    let out = concurrently(CALLERS, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { fails_clone(&cache, &runs).await }
    })
    .await;
    assert_eq!(runs.total(), 1, "the body runs once for {CALLERS} callers");
    for o in out {
        assert_eq!(o.unwrap(), Err(DbDown("connection refused".to_owned())));
    }
    // Strict: the same.
    let runs = Arc::new(Runs::default());
    let out = concurrently(CALLERS, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { fails_clone_strict(&cache, &runs).await }
    })
    .await;
    assert_eq!(runs.total(), 1);
    for o in out {
        assert_eq!(o.unwrap(), Err(DbDownStrict::Db));
    }
    assert_eq!(cache.loads_in_flight(), 0);
}

async fn an_error_is_converted_for_the_waiters(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(Runs::default());
    let out = concurrently(CALLERS, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { fails_from(&cache, &runs).await }
    })
    .await;
    assert_eq!(runs.total(), 1, "the body runs once for {CALLERS} callers");
    let (mut own, mut shared) = (0, 0);
    for o in out {
        match o.unwrap() {
            Err(AppError::Db(m)) if m == "down" => own += 1,
            Err(AppError::Cache(ErrorKind::Loader)) => shared += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((own, shared), (1, CALLERS - 1));
}

async fn an_opaque_error_runs_one_body_at_a_time(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(Runs::default());
    let out = concurrently(10, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { fails_opaque(&cache, &runs).await }
    })
    .await;
    assert!(out.iter().all(|o| matches!(o, Ok(Err(Opaque)))));
    assert!(runs.total() >= 1);
    assert_eq!(runs.most(), 1, "never two bodies of one key at once");
}

async fn none_is_shared_with_the_waiters(fx: &Fixture) {
    let cache = fx.fresh();
    let runs = Arc::new(Runs::default());
    let out = concurrently(CALLERS, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { finds_nothing(&cache, &runs).await }
    })
    .await;
    assert_eq!(runs.total(), 1, "the body runs once for {CALLERS} callers");
    assert!(out.into_iter().all(|o| o.unwrap().is_none()));
    assert_eq!(cache.get::<String>("none").await.unwrap(), None);
}

async fn a_panic_is_not_repeated_by_the_waiters(fx: &Fixture) {
    let cache = fx.fresh();
    // `E: From<cachette::Error>`: the waiters get an `ErrorKind::Loader` error.
    let runs = Arc::new(Runs::default());
    let out = concurrently(CALLERS, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { panics_result(&cache, &runs).await }
    })
    .await;
    assert_eq!(runs.total(), 1, "one panicking body for {CALLERS} callers");
    assert_eq!(
        out.iter().filter(|o| o.is_err()).count(),
        1,
        "the leader panics"
    );
    assert!(out
        .iter()
        .flatten()
        .all(|o| matches!(o, Err(AppError::Cache(ErrorKind::Loader)))));
    // `Option`: no error to give; the waiters run their bodies one at a time.
    let runs = Arc::new(Runs::default());
    let out = concurrently(10, || {
        let (cache, runs) = (cache.clone(), runs.clone());
        async move { panics_option(&cache, &runs).await }
    })
    .await;
    assert!(out.iter().all(Result::is_err));
    assert_eq!(runs.most(), 1, "never two bodies of one key at once");
    assert_eq!(cache.loads_in_flight(), 0);
}

per_backend!(
    a_clone_error_is_shared_with_the_waiters,
    an_error_is_converted_for_the_waiters,
    an_opaque_error_runs_one_body_at_a_time,
    none_is_shared_with_the_waiters,
    a_panic_is_not_repeated_by_the_waiters,
);
