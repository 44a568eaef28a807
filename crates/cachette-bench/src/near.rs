//! The near cache (issue 13), in the same run as the rest:
//!
//! - hot-key `get` at 1 and 64 tasks: Redis alone, the near cache (`get`, which decodes its
//!   JSON on every hit, and `get_shared`, which hands out the value decoded once), the memory
//!   backend, and moka (with the same JSON decode, and holding an `Arc<T>`);
//! - invalidation latency: a write through one manager until the other manager's tier has
//!   applied the server's invalidation (p50/p99, beside the write's own round trip);
//! - a `#[cached]` hit on the near cache (served from the decoded copy: no decoding) beside
//!   `get_shared`, `get`, a `#[cached]` hit on the memory backend and the `cached` crate's
//!   in-memory hit, at 1 and 64 tasks, in the harness and in plain loops (ns per hit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cached::Cached;
use cachette::{CacheManager, NearCacheOptions, Ttl};
use hdrhistogram::Histogram;

use crate::alternatives::BenchValue;
use crate::{compare, op, Op, Plan, Row};

/// A manager with a near cache on `url` under `prefix`, once its channel vouches for it.
///
/// # Panics
/// When the channel does not come up within 5 s.
pub async fn near_manager(url: &str, prefix: &str) -> CacheManager {
    let cache = CacheManager::builder()
        .url(url)
        .key_prefix(prefix)
        .near_cache(Some(NearCacheOptions::default()))
        .build()
        .expect("near-cache manager");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cache.near_stats().is_some_and(|s| s.live) {
        assert!(Instant::now() < deadline, "the near cache never came up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache
}

/// Reads `key` until the tier answers it.
async fn hold<V: BenchValue>(cache: &CacheManager, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = cache.near_stats().map_or(0, |s| s.hits);
        let _: Option<V> = cache.get(key).await.expect("get");
        if cache.near_stats().map_or(0, |s| s.hits) > hits {
            return;
        }
        assert!(Instant::now() < deadline, "{key} never entered the tier");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The hot-key rows and the invalidation latency; returns the rows and a JSON note with the
/// latencies.
///
/// # Panics
/// When the server or a contender fails: a benchmark has nothing to report then.
pub async fn section<V: BenchValue>(
    url: &str,
    plan: Plan,
    value: V,
) -> (Vec<Row>, serde_json::Value) {
    let redis = CacheManager::builder()
        .url(url)
        .key_prefix("near:")
        .build()
        .expect("redis manager");
    let memory = CacheManager::builder()
        .key_prefix("near:")
        .build()
        .expect("memory manager");
    let near = near_manager(url, "near:").await;
    redis
        .set("profile", &value, Ttl::Never)
        .await
        .expect("seed");
    memory
        .set("profile", &value, Ttl::Never)
        .await
        .expect("seed");
    hold::<V>(&near, "profile").await;

    let json = Bytes::from(serde_json::to_vec(&value).expect("encode"));
    let moka_bytes: moka::future::Cache<String, Bytes> =
        moka::future::Cache::builder().max_capacity(10_000).build();
    moka_bytes.insert("profile".to_owned(), json).await;
    let moka_typed: moka::future::Cache<String, Arc<V>> =
        moka::future::Cache::builder().max_capacity(10_000).build();
    moka_typed
        .insert("profile".to_owned(), Arc::new(value.clone()))
        .await;

    let get = |cache: &CacheManager| -> Op {
        let cache = cache.clone();
        op(move || {
            let cache = cache.clone();
            async move {
                let v: Option<V> = cache.get("profile").await.expect("get");
                std::hint::black_box(v.expect("present"));
            }
        })
    };
    let shared: Op = {
        let cache = near.clone();
        op(move || {
            let cache = cache.clone();
            async move {
                let v: Option<Arc<V>> = cache.get_shared("profile").await.expect("get_shared");
                std::hint::black_box(v.expect("present"));
            }
        })
    };
    let moka_decode: Op = op(move || {
        let cache = moka_bytes.clone();
        async move {
            let bytes = cache.get("profile").await.expect("present");
            let v: V = serde_json::from_slice(&bytes).expect("decode");
            std::hint::black_box(v);
        }
    });
    let moka_typed_for_arc = moka_typed.clone();
    let moka_arc: Op = op(move || {
        let cache = moka_typed_for_arc.clone();
        async move {
            std::hint::black_box(cache.get("profile").await.expect("present"));
        }
    });

    let mut rows = Vec::new();
    for concurrency in [1, 64] {
        println!("\nnear cache: hot-key get, {concurrency} task(s) (baseline: Redis alone)");
        rows.extend(
            compare(
                &format!("near get x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    ("CacheManager::get (redis)", get(&redis)),
                    ("CacheManager::get (redis + near cache)", get(&near)),
                    ("CacheManager::get_shared (near, Arc<T>)", shared.clone()),
                    ("CacheManager::get (memory)", get(&memory)),
                    ("moka future::Cache get + JSON decode", moka_decode.clone()),
                    ("moka future::Cache get Arc<T>", moka_arc.clone()),
                ],
            )
            .await,
        );
    }
    if let Some(s) = near.near_stats() {
        println!(
            "    near cache: {} hits, {} misses, {} invalidations",
            s.hits, s.misses, s.invalidations
        );
    }
    let tight = tight_loops(&near, &moka_typed).await;
    let (decorated_rows, decorated_ns) = decorated(&near, &memory, plan, &value).await;
    rows.extend(decorated_rows);
    let latency = invalidation_latency(url, &value).await;
    (
        rows,
        serde_json::json!({
            "invalidation": latency,
            "tight_loop_ns": tight,
            "decorated_hit_ns": decorated_ns,
        }),
    )
}

/// Calls per plain loop (over all its tasks).
const LOOP_CALLS: usize = 2_000_000;

/// Runs `$body` (an expression awaiting one call, with the clones of `$captures` in scope) in
/// a plain loop on each of `$tasks` spawned tasks, [`LOOP_CALLS`] calls in all; ns per call of
/// the whole run (with 64 tasks: the inverse of the throughput).
macro_rules! plain_loop {
    ($tasks:expr, ($($capture:ident),*), $body:block) => {{
        let tasks: usize = $tasks;
        let per_task = LOOP_CALLS / tasks;
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                $(let $capture = $capture.clone();)*
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        std::hint::black_box($body);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("a loop task");
        }
        start.elapsed().as_nanos() as f64 / (per_task * tasks) as f64
    }};
}

/// The decorated function of the `#[cached]` rows: its value is `Clone + Send + Sync +
/// 'static`, so a near-cache hit clones the decoded copy.
#[cachette::cached(cache = cache, skip(cache, value), ttl = None)]
async fn decorated_profile<V: BenchValue>(cache: &CacheManager, value: &V, id: u64) -> V {
    let _ = id;
    value.clone()
}

/// The bench value without `Clone`: the hits of a function returning it decode (the path
/// every decorated hit took before the typed one).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct NoClone<V>(V);

/// [`decorated_profile`] returning [`NoClone`]: its hits decode.
#[cachette::cached(cache = cache, skip(cache, value), ttl = None)]
async fn decorated_decoding<V: BenchValue>(cache: &CacheManager, value: &V, id: u64) -> NoClone<V> {
    let _ = id;
    NoClone(value.clone())
}

/// The `cached` crate's memoization of an async function, as its `#[cached]` expands it (an
/// `async_lock::Mutex` around an `UnboundCache`, the hit cloned out under the lock): written
/// out, since this build has the crate without its `proc_macro` feature.
async fn cached_crate<V: Clone>(
    store: &cached::async_sync::Mutex<cached::stores::UnboundCache<u64, V>>,
    value: &V,
    id: u64,
) -> V {
    {
        let mut cache = store.lock().await;
        if let Some(hit) = cache.cache_get(&id) {
            return hit.to_owned();
        }
    }
    let loaded = value.clone();
    store.lock().await.cache_set(id, loaded.clone());
    loaded
}

/// The `#[cached]` rows (`near #[cached] x1`, `x64`) and their plain loops (`near #[cached]
/// loop`): a decorated hit on the near cache against `get_shared`, `get`, a decorated hit on
/// the memory backend, the `cached` crate's in-memory hit, and decorated hits that decode (a
/// value that is not `Clone`) on both. Returns the rows and the loops'
/// ns per hit.
async fn decorated<V: BenchValue>(
    near: &CacheManager,
    memory: &CacheManager,
    plan: Plan,
    value: &V,
) -> (Vec<Row>, serde_json::Value) {
    const GROUPS: [&str; 3] = [
        "near #[cached] x1",
        "near #[cached] x64",
        "near #[cached] loop",
    ];
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !GROUPS.iter().any(|g| g.contains(filter.as_str())) {
            return (Vec::new(), serde_json::Value::Null);
        }
    }
    // Seeds both entries (a miss each), then waits until the near cache holds its entry
    // decoded (the function's hits move the tier's hit counter).
    std::hint::black_box(decorated_profile(memory, value, 42).await);
    std::hint::black_box(decorated_profile(near, value, 42).await);
    std::hint::black_box(decorated_decoding(memory, value, 42).await);
    std::hint::black_box(decorated_decoding(near, value, 42).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = near.near_stats().map_or(0, |s| s.hits);
        std::hint::black_box(decorated_profile(near, value, 42).await);
        if near.near_stats().map_or(0, |s| s.hits) > hits {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the decorated entry never entered the tier"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let key = cachette::key::DefaultKey::function(module_path!(), "decorated_profile")
        .arg(&42u64)
        .build()
        .expect("key");
    hold::<V>(near, &key).await;
    let decoding_key = cachette::key::DefaultKey::function(module_path!(), "decorated_decoding")
        .arg(&42u64)
        .build()
        .expect("key");
    hold::<V>(near, &decoding_key).await;
    let store = Arc::new(cached::async_sync::Mutex::new(
        cached::stores::UnboundCache::new(),
    ));
    std::hint::black_box(cached_crate(&store, value, 42).await);

    let value = Arc::new(value.clone());
    let macro_hit = |cache: &CacheManager| -> Op {
        let (cache, value) = (cache.clone(), value.clone());
        op(move || {
            let (cache, value) = (cache.clone(), value.clone());
            async move {
                std::hint::black_box(decorated_profile(&cache, &*value, 42).await);
            }
        })
    };
    let decoding_hit = |cache: &CacheManager| -> Op {
        let (cache, value) = (cache.clone(), value.clone());
        op(move || {
            let (cache, value) = (cache.clone(), value.clone());
            async move {
                std::hint::black_box(decorated_decoding(&cache, &*value, 42).await);
            }
        })
    };
    let shared: Op = {
        let (cache, key) = (near.clone(), key.clone());
        op(move || {
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                let v: Option<Arc<V>> = cache.get_shared(&key).await.expect("get_shared");
                std::hint::black_box(v.expect("present"));
            }
        })
    };
    let get: Op = {
        let (cache, key) = (near.clone(), key.clone());
        op(move || {
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                let v: Option<V> = cache.get(&key).await.expect("get");
                std::hint::black_box(v.expect("present"));
            }
        })
    };
    let crate_hit: Op = {
        let (store, value) = (store.clone(), value.clone());
        op(move || {
            let (store, value) = (store.clone(), value.clone());
            async move {
                std::hint::black_box(cached_crate(&store, &*value, 42).await);
            }
        })
    };

    let mut rows = Vec::new();
    for concurrency in [1, 64] {
        println!(
            "\nnear cache: a #[cached] hit, {concurrency} task(s) (baseline: the decorated hit)"
        );
        rows.extend(
            compare(
                &format!("near #[cached] x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    ("#[cached] hit (near, typed)", macro_hit(near)),
                    ("CacheManager::get_shared (near, Arc<T>)", shared.clone()),
                    ("CacheManager::get (near, decodes)", get.clone()),
                    ("#[cached] hit (memory, typed)", macro_hit(memory)),
                    ("#[cached] hit (near, !Clone: decodes)", decoding_hit(near)),
                    (
                        "#[cached] hit (memory, !Clone: decodes)",
                        decoding_hit(memory),
                    ),
                    ("cached crate: async #[cached] in memory", crate_hit.clone()),
                ],
            )
            .await,
        );
    }

    if std::env::var("BENCH_FILTER").is_ok_and(|f| !GROUPS[2].contains(f.as_str())) {
        return (rows, serde_json::Value::Null);
    }
    let names = [
        "#[cached] (near, typed)",
        "get_shared (near)",
        "get (near)",
        "#[cached] (memory, typed)",
        "cached crate (memory)",
        "#[cached] (near, decodes)",
        "#[cached] (memory, decodes)",
    ];
    let (near, memory) = (near.clone(), memory.clone());
    let mut notes = serde_json::Map::new();
    for tasks in [1usize, 64] {
        let mut best = [f64::MAX; 7];
        for _ in 0..3 {
            let ns = [
                plain_loop!(tasks, (near, value), {
                    decorated_profile(&near, &*value, 42).await
                }),
                plain_loop!(tasks, (near, key), {
                    let v: Option<Arc<V>> = near.get_shared(&key).await.expect("get_shared");
                    v
                }),
                plain_loop!(tasks, (near, key), {
                    let v: Option<V> = near.get(&key).await.expect("get");
                    v
                }),
                plain_loop!(tasks, (memory, value), {
                    decorated_profile(&memory, &*value, 42).await
                }),
                plain_loop!(tasks, (store, value), {
                    cached_crate(&store, &*value, 42).await
                }),
                plain_loop!(tasks, (near, value), {
                    decorated_decoding(&near, &*value, 42).await
                }),
                plain_loop!(tasks, (memory, value), {
                    decorated_decoding(&memory, &*value, 42).await
                }),
            ];
            for (best, ns) in best.iter_mut().zip(ns) {
                *best = best.min(ns);
            }
        }
        println!(
            "\nnear cache: a #[cached] hit in plain loops on {tasks} task(s) (no harness; best of \
             3 x {LOOP_CALLS} calls; ns per hit, all tasks together)"
        );
        for (name, ns) in names.iter().zip(best) {
            println!(
                "  {name:<26} {ns:>6.0} ns  ({:.2}x the typed hit)",
                ns / best[0]
            );
        }
        if tasks == 1 {
            println!(
                "  target: a decorated in-process hit <= 200 ns: {}",
                if best[0] <= 200.0 { "met" } else { "missed" }
            );
        }
        let row: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(best)
            .map(|(name, ns)| ((*name).to_owned(), serde_json::json!(ns)))
            .collect();
        notes.insert(format!("tasks_{tasks}"), serde_json::Value::Object(row));
    }
    (rows, serde_json::Value::Object(notes))
}

/// The cost of one hit without the harness around it (no boxed future, no clock, no
/// histogram per call): a plain loop of awaited calls on one task, ns per call.
async fn tight_loops<V: BenchValue>(
    near: &CacheManager,
    moka: &moka::future::Cache<String, Arc<V>>,
) -> serde_json::Value {
    const CALLS: u32 = 2_000_000;
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !"near get x1".contains(filter.as_str()) {
            return serde_json::Value::Null;
        }
    }
    let key = "profile".to_owned();
    let mut best = [f64::MAX; 3];
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..CALLS {
            let v: Option<Arc<V>> = near.get_shared("profile").await.expect("get_shared");
            std::hint::black_box(v);
        }
        best[0] = best[0].min(t.elapsed().as_nanos() as f64 / f64::from(CALLS));
        let t = Instant::now();
        for _ in 0..CALLS {
            let v: Option<V> = near.get("profile").await.expect("get");
            std::hint::black_box(v);
        }
        best[1] = best[1].min(t.elapsed().as_nanos() as f64 / f64::from(CALLS));
        let t = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(moka.get(&key).await);
        }
        best[2] = best[2].min(t.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    println!(
        "\nnear cache: a hit in a plain loop on one task (no harness; best of 3 x {CALLS}):\n  \
         get_shared (Arc<T>) {:.0} ns, get (+ JSON decode) {:.0} ns, moka get Arc<T> {:.0} ns\n  \
         targets: a hit <= 200 ns ({}), a shared typed hit <= 100 ns ({})",
        best[0],
        best[1],
        best[2],
        if best[1] <= 200.0 {
            "get: met"
        } else {
            "get: missed"
        },
        if best[0] <= 100.0 { "met" } else { "missed" },
    );
    serde_json::json!({
        "get_shared": best[0],
        "get": best[1],
        "moka_get_arc": best[2],
    })
}

