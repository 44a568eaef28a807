//! Tags (`set_tagged`, `LoadOptions::tags`, `invalidate_tag(s)`, `invalidate_all`), written
//! once and run on every backend as part of the conformance suite (`conformance.rs` lists
//! them in `with_conformance_scenarios!`).
//!
//! A second manager on the same prefix stands for another process. With the near cache, its
//! invalidations reach this manager's tier through the tracking channel, asynchronously: those
//! checks wait (bounded) instead of asserting at once.

use std::time::Duration;

use cachette::{CacheManager, ErrorKind, LoadOptions, Outcome, Ttl};

use crate::support::{unique_prefix, Fixture};

const TTL: Duration = Duration::from_secs(300);

/// `cache.get::<u32>(key)` equals `want`: at once, or (near cache, where another manager's
/// write reaches the tier asynchronously) within two seconds.
async fn eventually_get(cache: &CacheManager, key: &str, want: Option<u32>) {
    let patient = cache.near_stats().is_some();
    for _ in 0..100 {
        let got = cache.get::<u32>(key).await.unwrap();
        if got == want || !patient {
            assert_eq!(got, want, "{key}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{key} never became {want:?}");
}

/// A read-through of `key` with `opts`: the value and whether the loader ran.
async fn load(cache: &CacheManager, key: &str, opts: &LoadOptions, fresh: u32) -> (u32, Outcome) {
    cache
        .get_or_load_traced(
            key,
            opts,
            None,
            |_| true,
            || async move { Ok::<_, std::io::Error>(fresh) },
        )
        .await
        .unwrap()
}

pub(crate) async fn tags_invalidate_only_their_entries(fx: &Fixture) {
    let c = fx.fresh();
    let other = fx.manager(c.prefix());
    c.set_tagged("a", &1u32, TTL, ["t1", "t2"]).await.unwrap();
    c.set_tagged("b", &2u32, TTL, vec!["t2".to_owned()])
        .await
        .unwrap();
    c.set_tagged("c", &3u32, Ttl::Never, &["t3"][..])
        .await
        .unwrap();
    c.set("d", &4u32, TTL).await.unwrap();
    for (key, want) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        assert_eq!(c.get::<u32>(key).await.unwrap(), Some(want), "{key}");
        // Typed hits (kept decoded with the near cache's entry) too.
        assert_eq!(
            c.get_shared::<u32>(key).await.unwrap().as_deref(),
            Some(&want)
        );
        assert_eq!(other.get::<u32>(key).await.unwrap(), Some(want), "{key}");
    }
    // Invalidated by another manager (another process).
    other.invalidate_tag("t1").await.unwrap();
    eventually_get(&c, "a", None).await;
    assert_eq!(c.get_shared::<u32>("a").await.unwrap(), None);
    assert_eq!(c.get_cloned::<u32>("a").await.unwrap(), None);
    assert_eq!(other.get::<u32>("a").await.unwrap(), None);
    assert_eq!(*c.get_shared::<u32>("b").await.unwrap().unwrap(), 2);
    assert_eq!(c.get_raw("a").await.unwrap(), None);
    assert_eq!(c.get::<u32>("b").await.unwrap(), Some(2));
    c.invalidate_tags(["t2", "t3"]).await.unwrap();
    for key in ["a", "b", "c"] {
        assert_eq!(c.get::<u32>(key).await.unwrap(), None, "{key}");
        eventually_get(&other, key, None).await;
    }
    assert_eq!(c.get::<u32>("d").await.unwrap(), Some(4));
    // A new write under an invalidated tag is served again.
    c.set_tagged("a", &5u32, TTL, ["t1"]).await.unwrap();
    assert_eq!(c.get::<u32>("a").await.unwrap(), Some(5));
    eventually_get(&other, "a", Some(5)).await;
}

pub(crate) async fn tagged_values_stay_plain_json(fx: &Fixture) {
    let c = fx.fresh();
    let value = serde_json::json!({"name": "Ada", "langs": ["en", "fr"]});
    c.set_tagged("user:1", &value, TTL, ["user:1"])
        .await
        .unwrap();
    // What any client reads at the key: JSON (behind two bytes of JSON whitespace).
    let stored = c
        .backend()
        .get(&c.full_key("user:1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored[..2], b"\t\r");
    let parsed: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(parsed, value);
    // `get_raw` gives exactly the codec's bytes.
    let raw = c.get_raw("user:1").await.unwrap().unwrap();
    assert_eq!(raw.as_ref(), serde_json::to_vec(&value).unwrap().as_slice());
    let got: serde_json::Value = c.get("user:1").await.unwrap().unwrap();
    assert_eq!(got, value);
    // Bytes that would pass for a tagged value are refused as raw values.
    let err = c.set_raw("raw", b"\t\r{}".to_vec(), TTL).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    c.set_raw("raw", b"\t{}".to_vec(), TTL).await.unwrap();
    assert_eq!(c.get_raw("raw").await.unwrap().unwrap().as_ref(), b"\t{}");
}

pub(crate) async fn read_through_honours_tags(fx: &Fixture) {
    let c = fx.fresh();
    let other = fx.manager(c.prefix());
    let opts = LoadOptions::ttl(TTL).tags(["users", "user:1"]);
    assert_eq!(load(&c, "p:1", &opts, 1).await, (1, Outcome::Miss));
    assert_eq!(load(&c, "p:1", &opts, 9).await, (1, Outcome::Hit));
    // Readers without the tags see the entry too, while it is current.
    assert_eq!(c.get::<u32>("p:1").await.unwrap(), Some(1));
    let plain = LoadOptions::ttl(TTL);
    assert_eq!(load(&c, "p:1", &plain, 9).await, (1, Outcome::Hit));
    // Another tag changes nothing.
    c.invalidate_tag("user:2").await.unwrap();
    assert_eq!(load(&c, "p:1", &opts, 9).await, (1, Outcome::Hit));
    // Either tag, from another manager.
    other.invalidate_tag("user:1").await.unwrap();
    eventually_get(&c, "p:1", None).await;
    assert_eq!(load(&c, "p:1", &opts, 2).await, (2, Outcome::Miss));
    eventually_get(&other, "p:1", Some(2)).await;
    c.invalidate_tag("users").await.unwrap();
    assert_eq!(load(&c, "p:1", &opts, 3).await, (3, Outcome::Miss));
    // An entry written without these tags is a miss for a tagged reader (and is replaced).
    c.set("p:2", &7u32, TTL).await.unwrap();
    assert_eq!(load(&c, "p:2", &opts, 8).await, (8, Outcome::Miss));
    c.invalidate_tag("users").await.unwrap();
    assert_eq!(c.get::<u32>("p:2").await.unwrap(), None);
    // So is one written with other tags.
    c.set_tagged("p:3", &7u32, TTL, ["users"]).await.unwrap();
    assert_eq!(load(&c, "p:3", &opts, 8).await, (8, Outcome::Miss));
    // With early-refresh metadata and a stale copy beside it, a hit is still a hit.
    let meta = LoadOptions::ttl(TTL)
        .stale_ttl(Duration::from_secs(60))
        .tags(["m"]);
    assert_eq!(load(&c, "p:4", &meta, 1).await, (1, Outcome::Miss));
    assert_eq!(load(&c, "p:4", &meta, 9).await, (1, Outcome::Hit));
    c.invalidate_tag("m").await.unwrap();
    assert_eq!(load(&c, "p:4", &meta, 2).await, (2, Outcome::Miss));
}

pub(crate) async fn invalidation_during_a_load_wins(fx: &Fixture) {
    let c = fx.fresh();
    let opts = LoadOptions::ttl(TTL).tags(["t"]);
    let inner = c.clone();
    let (value, outcome) = c
        .get_or_load_traced(
            "k",
            &opts,
            None,
            |_| true,
            || async move {
                // The data changes (and its tag is invalidated) while this loader runs.
                inner.invalidate_tag("t").await.unwrap();
                Ok::<_, std::io::Error>(1u32)
            },
        )
        .await
        .unwrap();
    assert_eq!((value, outcome), (1, Outcome::Miss));
    // Stored under the versions read before the loader started: already out of date.
    assert_eq!(c.get::<u32>("k").await.unwrap(), None);
    assert_eq!(load(&c, "k", &opts, 2).await, (2, Outcome::Miss));
    assert_eq!(load(&c, "k", &opts, 9).await, (2, Outcome::Hit));
}

pub(crate) async fn invalidate_all_covers_tagged_entries_of_the_namespace(fx: &Fixture) {
    let c = fx.fresh();
    let neighbour = fx.manager(&unique_prefix("n"));
    c.set_tagged("a", &1u32, TTL, ["x"]).await.unwrap();
    c.set_tagged("b", &2u32, TTL, None::<&str>).await.unwrap();
    c.set("c", &3u32, TTL).await.unwrap();
    let opts = LoadOptions::ttl(TTL).tags(["y"]);
    assert_eq!(load(&c, "d", &opts, 4).await, (4, Outcome::Miss));
    neighbour.set_tagged("a", &5u32, TTL, ["x"]).await.unwrap();
    c.invalidate_all().await.unwrap();
    for key in ["a", "b", "d"] {
        assert_eq!(c.get::<u32>(key).await.unwrap(), None, "{key}");
    }
    // Untagged entries are not covered (`clear` is for them), other namespaces neither.
    assert_eq!(c.get::<u32>("c").await.unwrap(), Some(3));
    assert_eq!(neighbour.get::<u32>("a").await.unwrap(), Some(5));
    assert_eq!(load(&c, "d", &opts, 6).await, (6, Outcome::Miss));
    // `clear` still removes everything, tag keys and documents included.
    c.clear().await.unwrap();
    assert_eq!(c.keys("*").await.unwrap(), Vec::<String>::new());
}

pub(crate) async fn get_many_checks_tags(fx: &Fixture) {
    let c = fx.fresh();
    c.set_many_tagged([("a", 1u32), ("b", 2u32)], TTL, ["ab"])
        .await
        .unwrap();
    c.set_tagged("c", &3u32, TTL, ["c"]).await.unwrap();
    c.set("d", &4u32, TTL).await.unwrap();
    let keys = ["a", "b", "c", "d", "e"];
    assert_eq!(
        c.get_many::<u32, _>(&keys).await.unwrap(),
        [Some(1), Some(2), Some(3), Some(4), None]
    );
    c.invalidate_tag("ab").await.unwrap();
    assert_eq!(
        c.get_many::<u32, _>(&keys).await.unwrap(),
        [None, None, Some(3), Some(4), None]
    );
    c.invalidate_tags(vec!["c"]).await.unwrap();
    assert_eq!(
        c.get_many::<u32, _>(&keys).await.unwrap(),
        [None, None, None, Some(4), None]
    );
}

pub(crate) async fn a_lost_tag_version_invalidates(fx: &Fixture) {
    let c = fx.fresh();
    c.set_tagged("k", &1u32, TTL, ["t"]).await.unwrap();
    let opts = LoadOptions::ttl(TTL).tags(["t"]);
    assert_eq!(load(&c, "k", &opts, 9).await, (1, Outcome::Hit));
    // The tag key is gone (evicted under memory pressure, deleted by hand): never revived.
    let tag_keys = c.keys("#tag:*").await.unwrap();
    assert_eq!(tag_keys, ["#tag:", "#tag:t"]);
    assert!(c.delete("#tag:t").await.unwrap());
    assert_eq!(c.get::<u32>("k").await.unwrap(), None);
    assert_eq!(load(&c, "k", &opts, 2).await, (2, Outcome::Miss));
    assert_eq!(load(&c, "k", &opts, 9).await, (2, Outcome::Hit));
}

pub(crate) async fn tags_are_checked_and_documents_expire(fx: &Fixture) {
    let c = fx.fresh();
    let err = c.set_tagged("k", &1u32, TTL, ["ok", ""]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        c.invalidate_tag("").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let strict = LoadOptions::ttl(TTL).tags([""]).fallback_on_error(false);
    let refused = c
        .get_or_load("k", &strict, || async { Ok::<_, std::io::Error>(1u32) })
        .await;
    assert!(
        matches!(&refused, Err(cachette::LoadError::Cache(e)) if e.kind() == ErrorKind::InvalidInput),
        "{refused:?}"
    );
    // The tag document lives and dies with its value.
    c.set_tagged("short", &1u32, Duration::from_millis(300), ["t"])
        .await
        .unwrap();
    let keys = c.keys("short*").await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[1].starts_with("short#tags{"), "{keys:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.keys("short*").await.unwrap(), Vec::<String>::new());
    // A plain write over a tagged key makes it untagged.
    c.set_tagged("k", &1u32, TTL, ["t"]).await.unwrap();
    c.set("k", &2u32, TTL).await.unwrap();
    c.invalidate_tag("t").await.unwrap();
    assert_eq!(c.get::<u32>("k").await.unwrap(), Some(2));
}

/// With the near cache, a tagged hit is answered by the tier alone (value, tag document and
/// tag versions), and another process's invalidation still reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_serves_tagged_hits_without_a_command() {
    let server = cachette_test_support::RedisServer::new();
    let prefix = unique_prefix("near-tags");
    let near = || {
        CacheManager::builder()
            .url(server.url())
            .key_prefix(&prefix)
            .command_timeout(Duration::from_secs(2))
            .near_cache(Some(cachette::NearCacheOptions::default()))
            .build()
            .unwrap()
    };
    let (a, b) = (near(), near());
    let opts = LoadOptions::ttl(TTL).tags(["user:1", "users"]);
    assert_eq!(load(&a, "k", &opts, 1).await.0, 1);
    // Until the tier holds every key of the read (the first replies may cross the
    // invalidations of our own writes, and are then rightly not kept).
    let mut held = false;
    for _ in 0..200 {
        let misses = a.near_stats().unwrap().misses;
        let (value, outcome) = load(&a, "k", &opts, 9).await;
        assert_eq!((value, outcome), (1, Outcome::Hit));
        if a.near_stats().unwrap().misses == misses {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(held, "the tagged read never came from the tier alone");
    let before = a.near_stats().unwrap();
    for _ in 0..20 {
        assert_eq!(load(&a, "k", &opts, 9).await, (1, Outcome::Hit));
    }
    let after = a.near_stats().unwrap();
    assert_eq!(after.misses, before.misses, "a tagged hit sent a command");
    // Value, document, namespace tag and two tags: five tier hits per read.
    assert_eq!(after.hits - before.hits, 20 * 5);
    // Another process invalidates: the tier learns it through tracking.
    b.invalidate_tag("users").await.unwrap();
    let mut reloaded = false;
    for _ in 0..200 {
        if load(&a, "k", &opts, 2).await == (2, Outcome::Miss) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(reloaded, "the invalidation never reached the near cache");
}
