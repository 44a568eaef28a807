//! `#[cached]` on a manager with a near cache, and on the memory backend: a hit of a
//! `Clone + Send + Sync + 'static` value is served from the copy kept decoded beside the entry
//! (no decoding), while a write by another manager or client still reaches the next call,
//! tagged values are still checked against their tags, options that read more than the entry
//! (stale copies) keep decoding, and value types that are not `Clone` keep working (decoding
//! every hit).

use std::collections::HashMap;
use std::time::Duration;

use cachette::{cached, Backend as _, CacheManager};
use cachette_test_support::RedisServer;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize};

use crate::near::eventually;
use crate::support::unique_prefix;

const LONG: Duration = Duration::from_secs(600);

/// How many times a value with each label was decoded.
fn decodes() -> &'static Mutex<HashMap<String, usize>> {
    static DECODES: std::sync::OnceLock<Mutex<HashMap<String, usize>>> = std::sync::OnceLock::new();
    DECODES.get_or_init(Mutex::default)
}

fn decoded(label: &str) -> usize {
    decodes().lock().get(label).copied().unwrap_or(0)
}

/// How many times a body ran for each label.
fn bodies() -> &'static Mutex<HashMap<String, usize>> {
    static BODIES: std::sync::OnceLock<Mutex<HashMap<String, usize>>> = std::sync::OnceLock::new();
    BODIES.get_or_init(Mutex::default)
}

fn ran(label: &str) {
    *bodies().lock().entry(label.to_owned()).or_default() += 1;
}

fn runs(label: &str) -> usize {
    bodies().lock().get(label).copied().unwrap_or(0)
}

#[derive(Deserialize)]
struct Raw {
    label: String,
    n: u64,
}

/// A value that counts its decodings (per label: each test uses its own).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Counted {
    label: String,
    n: u64,
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Raw { label, n } = Raw::deserialize(d)?;
        *decodes().lock().entry(label.clone()).or_default() += 1;
        Ok(Counted { label, n })
    }
}

/// The same, but not `Clone`: its hits decode.
#[derive(Debug, PartialEq, Serialize)]
struct Opaque {
    label: String,
    n: u64,
}

impl<'de> Deserialize<'de> for Opaque {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Raw { label, n } = Raw::deserialize(d)?;
        *decodes().lock().entry(label.clone()).or_default() += 1;
        Ok(Opaque { label, n })
    }
}

/// A manager on `server` under `prefix` with a near cache, once its invalidation channel is up.
async fn near(server: &RedisServer, prefix: &str) -> CacheManager {
    let cache = CacheManager::builder()
        .url(server.url())
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .near_cache(Some(cachette::NearCacheOptions::default()))
        .build()
        .expect("builds");
    let live = eventually(Duration::from_secs(5), async || {
        cache.near_stats().is_some_and(|s| s.live)
    })
    .await;
    assert!(live, "the invalidation channel never came up");
    cache
}

/// A plain manager on `server` under `prefix` (another client of the same keys).
fn plain(server: &RedisServer, prefix: &str) -> CacheManager {
    CacheManager::builder()
        .url(server.url())
        .key_prefix(prefix)
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("builds")
}

/// The hits and misses of a decorated function of this module.
fn fn_stats(name: &str) -> (u64, u64) {
    cachette::runtime::function_stats_of(&format!("{}::{name}", module_path!()))
        .map(|s| (s.stats.hits, s.stats.misses))
        .unwrap_or_default()
}

/// Calls `f` until its decodings stop (the near cache holds the entry and its decoded copy:
/// the write's own invalidation may evict the first reply), at most 2 s.
async fn settle<F: AsyncFnMut()>(label: &str, mut f: F) {
    let settled = eventually(Duration::from_secs(2), async || {
        f().await;
        let before = decoded(label);
        f().await;
        f().await;
        decoded(label) == before
    })
    .await;
    assert!(settled, "the hits of {label} never stopped decoding");
}

#[cached(cache = cache, skip(cache), ttl = 600, key = "typed:{label}")]
async fn typed(cache: &CacheManager, label: &str, n: u64) -> Counted {
    ran(label);
    Counted {
        label: label.to_owned(),
        n,
    }
}

