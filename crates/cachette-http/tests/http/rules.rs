//! One test per rule of the layer, each on memory and on Redis.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;
use cachette_http::{Credentials, HttpCache, Route};

use crate::on_every_backend;
use crate::support::{get, raw, send, serve, Backend, Calls, Kind};

on_every_backend!(
    get_responses_are_cached_by_url_with_a_normalized_query,
    vary_is_enforced_per_variant_and_star_is_never_stored,
    response_cache_control_decides_what_is_stored_and_for_how_long,
    request_cache_control_no_cache_no_store_only_if_cached,
    route_ttl_and_default_cacheable_statuses,
    conditional_requests_get_304_from_the_cache,
    credentials_bypass_unless_allowed_and_set_cookie_is_never_stored,
    bodies_over_the_limit_stream_through_uncached,
    concurrent_misses_run_the_handler_once,
    stale_if_error_and_stale_while_revalidate,
    head_is_answered_from_the_get_entry_on_the_wire,
    purge_removes_every_variant,
);

/// A handler counting its runs, answering `n=<run>` with `headers`.
fn counted(
    calls: &Calls,
    headers: &'static [(&'static str, &'static str)],
) -> axum::routing::MethodRouter {
    let calls = calls.clone();
    routing::get(move || {
        let n = calls.bump();
        async move {
            let mut resp = format!("n={n}").into_response();
            for (name, value) in headers {
                resp.headers_mut()
                    .insert(*name, value.parse().expect("header value"));
            }
            resp
        }
    })
}

async fn get_responses_are_cached_by_url_with_a_normalized_query(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/items",
            counted(&calls, &[("content-type", "text/plain")]).post(|| async { "posted" }),
        )
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;

    let first = get(addr, "/items?b=2&a=1").await;
    assert_eq!(
        (first.status, first.cache(), first.text().as_str()),
        (StatusCode::OK, "MISS", "n=1")
    );
    assert_eq!(first.header("age"), None, "a fresh response carries no Age");
    let again = get(addr, "/items?a=1&&b=2").await;
    assert_eq!((again.cache(), again.text().as_str()), ("HIT", "n=1"));
    assert_eq!(again.header("age"), Some("0"));
    assert_eq!(again.header("content-type"), Some("text/plain"));
    assert_eq!(again.header("content-length"), Some("3"));
    // Another query, another host: other entries.
    assert_eq!(get(addr, "/items?a=2").await.text(), "n=2");
    let other_host = send(addr, "GET", "/items?a=1&b=2", &[("host", "other.example")]).await;
    assert_eq!(
        (other_host.cache(), other_host.text().as_str()),
        ("MISS", "n=3")
    );
    // Other methods bypass.
    let post = send(addr, "POST", "/items", &[]).await;
    assert_eq!((post.cache(), post.text().as_str()), ("BYPASS", "posted"));
    assert_eq!(calls.get(), 3);
    // The entry is plain JSON in the manager, under a key naming the URL.
    let keys = b.manager.keys("http:GET:*").await.expect("keys");
    assert!(
        keys.contains(&format!("http:GET:http://{addr}/items?a=1&b=2")),
        "{keys:?}"
    );
}

async fn vary_is_enforced_per_variant_and_star_is_never_stored(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let c = calls.clone();
    let star = Calls::default();
    let app = Router::new()
        .route(
            "/greet",
            routing::get(move |h: HeaderMap| {
                let n = c.bump();
                async move {
                    let lang = h
                        .get("accept-language")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    ([(header::VARY, "Accept-Language")], format!("{lang}:{n}"))
                }
            }),
        )
        .route("/star", counted(&star, &[("vary", "*")]))
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;
    let ask = |lang: &'static str| async move {
        send(addr, "GET", "/greet", &[("accept-language", lang)]).await
    };

    let fr = ask("fr").await;
    assert_eq!((fr.cache(), fr.text().as_str()), ("MISS", "fr:1"));
    let de = ask("de").await;
    assert_eq!(
        (de.cache(), de.text().as_str()),
        ("MISS", "de:2"),
        "a variant is never served to another"
    );
    assert_eq!(ask("fr").await.text(), "fr:1");
    let de = ask("de").await;
    assert_eq!((de.cache(), de.text().as_str()), ("HIT", "de:2"));
    let none = get(addr, "/greet").await;
    assert_eq!((none.cache(), none.text().as_str()), ("MISS", "none:3"));
    assert_eq!(get(addr, "/greet").await.text(), "none:3");
    assert_eq!(calls.get(), 3);

    for _ in 0..2 {
        assert_eq!(get(addr, "/star").await.cache(), "MISS");
    }
    assert_eq!(star.get(), 2, "Vary: * is never stored");
}

