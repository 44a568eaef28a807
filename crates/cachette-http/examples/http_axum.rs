//! A small JSON API behind the HTTP cache: per-route TTLs, a route that is never cached, a
//! purge endpoint by URL and one by tag (route tags and tags the handler names in
//! `x-cache-tags`). It serves on a loopback port, makes a few requests to itself over HTTP,
//! prints what the cache did, and exits.
//!
//! Run: `cargo run -p cachette-http --example http_axum` (embedded memory backend), or with
//! `REDIS_URL=redis://127.0.0.1:6379/` to share the cache through Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use cachette_http::{HttpCache, Route};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Clone)]
struct App {
    cache: HttpCache,
    /// How many times a product was read from the "database".
    db_reads: Arc<AtomicU64>,
    origin: String,
}

async fn product(State(app): State<App>, Path(id): Path<u64>) -> impl IntoResponse {
    app.db_reads.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(20)).await; // a slow query
                                                         // The response's own tags (its route adds `products`): the layer stores them with the
                                                         // entry and removes the header before the response leaves.
    let brand = if id % 2 == 0 { "acme" } else { "globex" };
    (
        [("x-cache-tags", format!("product:{id}, brand:{brand}"))],
        Json(json!({ "id": id, "name": format!("product {id}"), "brand": brand })),
    )
}

async fn stats(State(app): State<App>) -> Json<Value> {
    Json(json!({ "db_reads": app.db_reads.load(Ordering::Relaxed) }))
}

async fn purge(State(app): State<App>, Path(id): Path<u64>) -> Json<Value> {
    let url = format!("{}/products/{id}", app.origin);
    match app.cache.purge_url(&url).await {
        Ok(removed) => Json(json!({ "purged": url, "entries": removed })),
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}

/// Invalidates every cached response tagged `tag` (one command, however many there are).
async fn purge_tag(State(app): State<App>, Path(tag): Path<String>) -> Json<Value> {
    match app.cache.invalidate_tag(&tag).await {
        Ok(()) => Json(json!({ "invalidated_tag": tag })),
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}

/// `method path` over a fresh HTTP/1.1 connection: (x-cache, body).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> Result<(String, String), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let manager = cachette::Config::load()?
        .builder()
        .key_prefix("example:http:")
        .build()?;
    println!("cache: {}", manager.describe());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let cache = HttpCache::new(manager.clone())
        .ttl(Duration::from_secs(30))
        .route(
            "/products/",
            Route::ttl(Duration::from_secs(300)).tags(["products"]),
        )
        .route("/stats", Route::bypass())
        .route("/purge/", Route::bypass())
        .stale_if_error(Duration::from_secs(600));
    let app = App {
        cache: cache.clone(),
        db_reads: Arc::default(),
        origin: format!("http://{addr}"),
    };
    let router = Router::new()
        .route("/products/{id}", get(product))
        .route("/stats", get(stats))
        .route("/purge/products/{id}", post(purge))
        .route("/purge/tags/{tag}", post(purge_tag))
        .layer(cache.clone())
        .with_state(app.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Start clean when a Redis server is shared between runs.
    cache.purge_prefix(&app.origin, "/").await?;

    let (s, body) = call(addr, "GET", "/products/7").await?;
    println!("GET /products/7          -> {s:6} {body}");
    let (s, _) = call(addr, "GET", "/products/7").await?;
    println!("GET /products/7          -> {s:6} (from the cache)");
    assert_eq!(s, "HIT");

    // 20 concurrent misses of one URL: one database read.
    let tasks: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { call(addr, "GET", "/products/8").await.map(|r| r.0) }))
        .collect();
    for t in tasks {
        t.await??;
    }
    let (_, body) = call(addr, "GET", "/stats").await?;
    println!("20 concurrent GET /products/8, then /stats -> {body}");
    assert_eq!(app.db_reads.load(Ordering::Relaxed), 2);

    let (_, body) = call(addr, "POST", "/purge/products/7").await?;
    println!("POST /purge/products/7   -> {body}");
    let (s, _) = call(addr, "GET", "/products/7").await?;
    println!("GET /products/7          -> {s:6} (purged: the handler ran again)");
    assert_eq!(s, "MISS");

    // By tag: `brand:acme` (named by the handler) covers products 8 and 10, not 7.
    call(addr, "GET", "/products/10").await?;
    let (_, body) = call(addr, "POST", "/purge/tags/brand:acme").await?;
    println!("POST /purge/tags/brand:acme -> {body}");
    for (path, expected) in [
        ("/products/8", "MISS"),
        ("/products/10", "MISS"),
        ("/products/7", "HIT"),
    ] {
        let (s, _) = call(addr, "GET", path).await?;
        println!("GET {path:20} -> {s:6}");
        assert_eq!(s, expected, "{path}");
    }
    // `products` (the route's tag) covers them all.
    let (_, body) = call(addr, "POST", "/purge/tags/products").await?;
    println!("POST /purge/tags/products -> {body}");
    let (s, _) = call(addr, "GET", "/products/7").await?;
    println!("GET /products/7          -> {s:6} (the route's tag was purged)");
    assert_eq!(s, "MISS");

    server.abort();
    cache.purge_prefix(&app.origin, "/").await?;
    Ok(())
}
