//! What a user would otherwise reach for, measured beside cachette in the same run against the
//! same server and value:
//!
//! - the `cached` crate's Redis store (`AsyncRedisCache`, features `redis_tokio`): one task and
//!   64 tasks, next to the raw `redis` client (the ratio's baseline) and `CacheManager`;
//! - `moka::future::Cache` directly, next to cachette's memory backend;
//! - `redis-benchmark -P 16 -t get` against the same server, as the server's ceiling (when the
//!   tool is installed).
//!
//! Every redis row decodes the value into the same struct; the `cached` crate stores it as
//! MessagePack inside its own envelope (its format since 3.0), cachette and the raw row as
//! JSON, so each row pays for its own codec.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cached::stores::AsyncRedisCache;
use cached::ConcurrentCachedAsync;
use cachette::{CacheManager, Ttl};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{compare, op, print_rows, Op, Plan, Row};

/// A value the rows can share: what `compare.rs` stores.
pub trait BenchValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> BenchValue for T {}

/// Runs every alternative row and returns them. `url` is the bench's redis-server; `rows`
/// are the rows measured so far (the `redis-benchmark` ratio uses the raw client's 64-task
/// row among them).
///
/// # Panics
/// When the server or a contender fails: a benchmark has nothing to report then.
pub async fn section<V: BenchValue>(url: &str, plan: Plan, rows: &[Row], value: V) -> Vec<Row> {
    let mut out = Vec::new();
    out.extend(cached_crate(url, plan, value.clone()).await);
    out.extend(memory_vs_moka(plan, value.clone()).await);
    out.extend(publisher_overhead(url, plan, value.clone()).await);
    let baseline = rows
        .iter()
        .chain(out.iter())
        .find(|r| r.name.starts_with("raw redis") && r.concurrency == 64)
        .map(|r| r.ops_per_sec);
    let json_len = serde_json::to_vec(&value).map_or(0, |v| v.len());
    out.extend(redis_benchmark(url, plan, json_len, baseline));
    out
}

/// Raw `redis` GET + JSON decode vs `CacheManager::get` vs `cached`'s `AsyncRedisCache`.
async fn cached_crate<V: BenchValue>(url: &str, plan: Plan, value: V) -> Vec<Row> {
    const KEY: &str = "alt:profile";
    let client = redis::Client::open(url).expect("client");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let json = serde_json::to_vec(&value).expect("encode");
    redis::cmd("SET")
        .arg(KEY)
        .arg(&json)
        .query_async::<()>(&mut raw)
        .await
        .expect("seed");
    let cache = CacheManager::builder()
        .url(url)
        .key_prefix("alt:")
        .build()
        .expect("manager");
    let store: AsyncRedisCache<String, V> = AsyncRedisCache::builder("bench")
        .connection_string(url)
        .build()
        .await
        .expect("cached AsyncRedisCache");
    store
        .async_cache_set("profile".to_owned(), value)
        .await
        .expect("seed cached");
    let store = Arc::new(store);

    let raw_get: Op = op(move || {
        let mut raw = raw.clone();
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg(KEY)
                .query_async(&mut raw)
                .await
                .expect("GET");
            let v: V = serde_json::from_slice(&bytes.expect("present")).expect("decode");
            std::hint::black_box(v);
        }
    });
    let manager_get: Op = op(move || {
        let cache = cache.clone();
        async move {
            let v: Option<V> = cache.get("profile").await.expect("get");
            std::hint::black_box(v.expect("present"));
        }
    });
    let cached_get: Op = op(move || {
        let store = store.clone();
        async move {
            let v = store
                .async_cache_get(&"profile".to_owned())
                .await
                .expect("cached get");
            std::hint::black_box(v.expect("present"));
        }
    });

    // BENCH_DIAG=1: the same manager without its circuit breaker (where the distance goes).
    let diag = std::env::var_os("BENCH_DIAG").is_some();
    let unguarded = CacheManager::builder()
        .url(url)
        .key_prefix("alt:")
        .circuit_breaker(0, Duration::from_secs(1))
        .build()
        .expect("manager");
    let unguarded_get: Op = op(move || {
        let cache = unguarded.clone();
        async move {
            let v: Option<V> = cache.get("profile").await.expect("get");
            std::hint::black_box(v.expect("present"));
        }
    });
    let mut rows = Vec::new();
    for concurrency in [1, 64] {
        println!("\nalternatives: redis GET + decode, {concurrency} task(s)");
        rows.extend(
            compare(
                &format!("alt redis get x{concurrency}"),
                concurrency,
                1,
                plan,
                {
                    let mut contenders = vec![
                        ("raw redis (multiplexed)", raw_get.clone()),
                        ("CacheManager::get (redis)", manager_get.clone()),
                        ("cached 4 AsyncRedisCache (msgpack)", cached_get.clone()),
                    ];
                    if diag {
                        contenders
                            .push(("diag: CacheManager::get, no breaker", unguarded_get.clone()));
                    }
                    contenders
                },
            )
            .await,
        );
    }
    rows
}