/// Writes through one manager and times, per write, how long until another manager's tier
/// has applied its invalidation (it spins on that manager's counter), beside the write's own
/// round trip.
async fn invalidation_latency<V: BenchValue>(url: &str, value: &V) -> serde_json::Value {
    const ROUNDS: usize = 2_000;
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !"near invalidation".contains(filter.as_str()) {
            return serde_json::Value::Null;
        }
    }
    let writer = near_manager(url, "near-inv:").await;
    let reader = near_manager(url, "near-inv:").await;
    let invalidations = || reader.near_stats().map_or(0, |s| s.invalidations);
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let (mut applied, mut round_trip) = (new_hist(), new_hist());
    let mut timed_out = 0;
    for _ in 0..ROUNDS {
        // The reader holds the key, and nothing is on its way.
        writer.set("k", value, Ttl::Never).await.expect("set");
        tokio::time::sleep(Duration::from_millis(1)).await;
        hold::<V>(&reader, "k").await;
        let before = invalidations();
        let start = Instant::now();
        writer.set("k", value, Ttl::Never).await.expect("set");
        let written = start.elapsed();
        let deadline = start + Duration::from_secs(1);
        loop {
            if invalidations() > before {
                applied.saturating_record(start.elapsed().as_nanos() as u64);
                break;
            }
            if Instant::now() > deadline {
                timed_out += 1;
                break;
            }
            tokio::task::yield_now().await;
        }
        round_trip.saturating_record(written.as_nanos() as u64);
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99, rt50, rt99) = (
        us(&applied, 0.5),
        us(&applied, 0.99),
        us(&round_trip, 0.5),
        us(&round_trip, 0.99),
    );
    let target = rt50 + 5000.0;
    println!(
        "\nnear cache: invalidation latency over {ROUNDS} writes (from the write's start in one \
         manager to the invalidation applied in another)\n  \
         p50 {p50:.1} us, p99 {p99:.1} us, max {:.1} us; the write's own round trip p50 \
         {rt50:.1} us, p99 {rt99:.1} us; {timed_out} not seen within 1 s\n  target p99 <= one \
         round trip + 5 ms = {target:.0} us: {}",
        applied.max() as f64 / 1000.0,
        if p99 <= target && timed_out == 0 {
            "met"
        } else {
            "missed"
        }
    );
    serde_json::json!({
        "writes": ROUNDS,
        "invalidation_p50_us": p50,
        "invalidation_p99_us": p99,
        "invalidation_max_us": applied.max() as f64 / 1000.0,
        "write_round_trip_p50_us": rt50,
        "write_round_trip_p99_us": rt99,
        "not_seen_within_1s": timed_out,
    })
}
