//! An HTTP response cache for [tower](https://docs.rs/tower) services and
//! [axum](https://docs.rs/axum) routers, storing responses in any [`cachette::CacheManager`]
//! (the embedded memory backend, Redis standalone, Sentinel or Cluster, with or without a
//! near cache), with cachette's stampede protection.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use cachette::CacheManager;
//! use cachette_http::{HttpCache, Route};
//!
//! let cache = HttpCache::new(CacheManager::memory())
//!     .ttl(Duration::from_secs(30))
//!     .route("/products/", Route::ttl(Duration::from_secs(300)).tags(["products"]))
//!     .route("/admin/", Route::bypass())
//!     .stale_if_error(Duration::from_secs(600));
//! let app: Router = Router::new()
//!     .route("/products/{id}", get(|| async { "a product" }))
//!     .layer(cache);
//! # let _ = app;
//! ```
//!
//! # The rules
//!
//! - **What is cached.** `GET` responses, and `HEAD` ones from the same entry (a `HEAD` is
//!   filled by a `GET` to the handler, as nginx's `proxy_cache_convert_head`). Other methods
//!   and `Range` requests go to the handler uncached (`x-cache: BYPASS`).
//! - **Keys.** The method, `scheme://host`, the path and the query (empty pairs dropped,
//!   pairs sorted), under the layer's key prefix (`http:`) inside the manager's: e.g.
//!   `cache:http:GET:http://example.com/p?a=1&b=2`. A response's `Vary` is *enforced*: the
//!   entry records the values the varying request fields had, and is only served to requests
//!   with the same values; other variants get keys of their own (`…#v:{hash}`). `Vary: *` is
//!   never stored.
//! - **Freshness.** A response is stored for its `s-maxage`, else `max-age`, else `Expires`
//!   − `Date`, less the `Age` it came with; capped by the route's TTL (the layer's
//!   [`ttl`](HttpCache::ttl) when the route names none), which is also the TTL of a response
//!   that names no freshness. `no-store`, `private`, `no-cache` (this cache does not
//!   revalidate), `Set-Cookie`, a zero freshness, and statuses outside
//!   [`cacheable_statuses`](HttpCache::cacheable_statuses) (RFC 9110's heuristically
//!   cacheable list by default, [`DEFAULT_CACHEABLE_STATUSES`]) are not stored. Responses
//!   served from the cache carry `Age`.
//! - **Request directives.** `no-cache` (or `max-age=0`): the handler runs and its response
//!   replaces the stored one. `no-store`: the cache is bypassed. `only-if-cached`: a stored
//!   fresh response, or `504 Gateway Timeout`. Other request directives (`max-stale`,
//!   `min-fresh`, `max-age` > 0) are ignored.
//! - **Conditional requests.** A stored response keeps its `ETag` (one is generated from the
//!   body, a quoted XXH3-128, when the handler sets none) and its `Last-Modified`;
//!   `If-None-Match` (weak comparison), else `If-Modified-Since`, are answered with
//!   `304 Not Modified` from the cache. The handler never sees the client's validators when
//!   the cache fills.
//! - **Safety.** Requests with `Authorization` or `Cookie` bypass the cache unless
//!   [`authorization`](HttpCache::authorization)/[`cookies`](HttpCache::cookies) say
//!   otherwise ([`Credentials`]). Bodies over [`max_body_bytes`](HttpCache::max_body_bytes)
//!   stream through uncached; the layer never holds more than that limit (plus one frame) of
//!   a body. Trailers, a body error, or a header value that is not visible ASCII also make a
//!   response pass through unstored.
//! - **Stampedes and failures.** Filling goes through
//!   [`CacheManager::get_or_load_traced`](cachette::CacheManager::get_or_load_traced):
//!   concurrent misses of one URL (and variant) run the handler once, and with
//!   `load_options(LoadOptions::new().lock(true))` once across every process sharing a
//!   Redis server. [`stale_while_revalidate`](HttpCache::stale_while_revalidate) and
//!   [`stale_if_error`](HttpCache::stale_if_error) are cachette's stale copies. A cache
//!   that is down or slow never fails a request: the handler's response is served
//!   (`x-cache: BYPASS`).
//! - **`x-cache`.** `HIT` (from the cache, including a request that waited for a
//!   concurrent fill), `MISS` (this request's handler ran), `STALE`, `BYPASS` (not
//!   considered, or the cache is unavailable). The name is configurable
//!   ([`status_header`](HttpCache::status_header)).
//! - **Purging.** [`purge_url`](HttpCache::purge_url) and
//!   [`purge_prefix`](HttpCache::purge_prefix) delete entries;
//!   [`invalidate_tag`](HttpCache::invalidate_tag)/[`invalidate_tags`](HttpCache::invalidate_tags)
//!   invalidate every response with a tag in one command (cachette's tags: a version per tag,
//!   checked on read). A response's tags are its route's ([`Route::tags`]) and those its
//!   handler names in the tags header ([`tags_header`](HttpCache::tags_header), `x-cache-tags`,
//!   comma separated, removed before the response leaves). After a purge, every read path
//!   (`GET`, `HEAD`, `304`s, `only-if-cached`, stale copies, `Vary` variants) misses and the
//!   next request runs the handler.
//! - **Tags and the store.** A response with only its route's tags is stored by the
//!   read-through with [`LoadOptions::tags`](cachette::LoadOptions::tags): the tag versions
//!   are read *before* the handler runs, so a purge during the run leaves it out of date at
//!   once, and a hit is one round trip. A response that names tags of its own (known only
//!   once the handler ran) is stored after the fill with
//!   [`CacheManager::set_tagged`](cachette::CacheManager::set_tagged), which reads the
//!   versions then: a purge through this layer (any clone of it) during the run is caught (the
//!   layer counts its purges and drops what it stored when the count moved), one made
//!   elsewhere (another process, or the manager directly) in that window is missed until the
//!   entry's TTL ends. Such an entry's hits cost more: on a route with tags about four round
//!   trips more on Redis (the read-through, which wants exactly the route's tags, misses it
//!   and reads their versions; a plain read checked against the entry's own tags finds it),
//!   on a route without, two more (its tag document, then its tags).
//!
//! # Trade-offs
//!
//! - A response whose own freshness is shorter than its route's TTL, or that says
//!   `must-revalidate` while stale copies are configured, is stored by a plain write after
//!   the fill (its concurrent requests still share the one handler run) and keeps no stale
//!   copy. So does a response that names tags in the tags header (see above).
//! - With [`stale_while_revalidate`](HttpCache::stale_while_revalidate), the request that
//!   starts a reload reads the stored copy once more (one more read per miss) to serve it
//!   stale while the handler runs in a spawned task.
//! - Request directives other than those above, `stale-while-revalidate`/`stale-if-error`
//!   in responses (the layer's settings apply instead), and `206` responses are not
//!   supported.

#![cfg_attr(
    not(test),
    deny(clippy::panic, clippy::unwrap_used, clippy::expect_used)
)]

mod body;
mod config;
mod entry;
mod key;
mod layer;
mod policy;
mod purge;
mod revalidate;
mod service;

pub use body::CacheBody;
pub use config::{Credentials, HttpCache, Route, RouteFn, DEFAULT_MAX_BODY_BYTES, DEFAULT_TTL};
pub use layer::{HttpCacheService, ResponseFuture};
pub use policy::DEFAULT_CACHEABLE_STATUSES;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