/// `moka::future::Cache` directly vs cachette's memory backend, same value, same key.
async fn memory_vs_moka<V: BenchValue>(plan: Plan, value: V) -> Vec<Row> {
    let json = Bytes::from(serde_json::to_vec(&value).expect("encode"));
    let moka_bytes: moka::future::Cache<String, Bytes> = moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    moka_bytes.insert("profile".to_owned(), json).await;
    let moka_typed: moka::future::Cache<String, Arc<V>> = moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    moka_typed
        .insert("profile".to_owned(), Arc::new(value.clone()))
        .await;
    let memory = CacheManager::builder()
        .key_prefix("alt:")
        .build()
        .expect("memory manager");
    memory
        .set("profile", &value, Ttl::Never)
        .await
        .expect("seed memory");

    let key = "profile".to_owned();
    let moka_decode: Op = {
        let (cache, key) = (moka_bytes.clone(), key.clone());
        op(move || {
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                let bytes = cache.get(&key).await.expect("present");
                let v: V = serde_json::from_slice(&bytes).expect("decode");
                std::hint::black_box(v);
            }
        })
    };
    let moka_arc: Op = {
        let (cache, key) = (moka_typed.clone(), key.clone());
        op(move || {
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                std::hint::black_box(cache.get(&key).await.expect("present"));
            }
        })
    };
    let manager: Op = op(move || {
        let memory = memory.clone();
        async move {
            let v: Option<V> = memory.get("profile").await.expect("get");
            std::hint::black_box(v.expect("present"));
        }
    });
    let mut rows = Vec::new();
    for concurrency in [1, 64] {
        println!("\nalternatives: in-process get, {concurrency} task(s) (baseline: moka + the same JSON decode)");
        rows.extend(
            compare(
                &format!("alt memory get x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    ("moka future::Cache get + JSON decode", moka_decode.clone()),
                    ("CacheManager::get (memory)", manager.clone()),
                    (
                        "moka future::Cache get Arc<T> (no decode)",
                        moka_arc.clone(),
                    ),
                ],
            )
            .await,
        );
    }
    rows
}