async fn response_cache_control_decides_what_is_stored_and_for_how_long(kind: Kind) {
    let b = Backend::new(kind);
    let c: Vec<Calls> = (0..7).map(|_| Calls::default()).collect();
    let app = Router::new()
        .route(
            "/no-store",
            counted(&c[0], &[("cache-control", "no-store")]),
        )
        .route(
            "/private",
            counted(&c[1], &[("cache-control", "private, max-age=60")]),
        )
        .route(
            "/no-cache",
            counted(&c[2], &[("cache-control", "no-cache")]),
        )
        .route(
            "/max-age",
            counted(&c[3], &[("cache-control", "max-age=1")]),
        )
        .route(
            "/s-maxage",
            counted(&c[4], &[("cache-control", "max-age=600, s-maxage=1")]),
        )
        .route(
            "/expired",
            counted(&c[5], &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")]),
        )
        .route(
            "/aged",
            counted(&c[6], &[("cache-control", "max-age=5"), ("age", "4")]),
        )
        .layer(HttpCache::new(b.manager.clone()).ttl(Duration::from_secs(60)));
    let addr = serve(app).await;
    for path in ["/no-store", "/private", "/no-cache", "/expired"] {
        assert_eq!(get(addr, path).await.cache(), "MISS", "{path}");
        assert_eq!(
            get(addr, path).await.cache(),
            "MISS",
            "{path} is never stored"
        );
    }
    for path in ["/max-age", "/s-maxage", "/aged"] {
        assert_eq!(get(addr, path).await.cache(), "MISS");
        let hit = get(addr, path).await;
        assert_eq!(hit.cache(), "HIT", "{path}");
    }
    let aged = get(addr, "/aged").await;
    assert!(
        aged.header("age")
            .is_some_and(|a| a.parse::<u64>().unwrap() >= 4),
        "the origin's Age counts"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for path in ["/max-age", "/s-maxage", "/aged"] {
        assert_eq!(
            get(addr, path).await.cache(),
            "MISS",
            "{path} expired with its own freshness"
        );
    }
    let runs: Vec<usize> = c.iter().map(Calls::get).collect();
    assert_eq!(runs, [2, 2, 2, 2, 2, 2, 2]);
}

async fn request_cache_control_no_cache_no_store_only_if_cached(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let app = Router::new()
        .route("/r", counted(&calls, &[]))
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;
    let cc =
        |v: &'static str| async move { send(addr, "GET", "/r", &[("cache-control", v)]).await };

    let miss = cc("only-if-cached").await;
    assert_eq!(miss.status, StatusCode::GATEWAY_TIMEOUT);
    let nostore = cc("no-store").await;
    assert_eq!(
        (nostore.cache(), nostore.text().as_str()),
        ("BYPASS", "n=1")
    );
    assert_eq!(
        cc("only-if-cached").await.status,
        StatusCode::GATEWAY_TIMEOUT,
        "no-store stored nothing"
    );
    assert_eq!(get(addr, "/r").await.text(), "n=2");
    let cached = cc("only-if-cached").await;
    assert_eq!(
        (cached.status, cached.cache(), cached.text().as_str()),
        (StatusCode::OK, "HIT", "n=2")
    );
    let fresh = cc("no-cache").await;
    assert_eq!((fresh.cache(), fresh.text().as_str()), ("MISS", "n=3"));
    let after = get(addr, "/r").await;
    assert_eq!(
        (after.cache(), after.text().as_str()),
        ("HIT", "n=3"),
        "no-cache replaced the entry"
    );
    assert_eq!(calls.get(), 3);
}

async fn route_ttl_and_default_cacheable_statuses(kind: Kind) {
    let b = Backend::new(kind);
    let (short, long, created, missing, fail) = (
        Calls::default(),
        Calls::default(),
        Calls::default(),
        Calls::default(),
        Calls::default(),
    );
    let (cr, mi, fa) = (created.clone(), missing.clone(), fail.clone());
    let app = Router::new()
        .route("/short/x", counted(&short, &[]))
        .route("/long", counted(&long, &[("cache-control", "max-age=600")]))
        .route(
            "/created",
            routing::get(move || {
                cr.bump();
                async { (StatusCode::CREATED, "made") }
            }),
        )
        .route(
            "/missing",
            routing::get(move || {
                mi.bump();
                async { (StatusCode::NOT_FOUND, "no") }
            }),
        )
        .route(
            "/fail",
            routing::get(move || {
                fa.bump();
                async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }
            }),
        )
        .layer(
            HttpCache::new(b.manager.clone())
                .ttl(Duration::from_secs(600))
                .route("/short/", Route::ttl(Duration::from_millis(700)))
                .route("/long", Route::ttl(Duration::from_millis(700))),
        );
    let addr = serve(app).await;
    for path in ["/short/x", "/long", "/created", "/missing", "/fail"] {
        get(addr, path).await;
        get(addr, path).await;
    }
    assert_eq!((short.get(), long.get()), (1, 1));
    assert_eq!(missing.get(), 1, "404 is cacheable by default");
    assert_eq!((created.get(), fail.get()), (2, 2), "201 and 500 are not");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        get(addr, "/short/x").await.cache(),
        "MISS",
        "the route's TTL"
    );
    assert_eq!(
        get(addr, "/long").await.cache(),
        "MISS",
        "the route's TTL caps max-age"
    );

    // A route chosen by a function of the request (axum's matched route): bypass one.
    let b3 = Backend::new(kind);
    let (x, y) = (Calls::default(), Calls::default());
    let app = Router::new()
        .route("/fn/{id}", counted(&x, &[]))
        .route("/other/{id}", counted(&y, &[]))
        .layer(HttpCache::new(b3.manager.clone()).route_fn(|parts| {
            let matched = parts.extensions.get::<axum::extract::MatchedPath>()?;
            (matched.as_str() == "/fn/{id}").then(Route::bypass)
        }));
    let addr = serve(app).await;
    for _ in 0..2 {
        assert_eq!(get(addr, "/fn/1").await.cache(), "BYPASS");
        get(addr, "/other/1").await;
    }
    assert_eq!((x.get(), y.get()), (2, 1));

    // Configured statuses.
    let b2 = Backend::new(kind);
    let created = Calls::default();
    let cr = created.clone();
    let app = Router::new()
        .route(
            "/created",
            routing::get(move || {
                cr.bump();
                async { (StatusCode::CREATED, "made") }
            }),
        )
        .layer(HttpCache::new(b2.manager.clone()).cacheable_statuses([200, 201]));
    let addr = serve(app).await;
    assert_eq!(get(addr, "/created").await.cache(), "MISS");
    assert_eq!(get(addr, "/created").await.cache(), "HIT");
    assert_eq!(created.get(), 1);
}

