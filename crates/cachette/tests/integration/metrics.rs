//! The `metrics` feature against a real recorder (the Prometheus exporter's) and a real
//! Redis: what a scrape shows, labelled by namespace and function only.

use std::sync::OnceLock;

use cachette::metrics::MetricsReporter;
use cachette::{cached, CacheManager, Ttl};
use cachette_test_support::RedisServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::support::unique_prefix;

/// The process-wide recorder (installed once; tests use unique namespaces and functions).
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::set_global_recorder(recorder).expect("no other recorder in this binary");
        handle
    })
}

/// The value of the first sample line starting with `series` (name and labels as rendered).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|series| series == name)
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_manager_records_latency_payload_and_errors_by_namespace() {
    let handle = recorder();
    let server = RedisServer::new();
    let prefix = unique_prefix("metered");
    let cache = CacheManager::builder()
        .url(server.url())
        .key_prefix(&prefix)
        .command_timeout(std::time::Duration::from_millis(300))
        .metrics(true)
        .build()
        .unwrap();
    let value = serde_json::json!({"name": "Ada", "langs": ["en", "fr"]});
    let encoded_len = serde_json::to_vec(&value).unwrap().len() as f64;
    cache.set("user:42", &value, Ttl::Default).await.unwrap();
    for _ in 0..3 {
        let hit: Option<serde_json::Value> = cache.get("user:42").await.unwrap();
        assert!(hit.is_some());
    }
    let miss: Option<serde_json::Value> = cache.get("user:43").await.unwrap();
    assert!(miss.is_none());

    server.kill();
    assert!(cache.get::<serde_json::Value>("user:42").await.is_err());

    let text = handle.render();
    let ns = [("namespace", prefix.as_str()), ("backend", "redis")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = ns.to_vec();
        labels.push(extra);
        labels
    };
    // 5 GETs (3 hits, 1 miss, 1 failure), 1 SET.
    assert_eq!(
        sample(
            &text,
            "cachette_backend_latency_seconds_count",
            &with(("op", "get"))
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "cachette_backend_latency_seconds_count",
            &with(("op", "set"))
        ),
        Some(1.0)
    );
    // Payload sizes: the one SET and the three hits, each the encoded value.
    assert_eq!(
        sample(&text, "cachette_payload_bytes_sum", &with(("op", "set"))),
        Some(encoded_len)
    );
    assert_eq!(
        sample(&text, "cachette_payload_bytes_count", &with(("op", "get"))),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "cachette_payload_bytes_sum", &with(("op", "get"))),
        Some(3.0 * encoded_len)
    );
    let errors: f64 = text
        .lines()
        .filter(|l| l.starts_with("cachette_backend_errors_total{"))
        .filter(|l| l.contains(&format!("namespace=\"{prefix}\"")) && l.contains("op=\"get\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 1.0, "{text}");
    // Bounded labels: never a key.
    assert!(!text.contains("user:42"), "a key leaked into a label");
}

#[cached(cache = cache, skip(cache), ttl = 60)]
async fn metrics_square(cache: &CacheManager, x: u64) -> u64 {
    x * x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reporter_exports_function_and_namespace_counters() {
    let handle = recorder();
    let prefix = unique_prefix("reported");
    let cache = CacheManager::builder().key_prefix(&prefix).build().unwrap();
    for x in [1, 2, 1, 1] {
        metrics_square(&cache, x).await; // 2 misses, 2 hits
    }
    let _: Option<u64> = cache.get("absent").await.unwrap();

    MetricsReporter::new().manager(&cache).report();
    let text = handle.render();
    let function = format!("{}::metrics_square", module_path!());
    let f = [("function", function.as_str())];
    assert_eq!(
        sample(&text, "cachette_hits_total", &f),
        Some(2.0),
        "{text}"
    );
    assert_eq!(sample(&text, "cachette_misses_total", &f), Some(2.0));
    assert_eq!(sample(&text, "cachette_writes_total", &f), Some(2.0));
    // The namespace counts every call through the manager, the function's included.
    let n = [("namespace", prefix.as_str())];
    assert_eq!(sample(&text, "cachette_hits_total", &n), Some(2.0));
    assert_eq!(sample(&text, "cachette_misses_total", &n), Some(3.0));
    assert_eq!(sample(&text, "cachette_circuit_open", &n), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reporter_exports_the_near_cache() {
    let handle = recorder();
    let server = RedisServer::new();
    let prefix = unique_prefix("near-metrics");
    let cache = CacheManager::builder()
        .url(server.url())
        .key_prefix(&prefix)
        .near_cache(Some(cachette::NearCacheOptions::default()))
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cache.near_stats().is_some_and(|s| s.live) {
        assert!(std::time::Instant::now() < deadline, "channel never up");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    cache.set("k", &1u32, Ttl::Default).await.unwrap();
    // Until a read is a tier hit (the write's own invalidation may cross the first reply).
    while cache.near_stats().is_some_and(|s| s.hits == 0) {
        assert!(std::time::Instant::now() < deadline, "never a tier hit");
        let _: Option<u32> = cache.get("k").await.unwrap();
    }
    let near = cache.near_stats().unwrap();
    MetricsReporter::new()
        .functions(false)
        .manager(&cache)
        .report();
    let text = handle.render();
    let n = [("namespace", prefix.as_str())];
    assert_eq!(
        sample(&text, "cachette_near_hits_total", &n),
        Some(near.hits as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "cachette_near_misses_total", &n),
        Some(near.misses as f64)
    );
    assert_eq!(sample(&text, "cachette_near_entries", &n), Some(1.0));
    assert_eq!(sample(&text, "cachette_near_live", &n), Some(1.0));
    assert_eq!(sample(&text, "cachette_near_refused", &n), Some(0.0));
    // `stats()` carries the same counters.
    let stats = cache.stats().near.expect("near counters in stats()");
    assert!(stats.hits >= near.hits && stats.live, "{stats:?}");
}
