//! Tags (issue 14): a tagged read-through hit beside an untagged one, and `invalidate_tag`
//! with a million tagged entries, on the memory backend and on Redis.
//!
//! Targets: a tagged hit at most 5 % slower than an untagged one; `invalidate_tag` at most
//! 1 ms whatever the number of tagged entries.

use std::time::{Duration, Instant};

use cachette::backend::MemoryConfig;
use cachette::{CacheManager, LoadOptions, Ttl};
use serde::{de::DeserializeOwned, Serialize};

use crate::{compare, op, Op, Plan, Row};

/// How many entries carry the tag that `invalidate_tag` renews.
const TAGGED: usize = 1_000_000;
/// Entries per `set_many_tagged` while seeding.
const SEED_BATCH: usize = 10_000;

/// A read-through hit of `key` with `options` (the loader never runs).
fn hit<T>(cache: &CacheManager, key: &'static str, options: LoadOptions) -> Op
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let cache = cache.clone();
    let options = std::sync::Arc::new(options);
    op(move || {
        let (cache, options) = (cache.clone(), options.clone());
        async move {
            let (v, outcome) = cache
                .get_or_load_traced(
                    key,
                    &options,
                    None,
                    |_: &T| true,
                    || async { Err::<T, _>("the entry is seeded: a hit never loads") },
                )
                .await
                .expect("a hit");
            assert_eq!(outcome, cachette::Outcome::Hit);
            std::hint::black_box(v);
        }
    })
}

/// A plain `get` of `key`.
fn get<T: DeserializeOwned + Send + 'static>(cache: &CacheManager, key: &'static str) -> Op {
    let cache = cache.clone();
    op(move || {
        let cache = cache.clone();
        async move {
            let v: Option<T> = cache.get(key).await.expect("get");
            std::hint::black_box(v.expect("present"));
        }
    })
}

/// The section: rows, and a line per target printed as it is measured.
pub async fn section<T>(redis_url: &str, plan: Plan, value: T) -> Vec<Row>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let memory = CacheManager::builder()
        .key_prefix("bench-tags:")
        .memory_config(MemoryConfig {
            max_entries: None,
            max_bytes: None,
            ..MemoryConfig::default()
        })
        .build()
        .expect("memory manager");
    let redis = CacheManager::builder()
        .url(redis_url)
        .key_prefix("bench-tags:")
        .command_timeout(Duration::from_secs(30))
        .build()
        .expect("redis manager");
    let ttl = Duration::from_secs(3600);
    let tagged = LoadOptions::ttl(ttl).tags(["user:42", "users"]);
    let untagged = LoadOptions::ttl(ttl);
    let mut rows = Vec::new();
    for (backend, cache) in [("memory", &memory), ("redis", &redis)] {
        cache
            .set("plain", &value, ttl)
            .await
            .expect("seed the untagged entry");
        cache
            .set_tagged("tagged", &value, ttl, ["user:42", "users"])
            .await
            .expect("seed the tagged entry");
        for concurrency in [1, 64] {
            println!("\ntagged vs untagged hit ({backend}), {concurrency} task(s)");
            let group = compare(
                &format!("tags hit {backend} x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    (
                        "get_or_load hit, untagged",
                        hit::<T>(cache, "plain", untagged.clone()),
                    ),
                    (
                        "get_or_load hit, 2 tags",
                        hit::<T>(cache, "tagged", tagged.clone()),
                    ),
                    ("CacheManager::get, untagged", get::<T>(cache, "plain")),
                    (
                        "CacheManager::get of a tagged entry",
                        get::<T>(cache, "tagged"),
                    ),
                ],
            )
            .await;
            if let [untagged, tagged, ..] = group.as_slice() {
                let slower = (untagged.ops_per_sec / tagged.ops_per_sec - 1.0) * 100.0;
                let added_ns = 1e9 / tagged.ops_per_sec - 1e9 / untagged.ops_per_sec;
                println!(
                    "    a tagged hit is {slower:+.1}% slower ({added_ns:+.0} ns per call; target <= 5 %)"
                );
            }
            rows.extend(group);
        }
        rows.extend(invalidate_section(backend, cache, plan).await);
    }
    rows
}

/// Seeds [`TAGGED`] entries under one tag, then measures `invalidate_tag` of it.
async fn invalidate_section(backend: &str, cache: &CacheManager, plan: Plan) -> Vec<Row> {
    let group_name = format!("tags invalidate 1M {backend}");
    if std::env::var("BENCH_FILTER").is_ok_and(|f| !group_name.contains(f.as_str())) {
        return Vec::new();
    }
    let started = Instant::now();
    for batch in 0..TAGGED / SEED_BATCH {
        let items = (0..SEED_BATCH).map(|i| {
            let n = batch * SEED_BATCH + i;
            (format!("bulk:{n}"), n as u64)
        });
        cache
            .set_many_tagged(items, Ttl::Default, ["bulk", "users"])
            .await
            .expect("seed tagged entries");
    }
    println!(
        "\ninvalidate_tag with {TAGGED} tagged entries ({backend}; seeded in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        cache.get::<u64>("bulk:4242").await.expect("get"),
        Some(4242)
    );
    let invalidate = {
        let cache = cache.clone();
        op(move || {
            let cache = cache.clone();
            async move {
                cache.invalidate_tag("bulk").await.expect("invalidate_tag");
            }
        })
    };
    let group = compare(
        &group_name,
        1,
        1,
        plan,
        vec![("invalidate_tag (1M tagged entries)", invalidate)],
    )
    .await;
    if let Some(row) = group.first() {
        println!(
            "    invalidate_tag: {:.1} µs per call (target <= 1000 µs)",
            1e6 / row.ops_per_sec
        );
    }
    // Every entry is out of date now (sampled), without a scan.
    for n in [0, 4242, TAGGED - 1] {
        let key = format!("bulk:{n}");
        assert_eq!(cache.get::<u64>(&key).await.expect("get"), None, "{key}");
    }
    cache.delete_pattern("bulk:*").await.expect("clean up");
    group
}