async fn conditional_requests_get_304_from_the_cache(kind: Kind) {
    let b = Backend::new(kind);
    let (gen, own) = (Calls::default(), Calls::default());
    let app = Router::new()
        .route("/gen", counted(&gen, &[]))
        .route(
            "/own",
            counted(
                &own,
                &[
                    ("etag", "W/\"v7\""),
                    ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ],
            ),
        )
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;
    let first = get(addr, "/gen").await;
    let etag = first.header("etag").expect("a generated ETag").to_owned();
    assert!(etag.starts_with("\"x3-") && etag.len() == 37, "{etag}");
    let nm = send(addr, "GET", "/gen", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (nm.status, nm.cache(), nm.body.len()),
        (StatusCode::NOT_MODIFIED, "HIT", 0)
    );
    assert_eq!(nm.header("etag"), Some(etag.as_str()));
    let other = send(addr, "GET", "/gen", &[("if-none-match", "\"nope\"")]).await;
    assert_eq!(
        (other.status, other.text().as_str()),
        (StatusCode::OK, "n=1")
    );
    assert_eq!(gen.get(), 1);

    // The handler's own validators; the fill never sees the client's.
    let first = send(addr, "GET", "/own", &[("if-none-match", "\"v7\"")]).await;
    assert_eq!(
        (first.status, first.cache()),
        (StatusCode::NOT_MODIFIED, "MISS")
    );
    assert_eq!(first.header("etag"), Some("W/\"v7\""));
    let ims = send(
        addr,
        "GET",
        "/own",
        &[("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT")],
    )
    .await;
    assert_eq!((ims.status, ims.cache()), (StatusCode::NOT_MODIFIED, "HIT"));
    let older = send(
        addr,
        "GET",
        "/own",
        &[("if-modified-since", "Tue, 20 Oct 2015 07:28:00 GMT")],
    )
    .await;
    assert_eq!(
        (older.status, older.text().as_str()),
        (StatusCode::OK, "n=1")
    );
    assert_eq!(own.get(), 1);
}