#[tokio::test]
async fn a_decorated_hit_clones_the_decoded_copy_and_is_counted() {
    let server = RedisServer::new();
    let cache = near(&server, &unique_prefix("typed")).await;
    let label = "hit-once";
    let before = runs(label);
    assert_eq!(typed(&cache, label, 1).await.n, 1);
    settle(label, async || {
        assert_eq!(typed(&cache, label, 9).await.n, 1)
    })
    .await;
    assert_eq!(runs(label), before + 1, "one miss, then hits");

    let (decodes, (fn_hits, _), manager_hits, near_hits) = (
        decoded(label),
        fn_stats("typed"),
        cache.stats().hits,
        cache.near_stats().map(|s| s.hits).unwrap_or_default(),
    );
    for _ in 0..50 {
        let value = typed(&cache, label, 9).await;
        assert_eq!(
            value,
            Counted {
                label: label.to_owned(),
                n: 1
            }
        );
    }
    assert_eq!(decoded(label), decodes, "a typed hit decodes nothing");
    assert_eq!(fn_stats("typed").0, fn_hits + 50, "the function's hits");
    assert_eq!(cache.stats().hits, manager_hits + 50, "the manager's hits");
    let near_now = cache.near_stats().map(|s| s.hits).unwrap_or_default();
    assert_eq!(near_now, near_hits + 50, "the near cache's hits");
    assert_eq!(runs(label), before + 1);
}

#[tokio::test]
async fn a_write_by_another_client_reaches_the_next_decorated_call() {
    let server = RedisServer::new();
    let prefix = unique_prefix("typed");
    let cache = near(&server, &prefix).await;
    let other = plain(&server, &prefix);
    let label = "rewritten";
    let before = runs(label);
    assert_eq!(typed(&cache, label, 1).await.n, 1);
    settle(label, async || {
        assert_eq!(typed(&cache, label, 9).await.n, 1)
    })
    .await;

    let key = format!("typed:{label}");
    let newer = Counted {
        label: label.to_owned(),
        n: 2,
    };
    other.set(&key, &newer, LONG).await.expect("set");
    let seen = eventually(Duration::from_secs(1), async || {
        typed(&cache, label, 9).await.n == 2
    })
    .await;
    assert!(
        seen,
        "the other client's write never reached the decorated call"
    );
    // The new value is decoded once, then served decoded again.
    settle(label, async || {
        assert_eq!(typed(&cache, label, 9).await.n, 2)
    })
    .await;
    let decodes = decoded(label);
    for _ in 0..10 {
        assert_eq!(typed(&cache, label, 9).await.n, 2);
    }
    assert_eq!(decoded(label), decodes);

    other.delete(&key).await.expect("delete");
    let gone = eventually(Duration::from_secs(1), async || {
        typed(&cache, label, 3).await.n == 3
    })
    .await;
    assert!(
        gone,
        "the other client's delete never reached the decorated call"
    );
    assert_eq!(runs(label), before + 2, "the delete made one miss");
}

#[tokio::test]
async fn tagged_values_are_checked_against_their_tags_on_every_hit() {
    let server = RedisServer::new();
    let prefix = unique_prefix("typed");
    let cache = near(&server, &prefix).await;
    let label = "tagged";
    let key = format!("typed:{label}");
    let value = Counted {
        label: label.to_owned(),
        n: 5,
    };
    cache
        .set_tagged(&key, &value, LONG, ["group"])
        .await
        .expect("set_tagged");
    let before = runs(label);
    // Served (checked against the tag's version) without running the body; never kept
    // decoded: every hit decodes.
    for _ in 0..5 {
        assert_eq!(typed(&cache, label, 1).await.n, 5);
    }
    let decodes = decoded(label);
    for _ in 0..5 {
        assert_eq!(typed(&cache, label, 1).await.n, 5);
    }
    assert_eq!(
        decoded(label),
        decodes + 5,
        "a tagged hit is decoded each time"
    );
    assert_eq!(runs(label), before);

    // Another client invalidates the tag: the value is no longer served.
    plain(&server, &prefix)
        .invalidate_tag("group")
        .await
        .expect("invalidate_tag");
    assert_eq!(typed(&cache, label, 1).await.n, 1);
    assert_eq!(runs(label), before + 1);
}

