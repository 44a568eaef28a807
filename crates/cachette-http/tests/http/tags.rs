//! Invalidation by tag over real HTTP: route tags (`Route::tags`) and response tags (the
//! `x-cache-tags` header), on every read path (GET, HEAD, 304, `Vary` variants, stale
//! copies), on memory and on Redis.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing;
use axum::Router;
use cachette_http::{HttpCache, Route};

use crate::on_every_backend;
use crate::support::{get, raw, send, serve, Backend, Calls, Kind};

on_every_backend!(
    a_route_tag_purge_makes_the_next_request_a_miss,
    a_header_tag_purge_reaches_every_variant_and_head,
    a_purged_entry_is_never_served_stale,
    a_purge_while_the_handler_runs_is_not_lost,
);

/// `/t/{id}`: counts its runs, answers `n=<run> lang=<accept-language>` with
/// `Vary: accept-language` and `x-cache-tags: item:{id}`.
fn tagged_item(calls: &Calls) -> routing::MethodRouter {
    let calls = calls.clone();
    routing::get(move |Path(id): Path<String>, headers: HeaderMap| {
        let n = calls.bump();
        async move {
            let lang = headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            (
                [
                    ("vary", "accept-language".to_owned()),
                    ("x-cache-tags", format!("item:{id}, items")),
                ],
                format!("n={n} lang={lang}"),
            )
        }
    })
}