async fn credentials_bypass_unless_allowed_and_set_cookie_is_never_stored(kind: Kind) {
    let b = Backend::new(kind);
    let (who, cookie) = (Calls::default(), Calls::default());
    let w = who.clone();
    let whoami = routing::get(move |h: HeaderMap| {
        let n = w.bump();
        async move {
            let user = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("anon")
                .to_owned();
            format!("{user}:{n}")
        }
    });
    let app = Router::new()
        .route("/me", whoami.clone())
        .route("/cookie", counted(&cookie, &[("set-cookie", "s=1")]))
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;
    for _ in 0..2 {
        assert_eq!(
            send(addr, "GET", "/me", &[("authorization", "Bearer a")])
                .await
                .cache(),
            "BYPASS"
        );
        assert_eq!(
            send(addr, "GET", "/me", &[("cookie", "s=a")]).await.cache(),
            "BYPASS"
        );
        assert_eq!(get(addr, "/cookie").await.cache(), "MISS");
    }
    assert_eq!((who.get(), cookie.get()), (4, 2), "nothing stored");

    // Per user: each user their own entries.
    let b2 = Backend::new(kind);
    who.0.store(0, std::sync::atomic::Ordering::SeqCst);
    let app = Router::new()
        .route("/me", whoami)
        .layer(HttpCache::new(b2.manager.clone()).authorization(Credentials::PerUser));
    let addr = serve(app).await;
    let as_ = |user: &'static str| async move {
        send(addr, "GET", "/me", &[("authorization", user)])
            .await
            .text()
    };
    assert_eq!(as_("Bearer a").await, "Bearer a:1");
    assert_eq!(as_("Bearer b").await, "Bearer b:2");
    assert_eq!(as_("Bearer a").await, "Bearer a:1");
    assert_eq!(as_("Bearer b").await, "Bearer b:2");
    assert_eq!(get(addr, "/me").await.text(), "anon:3");

    // Shared: one entry for every user, and only for responses that say they may be shared.
    let b3 = Backend::new(kind);
    let (public, plain) = (Calls::default(), Calls::default());
    let app = Router::new()
        .route(
            "/public",
            counted(&public, &[("cache-control", "public, max-age=60")]),
        )
        .route("/plain", counted(&plain, &[]))
        .layer(HttpCache::new(b3.manager.clone()).authorization(Credentials::Shared));
    let addr = serve(app).await;
    for user in ["Bearer a", "Bearer b"] {
        send(addr, "GET", "/public", &[("authorization", user)]).await;
        send(addr, "GET", "/plain", &[("authorization", user)]).await;
    }
    assert_eq!((public.get(), plain.get()), (1, 2), "RFC 9111 section 3.5");
}