#[cached(cache = cache, skip(cache), ttl = 600, stale_ttl = 600, key = "stale:{label}")]
async fn with_stale_copy(cache: &CacheManager, label: &str) -> Counted {
    Counted {
        label: label.to_owned(),
        n: 7,
    }
}

#[tokio::test]
async fn options_reading_metadata_keep_decoding() {
    let server = RedisServer::new();
    let cache = near(&server, &unique_prefix("typed")).await;
    let label = "stale-copy";
    assert_eq!(with_stale_copy(&cache, label).await.n, 7);
    let decodes = decoded(label);
    for _ in 0..5 {
        assert_eq!(with_stale_copy(&cache, label).await.n, 7);
    }
    assert_eq!(decoded(label), decodes + 5);
    assert_eq!(fn_stats("with_stale_copy").0, 5);
}

#[cached(cache = cache, skip(cache), ttl = 600)]
async fn opaque(cache: &CacheManager, label: &str) -> Opaque {
    ran(label);
    Opaque {
        label: label.to_owned(),
        n: 3,
    }
}

#[cached(cache = cache, skip(cache), ttl = 600)]
async fn opaque_option(cache: &CacheManager, label: &str) -> Option<Opaque> {
    ran(label);
    Some(Opaque {
        label: label.to_owned(),
        n: 4,
    })
}

#[cached(cache = cache, skip(cache), ttl = 600)]
async fn opaque_result(cache: &CacheManager, label: &str) -> Result<Opaque, std::io::Error> {
    ran(label);
    Ok(Opaque {
        label: label.to_owned(),
        n: 5,
    })
}

#[tokio::test]
async fn values_that_are_not_clone_are_decoded_on_every_hit() {
    let server = RedisServer::new();
    let cache = near(&server, &unique_prefix("opaque")).await;
    assert_eq!(opaque(&cache, "opaque-value").await.n, 3);
    assert_eq!(
        opaque_option(&cache, "opaque-option").await.map(|o| o.n),
        Some(4)
    );
    assert_eq!(
        opaque_result(&cache, "opaque-result")
            .await
            .ok()
            .map(|o| o.n),
        Some(5)
    );
    for label in ["opaque-value", "opaque-option", "opaque-result"] {
        let decodes = decoded(label);
        for _ in 0..5 {
            match label {
                "opaque-value" => assert_eq!(opaque(&cache, label).await.n, 3),
                "opaque-option" => {
                    assert_eq!(opaque_option(&cache, label).await.map(|o| o.n), Some(4))
                }
                _ => assert_eq!(
                    opaque_result(&cache, label).await.ok().map(|o| o.n),
                    Some(5)
                ),
            }
        }
        assert_eq!(decoded(label), decodes + 5, "{label}: every hit decodes");
    }
    for label in ["opaque-value", "opaque-option", "opaque-result"] {
        assert_eq!(runs(label), 1, "{label}: hits only");
    }
}

#[cached(cache = cache, skip(cache), ttl = 600)]
async fn typed_option(cache: &CacheManager, label: &str) -> Option<Counted> {
    Some(Counted {
        label: label.to_owned(),
        n: 8,
    })
}

#[cached(cache = cache, skip(cache), ttl = 600)]
async fn typed_result(cache: &CacheManager, label: &str) -> Result<Counted, std::io::Error> {
    Ok(Counted {
        label: label.to_owned(),
        n: 9,
    })
}

#[cached(cache = cache, skip(cache), ttl = 600, cache_none = true)]
async fn typed_cache_none(cache: &CacheManager, label: &str) -> Option<Counted> {
    Some(Counted {
        label: label.to_owned(),
        n: 10,
    })
}

#[tokio::test]
async fn option_and_result_values_take_the_typed_path_too() {
    let server = RedisServer::new();
    let cache = near(&server, &unique_prefix("shapes")).await;
    let (o, r, n) = ("typed-option", "typed-result", "typed-cache-none");
    settle(o, async || {
        assert_eq!(typed_option(&cache, o).await.map(|v| v.n), Some(8))
    })
    .await;
    settle(r, async || {
        assert_eq!(typed_result(&cache, r).await.ok().map(|v| v.n), Some(9))
    })
    .await;
    settle(n, async || {
        assert_eq!(typed_cache_none(&cache, n).await.map(|v| v.n), Some(10))
    })
    .await;
    let before = (decoded(o), decoded(r), decoded(n));
    for _ in 0..10 {
        assert_eq!(typed_option(&cache, o).await.map(|v| v.n), Some(8));
        assert_eq!(typed_result(&cache, r).await.ok().map(|v| v.n), Some(9));
        assert_eq!(typed_cache_none(&cache, n).await.map(|v| v.n), Some(10));
    }
    assert_eq!((decoded(o), decoded(r), decoded(n)), before);
}