/// `POST /purge/{tag}`: a handler purging a tag through the layer in its state.
async fn purge(State(cache): State<HttpCache>, Path(tag): Path<String>) -> impl IntoResponse {
    match cache.invalidate_tag(&tag).await {
        Ok(()) => (StatusCode::OK, "purged".to_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A route tag only (no tags header in the response): the read-through's own tags.
async fn a_route_tag_purge_makes_the_next_request_a_miss(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let c = calls.clone();
    let cache = HttpCache::new(b.manager.clone())
        .route("/cats/", Route::ttl(Duration::from_secs(60)).tags(["cats"]))
        .route("/purge/", Route::bypass());
    let app = Router::new()
        .route(
            "/cats/{id}",
            routing::get(move || {
                let n = c.bump();
                async move { format!("n={n}") }
            }),
        )
        .route("/purge/{tag}", routing::post(purge))
        .layer(cache.clone())
        .with_state(cache.clone());
    let addr = serve(app).await;

    assert_eq!(get(addr, "/cats/1").await.text(), "n=1");
    let hit = get(addr, "/cats/1").await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "n=1"));
    let etag = hit.header("etag").expect("etag").to_owned();
    let not_modified = send(addr, "GET", "/cats/1", &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);

    // An unrelated tag changes nothing.
    cache.invalidate_tag("dogs").await.expect("purge");
    assert_eq!(get(addr, "/cats/1").await.cache(), "HIT");

    // Purged from a handler: the next GET runs the handler again.
    let purged = send(addr, "POST", "/purge/cats", &[]).await;
    assert_eq!(
        (purged.status, purged.text().as_str()),
        (StatusCode::OK, "purged")
    );
    let miss = get(addr, "/cats/1").await;
    assert_eq!((miss.cache(), miss.text().as_str()), ("MISS", "n=2"));
    assert_eq!(get(addr, "/cats/1").await.cache(), "HIT");

    // A conditional request with the validator of the purged response: not a 304 from the
    // cache, the handler's new response.
    let etag = get(addr, "/cats/1")
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    cache
        .invalidate_tags(["cats", "other"])
        .await
        .expect("purge");
    let cond = send(addr, "GET", "/cats/1", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (cond.status, cond.cache(), cond.text().as_str()),
        (StatusCode::OK, "MISS", "n=3")
    );

    // HEAD after a purge: the handler runs (its GET fills the entry).
    cache.invalidate_tag("cats").await.expect("purge");
    let head = format!("HEAD /cats/1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let first = raw(addr, &head).await.to_ascii_lowercase();
    assert!(first.contains("\r\nx-cache: miss\r\n"), "{first}");
    assert_eq!(calls.get(), 4);
    assert_eq!(get(addr, "/cats/1").await.text(), "n=4");
    let again = raw(addr, &head).await.to_ascii_lowercase();
    assert!(again.contains("\r\nx-cache: hit\r\n"), "{again}");
    assert_eq!(calls.get(), 4);

    // only-if-cached after a purge: nothing fresh to serve.
    cache.invalidate_tag("cats").await.expect("purge");
    let only = send(
        addr,
        "GET",
        "/cats/1",
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(only.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        cache.invalidate_tag("").await.is_err(),
        "an empty tag is refused"
    );
}

/// Response tags (the tags header), on a route with a tag of its own and on one without:
/// every `Vary` variant and `HEAD` see the purge.
async fn a_header_tag_purge_reaches_every_variant_and_head(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let cache = HttpCache::new(b.manager.clone())
        .route("/t/", Route::ttl(Duration::from_secs(60)).tags(["things"]));
    let app = Router::new()
        .route("/t/{id}", tagged_item(&calls))
        .route("/u/{id}", tagged_item(&calls))
        .layer(cache.clone());
    let addr = serve(app).await;

    for path in ["/t/1", "/u/1"] {
        let before = calls.get();
        let en = [("accept-language", "en")];
        let fr = [("accept-language", "fr")];
        assert_eq!(send(addr, "GET", path, &en).await.cache(), "MISS");
        assert_eq!(send(addr, "GET", path, &fr).await.cache(), "MISS");
        // Both variants are hits (an entry with more tags than its route's is found).
        let hit = send(addr, "GET", path, &fr).await;
        assert_eq!(
            (hit.cache(), hit.header("x-cache-tags")),
            ("HIT", None),
            "{path}"
        );
        assert_eq!(send(addr, "GET", path, &en).await.cache(), "HIT", "{path}");
        assert_eq!(calls.get(), before + 2, "{path}");

        // The header tag of item 1: both variants, and HEAD, run the handler again.
        cache.invalidate_tag("item:1").await.expect("purge");
        let fr_again = send(addr, "GET", path, &fr).await;
        assert_eq!(fr_again.cache(), "MISS", "{path}: the fr variant");
        assert!(fr_again.text().ends_with("lang=fr"), "{}", fr_again.text());
        let head = send(addr, "HEAD", path, &en).await;
        assert_eq!(head.cache(), "MISS", "{path}: HEAD of the en variant");
        assert!(head.body.is_empty());
        assert_eq!(calls.get(), before + 4, "{path}");
        assert_eq!(send(addr, "HEAD", path, &en).await.cache(), "HIT", "{path}");
        assert_eq!(send(addr, "GET", path, &fr).await.cache(), "HIT", "{path}");

        // Another item's tag leaves these alone; the shared header tag does not.
        cache.invalidate_tag("item:2").await.expect("purge");
        assert_eq!(send(addr, "GET", path, &en).await.cache(), "HIT", "{path}");
        cache.invalidate_tag("items").await.expect("purge");
        assert_eq!(send(addr, "GET", path, &en).await.cache(), "MISS", "{path}");
        assert_eq!(calls.get(), before + 5, "{path}");
    }
    // The route tag reaches the responses that also carry header tags.
    assert_eq!(get(addr, "/t/1").await.cache(), "MISS");
    assert_eq!(get(addr, "/t/1").await.cache(), "HIT");
    cache.invalidate_tag("things").await.expect("purge");
    assert_eq!(get(addr, "/t/1").await.cache(), "MISS");
    let en = [("accept-language", "en")];
    assert_eq!(
        send(addr, "GET", "/u/1", &en).await.cache(),
        "HIT",
        "/u/ is not under the route"
    );
}

/// A stale copy of a purged response is neither served by stale-while-revalidate nor by
/// stale-if-error.
async fn a_purged_entry_is_never_served_stale(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let c = calls.clone();
    let cache = HttpCache::new(b.manager.clone())
        .route("/s/", Route::ttl(Duration::from_millis(400)).tags(["s"]))
        .stale_while_revalidate(Duration::from_secs(30))
        .stale_if_error(Duration::from_secs(30));
    let app = Router::new()
        .route(
            "/s/{id}",
            routing::get(move |Path(id): Path<u32>| {
                let n = c.bump();
                async move {
                    if id == 2 && n > 2 {
                        (StatusCode::SERVICE_UNAVAILABLE, format!("down {n}"))
                    } else {
                        (StatusCode::OK, format!("n={n}"))
                    }
                }
            }),
        )
        .layer(cache.clone());
    let addr = serve(app).await;
    assert_eq!(get(addr, "/s/1").await.text(), "n=1");
    assert_eq!(get(addr, "/s/2").await.text(), "n=2");
    tokio::time::sleep(Duration::from_millis(600)).await;
    cache.invalidate_tag("s").await.expect("purge");
    // stale-while-revalidate would answer STALE n=1 at once: the purge makes it a miss.
    let swr = get(addr, "/s/1").await;
    assert_eq!((swr.cache(), swr.text().as_str()), ("MISS", "n=3"));
    // stale-if-error would answer STALE n=2: the handler's error goes through instead.
    let sie = get(addr, "/s/2").await;
    assert_eq!(
        sie.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        sie.text()
    );
    assert_eq!(calls.get(), 4);
}

/// A tag purged while the handler computes its response (here: by the handler itself)
/// leaves that response out of date: the next request runs the handler again. Route tags
/// (versions read by the read-through before the handler) and header tags (stored after the
/// handler; the layer's purge count catches it).
async fn a_purge_while_the_handler_runs_is_not_lost(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let cache = HttpCache::new(b.manager.clone())
        .route("/r/", Route::ttl(Duration::from_secs(60)).tags(["r"]));
    let (c, inner) = (calls.clone(), cache.clone());
    let app = Router::new()
        .route(
            "/{dir}/{id}",
            routing::get(move |Path((dir, _id)): Path<(String, u32)>| {
                let (n, cache) = (c.bump(), inner.clone());
                async move {
                    let tag = if dir == "r" { "r" } else { "h" };
                    if n % 2 == 1 {
                        // Odd runs: the data changes (and is purged) while this one runs.
                        cache.invalidate_tag(tag).await.expect("purge");
                    }
                    // `/r/`: the route's tag only; `/h/`: a header tag.
                    let header = if dir == "r" {
                        "x-other"
                    } else {
                        "x-cache-tags"
                    };
                    ([(header, "h")], format!("n={n}"))
                }
            }),
        )
        .layer(cache.clone());
    let addr = serve(app).await;
    for path in ["/r/1", "/h/1"] {
        let before = calls.get();
        assert_eq!(get(addr, path).await.cache(), "MISS", "{path}");
        let next = get(addr, path).await;
        assert_eq!(next.cache(), "MISS", "{path}: stored across a purge");
        assert_eq!(get(addr, path).await.cache(), "HIT", "{path}");
        assert_eq!(calls.get(), before + 2, "{path}");
    }
}