async fn bodies_over_the_limit_stream_through_uncached(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (c, r) = (calls.clone(), release.clone());
    let app = Router::new()
        .route(
            "/big",
            routing::get(move || {
                c.bump();
                let r = r.clone();
                async move {
                    // 64 KiB at once, then the rest only when the test says so.
                    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
                    tokio::spawn(async move {
                        let _ = tx.send(vec![b'a'; 64 * 1024]).await;
                        r.notified().await;
                        let _ = tx.send(b"end".to_vec()).await;
                    });
                    Response::new(Body::new(ChannelBody(rx)))
                }
            }),
        )
        .route("/small", routing::get(|| async { "small" }))
        .layer(HttpCache::new(b.manager.clone()).max_body_bytes(1024));
    let addr = serve(app).await;

    // The response starts while the handler's body is unfinished: it was not buffered.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/big")
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("headers before the end of the body")
        .unwrap();
    assert_eq!(resp.headers()["x-cache"], "MISS");
    release.notify_one();
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 64 * 1024 + 3);
    assert!(body.ends_with(b"aend"));
    // Not stored: the next request runs the handler again.
    let r2 = release.clone();
    let next = tokio::spawn(async move { get(addr, "/big").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    r2.notify_one();
    let next = next.await.unwrap();
    assert_eq!((next.cache(), next.body.len()), ("MISS", 64 * 1024 + 3));
    assert_eq!(calls.get(), 2);
    get(addr, "/small").await;
    assert_eq!(
        get(addr, "/small").await.cache(),
        "HIT",
        "small bodies are stored"
    );
}

/// A body whose frames are the channel's items.
struct ChannelBody(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|v| Ok(http_body::Frame::data(bytes::Bytes::from(v)))))
    }
}

async fn concurrent_misses_run_the_handler_once(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/slow",
            routing::get(move || {
                let n = c.bump();
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    format!("n={n}")
                }
            }),
        )
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(async move { get(addr, "/slow").await }))
        .collect();
    let mut hits = 0;
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!((got.status, got.text().as_str()), (StatusCode::OK, "n=1"));
        hits += usize::from(got.cache() == "HIT");
    }
    assert_eq!(calls.get(), 1, "50 concurrent misses, one handler run");
    assert_eq!(hits, 49);
}

async fn stale_if_error_and_stale_while_revalidate(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/flaky",
            routing::get(move || {
                let n = c.bump();
                async move {
                    if n == 1 {
                        (StatusCode::OK, "good".to_owned())
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, format!("down {n}"))
                    }
                }
            }),
        )
        .layer(
            HttpCache::new(b.manager.clone())
                .ttl(Duration::from_millis(500))
                .stale_if_error(Duration::from_secs(30)),
        );
    let addr = serve(app).await;
    assert_eq!(get(addr, "/flaky").await.text(), "good");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stale = get(addr, "/flaky").await;
    assert_eq!(
        (stale.status, stale.cache(), stale.text().as_str()),
        (StatusCode::OK, "STALE", "good")
    );
    assert!(stale.header("age").is_some());
    assert_eq!(calls.get(), 2, "the handler ran and failed");

    // stale-while-revalidate: concurrent requests get the stale copy at once.
    let b2 = Backend::new(kind);
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/slow",
            routing::get(move || {
                let n = c.bump();
                async move {
                    if n > 1 {
                        tokio::time::sleep(Duration::from_millis(800)).await;
                    }
                    format!("v{n}")
                }
            }),
        )
        .layer(
            HttpCache::new(b2.manager.clone())
                .ttl(Duration::from_millis(500))
                .stale_while_revalidate(Duration::from_secs(30)),
        );
    let addr = serve(app).await;
    assert_eq!(get(addr, "/slow").await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The request that finds the entry stale, and one during the reload: both get the stale
    // copy at once; the reload (800 ms) goes on in the background.
    for _ in 0..2 {
        let started = Instant::now();
        let stale = get(addr, "/slow").await;
        assert_eq!((stale.cache(), stale.text().as_str()), ("STALE", "v1"));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "served without waiting for the reload: {:?}",
            started.elapsed()
        );
    }
    // Bounded wait for the background reload to be stored.
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        let got = get(addr, "/slow").await;
        if got.cache() == "HIT" || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((fresh.cache(), fresh.text().as_str()), ("HIT", "v2"));
    assert_eq!(calls.get(), 2);
}