// ---- the memory backend (`CacheManager::memory`, the embedded default) ----------------------

#[cached(cache = cache, skip(cache), ttl = 10, key = "mem:{label}")]
async fn in_memory(cache: &CacheManager, label: &str, n: u64) -> Counted {
    ran(label);
    Counted {
        label: label.to_owned(),
        n,
    }
}

#[tokio::test(start_paused = true)]
async fn a_decorated_memory_hit_decodes_once_per_write() {
    let cache = CacheManager::memory();
    let label = "memory";
    let key = format!("mem:{label}");
    assert_eq!(in_memory(&cache, label, 1).await.n, 1);
    // The first hit decodes (and keeps the copy), the others clone it.
    assert_eq!(in_memory(&cache, label, 9).await.n, 1);
    let (decodes, (fn_hits, _), hits) = (decoded(label), fn_stats("in_memory"), cache.stats().hits);
    for _ in 0..50 {
        assert_eq!(in_memory(&cache, label, 9).await.n, 1);
    }
    assert_eq!(decoded(label), decodes, "a typed hit decodes nothing");
    assert_eq!(fn_stats("in_memory").0, fn_hits + 50);
    assert_eq!(cache.stats().hits, hits + 50);
    assert_eq!(runs(label), 1);

    // A write through the manager: the next call decodes the new value, once.
    let newer = Counted {
        label: label.to_owned(),
        n: 2,
    };
    cache
        .set(&key, &newer, Duration::from_secs(10))
        .await
        .expect("set");
    assert_eq!(in_memory(&cache, label, 9).await.n, 2);
    let decodes = decoded(label);
    for _ in 0..5 {
        assert_eq!(in_memory(&cache, label, 9).await.n, 2);
    }
    assert_eq!(decoded(label), decodes);

    // A write straight to the backend (another client of the store).
    let full = format!("cache:{key}");
    let newest = serde_json::to_vec(&Counted {
        label: label.to_owned(),
        n: 3,
    })
    .expect("encode");
    cache
        .backend()
        .set(&full, newest.into(), Some(Duration::from_secs(10)))
        .await
        .expect("backend set");
    assert_eq!(in_memory(&cache, label, 9).await.n, 3);

    // A delete: the next call is a miss.
    assert!(cache.delete(&key).await.expect("delete"));
    assert_eq!(in_memory(&cache, label, 4).await.n, 4);
    assert_eq!(runs(label), 2);
    assert_eq!(in_memory(&cache, label, 9).await.n, 4);
    assert_eq!(in_memory(&cache, label, 9).await.n, 4);

    // Expiry: the copy goes with the entry.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(in_memory(&cache, label, 5).await.n, 5);
    assert_eq!(runs(label), 3);
}

/// The memory backend's own hit and miss counts (`INFO stats`).
async fn keyspace(cache: &CacheManager) -> (i64, i64) {
    let info = cache.info().await.expect("info");
    let stat = |name| {
        info.field("stats", name)
            .and_then(cachette::info::InfoValue::as_i64)
            .unwrap_or(-1)
    };
    (stat("keyspace_hits"), stat("keyspace_misses"))
}

