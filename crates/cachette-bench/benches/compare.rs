//! One run, one spawned redis-server (and a local 3-primary Redis Cluster for the cluster
//! rows), every contender side by side.
//!
//! `cargo bench -p cachette-bench` (or `scripts/bench`). `BENCH_SECS` and `BENCH_ROUNDS` tune
//! the time per row; rows of a group alternate each round and the best round counts.

use std::sync::Arc;

use cachette::{CacheManager, Ttl};
use cachette_bench::{compare, op, write_json, Plan, Row};
use cachette_test_support::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
    active: bool,
    score: f64,
}

fn value() -> Profile {
    Profile {
        id: 42,
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        roles: vec!["admin".into(), "author".into()],
        active: true,
        score: 98.5,
    }
}

/// The function benchmarked against `CacheManager::get` (issue 3): a default key hashed from
/// one argument, the manager passed in and skipped.
#[cachette::cached(cache = cache, skip(cache), ttl = None)]
async fn cached_profile(cache: &CacheManager, id: u64) -> Profile {
    Profile { id, ..value() }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let plan = Plan::from_env();
    let server = RedisServer::new();
    let url = server.url();
    let json = serde_json::to_vec(&value()).expect("encode");
    println!("cachette benchmark: redis-server on {url}, value {} bytes of JSON, {:?} per row, {} rounds", json.len(), plan.duration, plan.rounds);

    let client = redis::Client::open(url.as_str()).expect("client");
    let raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let redis_cache = CacheManager::builder()
        .url(&url)
        .key_prefix("bench:")
        .build()
        .expect("manager");
    let memory_cache = CacheManager::builder()
        .key_prefix("bench:")
        .build()
        .expect("manager");
    redis_cache
        .set("profile", &value(), Ttl::Never)
        .await
        .expect("seed");
    memory_cache
        .set("profile", &value(), Ttl::Never)
        .await
        .expect("seed");

    let raw_get = {
        let raw = raw.clone();
        op(move || {
            let mut raw = raw.clone();
            async move {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("bench:profile")
                    .query_async(&mut raw)
                    .await
                    .expect("GET");
                let v: Profile = serde_json::from_slice(&bytes.expect("present")).expect("decode");
                std::hint::black_box(v);
            }
        })
    };
    let manager_get = |cache: &CacheManager| {
        let cache = cache.clone();
        op(move || {
            let cache = cache.clone();
            async move {
                let v: Option<Profile> = cache.get("profile").await.expect("get");
                std::hint::black_box(v.expect("present"));
            }
        })
    };

    // Diagnostic rows (BENCH_DIAG=1): where the distance to the raw client goes.
    let diag = std::env::var_os("BENCH_DIAG").is_some();
    let cm = redis::aio::ConnectionManager::new(client.clone())
        .await
        .expect("connection manager");
    let cm_get = op(move || {
        let mut cm = cm.clone();
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET")
                .arg("bench:profile")
                .query_async(&mut cm)
                .await
                .expect("GET");
            let v: Profile = serde_json::from_slice(&bytes.expect("present")).expect("decode");
            std::hint::black_box(v);
        }
    });
    let timed_get = {
        let raw = raw.clone();
        op(move || {
            let mut raw = raw.clone();
            async move {
                let cmd = redis::cmd("GET").arg("bench:profile").clone();
                let fut = cmd.query_async::<Option<Vec<u8>>>(&mut raw);
                let bytes = tokio::time::timeout(std::time::Duration::from_secs(1), fut)
                    .await
                    .expect("in time")
                    .expect("GET");
                let v: Profile = serde_json::from_slice(&bytes.expect("present")).expect("decode");
                std::hint::black_box(v);
            }
        })
    };

    let mut rows: Vec<Row> = Vec::new();
    for concurrency in [1, 64] {
        println!("\nredis GET + JSON decode, {concurrency} task(s)");
        let mut contenders = vec![
            ("raw redis (multiplexed)", raw_get.clone()),
            ("CacheManager::get (redis)", manager_get(&redis_cache)),
        ];
        if diag {
            contenders.push(("diag: raw ConnectionManager", cm_get.clone()));
            contenders.push(("diag: raw multiplexed + tokio timeout", timed_get.clone()));
        }
        rows.extend(
            compare(
                &format!("redis get x{concurrency}"),
                concurrency,
                1,
                plan,
                contenders,
            )
            .await,
        );
    }

    // TLS (issue 12): the same GET over `rediss://` (a second server with generated
    // certificates, its CA trusted), beside plain Redis, in the same run.
    let tls_server = RedisServer::builder()
        .tls()
        .spawn()
        .expect("redis-server with TLS");
    let tls_cache = CacheManager::builder()
        .url(tls_server.url())
        .tls_ca_file(&tls_server.tls_files().expect("TLS files").ca_file)
        .key_prefix("bench:")
        .build()
        .expect("TLS manager");
    tls_cache
        .set("profile", &value(), Ttl::Never)
        .await
        .expect("seed over TLS");
    for concurrency in [1, 64] {
        println!(
            "
redis GET + JSON decode, plain vs TLS, {concurrency} task(s)"
        );
        rows.extend(
            compare(
                &format!("tls get x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![
                    ("CacheManager::get (redis://)", manager_get(&redis_cache)),
                    (
                        "CacheManager::get (rediss://, TLS)",
                        manager_get(&tls_cache),
                    ),
                ],
            )
            .await,
        );
    }

    // get_many(1000) against 1000 sequential gets: ops = keys read.
    let keys: Vec<String> = (0..1000).map(|i| format!("many:{i}")).collect();
    redis_cache
        .set_many(keys.iter().map(|k| (k.as_str(), value())), Ttl::Never)
        .await
        .expect("seed many");
    let keys = Arc::new(keys);
    println!("\n1000 keys: sequential get vs one get_many (ops = keys read)");
    let sequential = {
        let (cache, keys) = (redis_cache.clone(), keys.clone());
        op(move || {
            let (cache, keys) = (cache.clone(), keys.clone());
            async move {
                for k in keys.iter() {
                    let v: Option<Profile> = cache.get(k).await.expect("get");
                    std::hint::black_box(v);
                }
            }
        })
    };
    let batched = {
        let (cache, keys) = (redis_cache.clone(), keys.clone());
        op(move || {
            let (cache, keys) = (cache.clone(), keys.clone());
            async move {
                let v: Vec<Option<Profile>> = cache.get_many(&keys).await.expect("get_many");
                std::hint::black_box(v);
            }
        })
    };
    rows.extend(
        compare(
            "1000 keys",
            1,
            1000,
            plan,
            vec![
                ("1000 x CacheManager::get", sequential),
                ("CacheManager::get_many(1000)", batched),
            ],
        )
        .await,
    );

    for concurrency in [1, 64] {
        println!("\nmemory backend get + JSON decode, {concurrency} task(s)");
        rows.extend(
            compare(
                &format!("memory get x{concurrency}"),
                concurrency,
                1,
                plan,
                vec![("CacheManager::get (memory)", manager_get(&memory_cache))],
            )
            .await,
        );
    }

    // ---- near cache (issue 13): hot-key get beside Redis alone, memory and moka; the
    // invalidation latency from a write in one manager to another's tier ----
    let (near_rows, near_latency) = cachette_bench::near::section(&url, plan, value()).await;
    rows.extend(near_rows);

    // ---- near cache, default vs broadcast tracking (issue 13): the read path, the server's
    // tracking table, invalidation traffic, writer throughput and latency, on a server of its own
    let (tracking_rows, tracking) = cachette_bench::tracking::section(plan, &json).await;
    rows.extend(tracking_rows);

    // ---- #[cached] (issue 3): a hit through the macro vs CacheManager::get of the same key ----
    // Target: the macro adds at most 5% on Redis and at most 150 ns on memory.
    let key = cachette::key::DefaultKey::function(module_path!(), "cached_profile")
        .arg(&42u64)
        .build()
        .expect("key");
    for (backend, cache) in [("memory", &memory_cache), ("redis", &redis_cache)] {
        // Seeds the entry (a miss) so that every measured call is a hit.
        std::hint::black_box(cached_profile(cache, 42).await);
        assert!(cache.exists(&key).await.expect("seeded"));
        let get_same_key = {
            let (cache, key) = (cache.clone(), key.clone());
            op(move || {
                let (cache, key) = (cache.clone(), key.clone());
                async move {
                    let v: Option<Profile> = cache.get(&key).await.expect("get");
                    std::hint::black_box(v.expect("present"));
                }
            })
        };
        let macro_hit = {
            let cache = cache.clone();
            op(move || {
                let cache = cache.clone();
                async move {
                    std::hint::black_box(cached_profile(&cache, 42).await);
                }
            })
        };
        // Diagnostic row (BENCH_DIAG=1): the read-through runtime the macro calls, without
        // the macro's key computation and wrapping.
        let load_hit = {
            let (cache, key) = (cache.clone(), key.clone());
            op(move || {
                let (cache, key) = (cache.clone(), key.clone());
                async move {
                    let options = cachette::LoadOptions::ttl(Ttl::Never);
                    let v = cache
                        .get_or_load_traced(
                            &key,
                            &options,
                            None,
                            |_: &Profile| true,
                            || async { Ok::<_, std::convert::Infallible>(value()) },
                        )
                        .await
                        .expect("get_or_load");
                    std::hint::black_box(v);
                }
            })
        };
        for concurrency in [1, 64] {
            println!("\n#[cached] hit vs CacheManager::get of the same key ({backend}), {concurrency} task(s)");
            let mut contenders = vec![
                ("CacheManager::get (same key)", get_same_key.clone()),
                ("#[cached] hit (default key)", macro_hit.clone()),
            ];
            if diag {
                contenders.push(("diag: get_or_load_traced hit", load_hit.clone()));
            }
            let group = compare(
                &format!("#[cached] {backend} x{concurrency}"),
                concurrency,
                1,
                plan,
                contenders,
            )
            .await;
            if let [get, hit, ..] = group.as_slice() {
                let change = (hit.ops_per_sec / get.ops_per_sec - 1.0) * 100.0;
                if concurrency == 1 {
                    let added_ns = 1e9 / hit.ops_per_sec - 1e9 / get.ops_per_sec;
                    println!(
                        "    the macro adds {added_ns:.0} ns per call ({change:+.1}% throughput)"
                    );
                } else {
                    println!("    throughput with the macro: {change:+.1}%");
                }
            }
            rows.extend(group);
        }
    }

    // ---- tags (issue 14): tagged vs untagged hits, invalidate_tag over 1M tagged entries ----
    rows.extend(cachette_bench::tags::section(&url, plan, value()).await);

    // ---- alternatives (issue 5): the `cached` crate's Redis store, moka, redis-benchmark ----
    let alternatives = cachette_bench::alternatives::section(&url, plan, &rows, value()).await;
    rows.extend(alternatives);

    // ---- Redis Cluster (issue 11): a local 3-primary cluster beside the raw cluster client ----
    let (cluster_rows, cluster) =
        cachette_bench::cluster::section(&redis_cache, &url, plan, value()).await;
    rows.extend(cluster_rows);

    // ---- the HTTP cache (issue 14): a hit through the layer vs the bare handler; a stampede ----
    let (http_rows, http_notes) = cachette_bench::http::section(&url, plan).await;
    rows.extend(http_rows);

    let notes = serde_json::json!({
        "http": http_notes,
        "value_bytes": json.len(),
        "secs_per_row": plan.duration.as_secs_f64(),
        "rounds": plan.rounds,
        "redis_server": server.url(),
        "cluster": cluster,
        "near": near_latency,
        "tracking": tracking,
    });
    match write_json("summary.json", &rows, notes) {
        Ok(path) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("could not write the JSON summary: {e}"),
    }
}