async fn head_is_answered_from_the_get_entry_on_the_wire(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let app = Router::new()
        .route("/doc", counted(&calls, &[("content-type", "text/plain")]))
        .layer(
            HttpCache::new(b.manager.clone())
                .status_header(http::HeaderName::from_static("x-my-cache")),
        );
    let addr = serve(app).await;
    let head = format!("HEAD /doc HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let first = raw(addr, &head).await.to_ascii_lowercase();
    assert!(first.starts_with("http/1.1 200 ok\r\n"), "{first}");
    assert!(first.contains("\r\nx-my-cache: miss\r\n"), "{first}");
    assert!(first.contains("\r\ncontent-length: 3\r\n"), "{first}");
    assert!(
        first.ends_with("\r\n\r\n"),
        "no body after a HEAD: {first:?}"
    );
    let get_req = format!("GET /doc HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let full = raw(addr, &get_req).await;
    assert!(
        full.to_ascii_lowercase()
            .contains("\r\nx-my-cache: hit\r\n"),
        "{full}"
    );
    assert!(full.contains("\r\nage: "), "{full}");
    assert!(full.ends_with("\r\n\r\nn=1"), "{full:?}");
    let again = raw(addr, &head).await.to_ascii_lowercase();
    assert!(
        again.contains("\r\nx-my-cache: hit\r\n") && again.ends_with("\r\n\r\n"),
        "{again}"
    );
    assert_eq!(calls.get(), 1);

    // The layer around a whole router (which strips HEAD bodies itself): a HEAD still fills
    // the GET entry with the whole body.
    let b2 = Backend::new(kind);
    let calls = Calls::default();
    let inner = Router::new().route("/doc", counted(&calls, &[]));
    let app = Router::new().fallback_service(tower_layer::Layer::layer(
        &HttpCache::new(b2.manager.clone()),
        inner,
    ));
    let addr = serve(app).await;
    let head = format!("HEAD /doc HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let first = raw(addr, &head).await.to_ascii_lowercase();
    assert!(
        first.contains("\r\nx-cache: miss\r\n") && first.contains("\r\ncontent-length: 3\r\n"),
        "{first}"
    );
    let full = get(addr, "/doc").await;
    assert_eq!((full.cache(), full.text().as_str()), ("HIT", "n=1"));
    assert_eq!(calls.get(), 1);
}

async fn purge_removes_every_variant(kind: Kind) {
    let b = Backend::new(kind);
    let calls = Calls::default();
    let app_cache = HttpCache::new(b.manager.clone());
    let app = Router::new()
        .route("/p/{id}", counted(&calls, &[("vary", "accept")]))
        .layer(app_cache.clone());
    let addr = serve(app).await;
    for accept in ["a", "b"] {
        send(addr, "GET", "/p/1", &[("accept", accept)]).await;
    }
    get(addr, "/p/2").await;
    assert_eq!(calls.get(), 3);
    let removed = app_cache
        .purge_url(&format!("http://{addr}/p/1"))
        .await
        .expect("purge");
    assert_eq!(removed, 2);
    assert_eq!(
        send(addr, "GET", "/p/1", &[("accept", "b")]).await.cache(),
        "MISS"
    );
    assert_eq!(get(addr, "/p/2").await.cache(), "HIT");
    let removed = app_cache
        .purge_prefix(&format!("http://{addr}"), "/p/")
        .await
        .expect("purge");
    assert!(removed >= 2, "{removed}");
    assert_eq!(get(addr, "/p/2").await.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_outage_serves_the_handlers_response() {
    let b = Backend::new(Kind::Redis);
    let calls = Calls::default();
    let app = Router::new()
        .route("/up", counted(&calls, &[]))
        .layer(HttpCache::new(b.manager.clone()));
    let addr = serve(app).await;
    assert_eq!(get(addr, "/up").await.cache(), "MISS");
    assert_eq!(get(addr, "/up").await.cache(), "HIT");
    b.server.as_ref().expect("a Redis backend").kill();
    for n in 2..4 {
        let started = Instant::now();
        let got = get(addr, "/up").await;
        assert_eq!(
            (got.status, got.cache(), got.text()),
            (StatusCode::OK, "BYPASS", format!("n={n}"))
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded by the command timeout"
        );
    }
}
