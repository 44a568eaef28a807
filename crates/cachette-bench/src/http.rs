//! The HTTP cache (`cachette-http`, issue 14): a hit through the layer beside the same axum
//! handler without it, on memory and on Redis, in process (the overhead of the layer, without
//! a network in between); and 1000 concurrent misses of one URL, counting handler runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use cachette::CacheManager;
use cachette_http::HttpCache;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{compare, op, Plan, Row};

/// A small JSON body, like the other rows' value.
const BODY: &str = r#"{"id":42,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","author"],"active":true,"score":98.5}"#;

fn app(cache: Option<&CacheManager>, runs: Arc<AtomicU64>, delay: Duration) -> Router {
    let router = Router::new().route(
        "/profile",
        get(move || {
            runs.fetch_add(1, Ordering::Relaxed);
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                ([("content-type", "application/json")], BODY)
            }
        }),
    );
    match cache {
        Some(cache) => router.layer(HttpCache::new(cache.clone()).ttl(Duration::from_secs(3600))),
        None => router,
    }
}

async fn call(router: Router) -> bool {
    let req = http::Request::get("/profile")
        .header("host", "bench.local")
        .body(Body::empty())
        .expect("request");
    let resp = router.oneshot(req).await.expect("infallible");
    let hit = resp.headers().get("x-cache").is_some_and(|v| v == "HIT");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    std::hint::black_box(body);
    hit
}

fn request_op(router: Router) -> crate::Op {
    op(move || {
        let router = router.clone();
        async move {
            call(router).await;
        }
    })
}

/// 1000 concurrent misses of one URL (the handler takes 50 ms): handler runs and wall time.
async fn stampede(cache: &CacheManager) -> (u64, Duration, usize) {
    let runs = Arc::new(AtomicU64::new(0));
    let router = app(Some(cache), runs.clone(), Duration::from_millis(50));
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(call(router.clone())))
        .collect();
    let mut hits = 0;
    for t in tasks {
        hits += usize::from(t.await.expect("task"));
    }
    (runs.load(Ordering::Relaxed), started.elapsed(), hits)
}

/// Every HTTP row, and the stampede figures as JSON notes.
pub async fn section(url: &str, plan: Plan) -> (Vec<Row>, serde_json::Value) {
    let mut rows = Vec::new();
    let mut notes = serde_json::Map::new();
    let wanted =
        |group: &str| std::env::var("BENCH_FILTER").map_or(true, |f| group.contains(f.as_str()));
    if ![
        "http hit (memory)",
        "http hit (redis)",
        "http stampede (memory)",
        "http stampede (redis)",
    ]
    .into_iter()
    .any(wanted)
    {
        return (rows, serde_json::Value::Object(notes));
    }
    let backends = [
        (
            "memory",
            CacheManager::builder()
                .memory()
                .key_prefix("bench:http:")
                .build(),
        ),
        (
            "redis",
            CacheManager::builder()
                .url(url)
                .key_prefix("bench:http:")
                .build(),
        ),
    ];
    for (name, cache) in backends {
        let cache = cache.expect("manager");
        let _ = cache.clear().await;
        println!("\nhttp hit through cachette-http ({name}) vs the bare handler");
        let bare = app(None, Arc::default(), Duration::ZERO);
        let layered = app(Some(&cache), Arc::default(), Duration::ZERO);
        call(layered.clone()).await; // fill
        assert!(call(layered.clone()).await, "the second request is a hit");
        rows.extend(
            compare(
                &format!("http hit ({name})"),
                1,
                1,
                plan,
                vec![
                    ("axum handler, no cache", request_op(bare)),
                    ("through HttpCache (hit)", request_op(layered)),
                ],
            )
            .await,
        );
        let _ = cache.clear().await;
        if !wanted(&format!("http stampede ({name})")) {
            continue;
        }
        let (runs, took, hits) = stampede(&cache).await;
        println!(
            "  1000 concurrent misses of one URL ({name}): {runs} handler run(s), {hits} HIT, {:.1} ms",
            took.as_secs_f64() * 1000.0
        );
        notes.insert(
            format!("http_stampede_{name}"),
            serde_json::json!({ "requests": 1000, "handler_runs": runs, "hits": hits, "ms": took.as_secs_f64() * 1000.0 }),
        );
        let _ = cache.clear().await;
    }
    (rows, serde_json::Value::Object(notes))
}