#[tokio::test]
async fn every_typed_read_is_counted_once_on_each_tier() {
    // The memory backend: a miss, the hit that decodes and keeps the copy, then hits served
    // from the copy (without awaiting): one count each, on the store and on the manager.
    let cache = CacheManager::memory();
    let label = "counted-once";
    let (hits, misses) = keyspace(&cache).await;
    let stats = cache.stats();
    for _ in 0..4 {
        assert_eq!(in_memory(&cache, label, 1).await.n, 1);
    }
    // (The miss reads twice: the read, and the leader's recheck before it runs the body.)
    assert_eq!(
        keyspace(&cache).await,
        (hits + 3, misses + 2),
        "the store's counts"
    );
    let now = cache.stats();
    assert_eq!((now.hits, now.misses), (stats.hits + 3, stats.misses + 1));

    // The near cache: a miss of the tier (read from Redis), then tier hits.
    let server = RedisServer::new();
    let cache = near(&server, &unique_prefix("counted")).await;
    let label = "near-counted-once";
    let before = cache.near_stats().expect("near stats");
    assert_eq!(typed(&cache, label, 1).await.n, 1);
    let after = cache.near_stats().expect("near stats");
    assert_eq!(
        (after.hits, after.misses),
        (before.hits, before.misses + 2),
        "a miss is counted once for the read and once for the leader's recheck"
    );
    settle(label, async || {
        assert_eq!(typed(&cache, label, 9).await.n, 1)
    })
    .await;
    let before = cache.near_stats().expect("near stats");
    for _ in 0..10 {
        assert_eq!(typed(&cache, label, 9).await.n, 1);
    }
    let after = cache.near_stats().expect("near stats");
    assert_eq!(
        (after.hits, after.misses),
        (before.hits + 10, before.misses),
        "a hit is counted once"
    );
}

#[tokio::test]
async fn a_tagged_memory_value_is_checked_on_every_hit() {
    let cache = CacheManager::memory();
    let label = "memory-tagged";
    let key = format!("mem:{label}");
    let value = Counted {
        label: label.to_owned(),
        n: 6,
    };
    cache
        .set_tagged(&key, &value, Duration::from_secs(10), ["group"])
        .await
        .expect("set_tagged");
    let decodes = decoded(label);
    for _ in 0..5 {
        assert_eq!(in_memory(&cache, label, 1).await.n, 6);
    }
    assert_eq!(
        decoded(label),
        decodes + 5,
        "a tagged hit is decoded each time"
    );
    assert_eq!(runs(label), 0);
    cache.invalidate_tag("group").await.expect("invalidate_tag");
    assert_eq!(in_memory(&cache, label, 1).await.n, 1);
    assert_eq!(runs(label), 1);
}

#[cached(cache = cache, skip(cache), ttl = 600)]
async fn opaque_in_memory(cache: &CacheManager, label: &str) -> Opaque {
    ran(label);
    Opaque {
        label: label.to_owned(),
        n: 3,
    }
}

#[tokio::test]
async fn a_memory_value_that_is_not_clone_is_decoded_on_every_hit() {
    let cache = CacheManager::memory();
    let label = "memory-opaque";
    assert_eq!(opaque_in_memory(&cache, label).await.n, 3);
    let decodes = decoded(label);
    for _ in 0..5 {
        assert_eq!(opaque_in_memory(&cache, label).await.n, 3);
    }
    assert_eq!(decoded(label), decodes + 5);
    assert_eq!(runs(label), 1);
}

/// `get_shared` on the memory backend: one decode per write, the same `Arc` handed out, any
/// write (through the manager, or another type's read) seen at once.
#[tokio::test]
async fn get_shared_on_memory_decodes_once_per_write() {
    let cache = CacheManager::memory();
    let label = "memory get_shared";
    let value = |n| Counted {
        label: label.to_owned(),
        n,
    };
    cache.set("k", &value(1), LONG).await.unwrap();
    let first = cache.get_shared::<Counted>("k").await.unwrap().unwrap();
    assert_eq!(first.n, 1);
    let decodes = decoded(label);
    let hits = cache.stats().hits;
    for _ in 0..20 {
        let again = cache.get_shared::<Counted>("k").await.unwrap().unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&first, &again),
            "the same decoded copy"
        );
        assert_eq!(
            cache.get_cloned::<Counted>("k").await.unwrap(),
            Some(value(1))
        );
    }
    assert_eq!(decoded(label), decodes, "hits decode nothing");
    assert_eq!(cache.stats().hits, hits + 40);
    cache.set("k", &value(2), LONG).await.unwrap();
    assert_eq!(
        cache.get_shared::<Counted>("k").await.unwrap().unwrap().n,
        2
    );
    assert_eq!(decoded(label), decodes + 1);
    cache.delete("k").await.unwrap();
    assert!(cache.get_shared::<Counted>("k").await.unwrap().is_none());
    assert!(
        cache.get_shared::<Counted>("").await.is_err(),
        "an empty key is refused"
    );
}