/// The shared-statistics publisher (`cachette::StatsPublisher`): a memory-backend get with no
/// publisher, then with one publishing every 10 ms (500 times the default rate), and the cost
/// of one batch of 100 changed functions.
async fn publisher_overhead<V: BenchValue>(url: &str, plan: Plan, value: V) -> Vec<Row> {
    let group = "alt publisher overhead";
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !group.contains(filter.as_str()) {
            return Vec::new();
        }
    }
    let memory = CacheManager::builder()
        .key_prefix("alt:")
        .build()
        .expect("memory manager");
    memory
        .set("profile", &value, Ttl::Never)
        .await
        .expect("seed memory");
    let get: Op = op(move || {
        let memory = memory.clone();
        async move {
            let v: Option<V> = memory.get("profile").await.expect("get");
            std::hint::black_box(v.expect("present"));
        }
    });
    println!(
        "\npublisher overhead: memory get, 64 tasks, without then with a publisher every 10 ms"
    );
    let mut rows = compare(
        group,
        64,
        1,
        plan,
        vec![("CacheManager::get (memory), no publisher", get.clone())],
    )
    .await;
    // 100 functions whose counters change before every batch.
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let source = {
        let ticks = ticks.clone();
        move || {
            let n = ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            (0..100)
                .map(|i| {
                    let mut stats = cachette::Stats::default();
                    stats.hits = n * 3;
                    stats.misses = n;
                    (format!("bench::function_{i}"), stats)
                })
                .collect()
        }
    };
    let publisher = cachette::StatsPublisher::builder(url)
        .prefix("alt:")
        .interval(Duration::from_millis(10))
        .source(source)
        .start()
        .expect("publisher");
    let mut with = compare(
        group,
        64,
        1,
        plan,
        vec![("CacheManager::get (memory), publisher every 10 ms", get)],
    )
    .await;
    if let (Some(base), Some(row)) = (rows.first(), with.first_mut()) {
        row.ratio = row.ops_per_sec / base.ops_per_sec;
        println!(
            "    with the publisher: x{:.3} (rows run one after the other, not alternated)",
            row.ratio
        );
    }
    rows.extend(with);
    let batches = 200u32;
    let start = std::time::Instant::now();
    for _ in 0..batches {
        publisher.publish_now().await.expect("publish");
    }
    let per_batch = start.elapsed() / batches;
    println!("    one batch of 100 functions x 2 changed counters (HINCRBY x200 in MULTI/EXEC): {:.1} us", per_batch.as_secs_f64() * 1e6);
    publisher.stop().await;
    rows
}

/// `redis-benchmark -P 16 -c 64 -t get` on the same server: what the server itself can do.
/// `None` (and a note) when the tool is missing or `BENCH_FILTER` excludes the group.
fn redis_benchmark(url: &str, plan: Plan, value_len: usize, baseline: Option<f64>) -> Option<Row> {
    let group = "redis-benchmark ceiling";
    if let Ok(filter) = std::env::var("BENCH_FILTER") {
        if !group.contains(filter.as_str()) {
            return None;
        }
    }
    let parsed = redis::Client::open(url).ok()?;
    let info = parsed.get_connection_info();
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        _ => return None,
    };
    let requests = ((plan.duration.as_secs_f64() * 600_000.0) as u64).max(200_000);
    println!("\nredis-benchmark -P 16 -c 64 -t get -n {requests} -d {value_len} (pipelined: the server's ceiling)");
    let output = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-P", "16", "-c", "64", "-t", "get", "--csv"])
        .args(["-n", &requests.to_string(), "-d", &value_len.to_string()])
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "  redis-benchmark failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            println!("  redis-benchmark not run ({e}); install redis-tools for the ceiling row");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let row = parse_csv(&text, requests, baseline)?;
    print_rows(std::slice::from_ref(&row));
    Some(row)
}

/// Reads the `"GET",rps,avg,min,p50,p95,p99,max` line of `redis-benchmark --csv`.
fn parse_csv(text: &str, requests: u64, baseline: Option<f64>) -> Option<Row> {
    let line = text.lines().find(|l| l.starts_with("\"GET"))?;
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .filter_map(|f| f.trim_matches('"').parse().ok())
        .collect();
    let (rps, p50_ms, p99_ms) = (*fields.first()?, *fields.get(3)?, *fields.get(5)?);
    Some(Row {
        group: "redis-benchmark ceiling".to_owned(),
        name: "redis-benchmark GET -P 16 -c 64 (per batch of 16)".to_owned(),
        concurrency: 64,
        ops: requests,
        ops_per_sec: rps,
        p50_us: p50_ms * 1000.0,
        p99_us: p99_ms * 1000.0,
        ratio: baseline.map_or(1.0, |b| rps / b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"GET\",\"1234567.50\",\"0.700\",\"0.100\",\"0.655\",\"1.000\",\"1.500\",\"3.000\"\n";
        let row = parse_csv(text, 100, Some(123_456.75)).unwrap();
        assert_eq!(row.ops_per_sec, 1_234_567.5);
        assert_eq!(row.p50_us, 655.0);
        assert_eq!(row.p99_us, 1500.0);
        assert!((row.ratio - 10.0).abs() < 1e-9);
    }
}
