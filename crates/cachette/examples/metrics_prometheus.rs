//! cachette's counters and histograms in Prometheus text format, through the `metrics` facade.
//!
//! ```text
//! cargo run -p cachette --features metrics --example metrics_prometheus
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cachette --features metrics --example metrics_prometheus
//! ```
//!
//! A service would serve `handle.render()` on `/metrics` (or enable the exporter's own HTTP
//! listener); this example prints it once.

use std::time::Duration;

use cachette::metrics::MetricsReporter;
use cachette::{cached, CacheManager, Config, Ttl};
use metrics_exporter_prometheus::PrometheusBuilder;

#[cached(cache = cache, skip(cache), ttl = 60)]
async fn square(cache: &CacheManager, x: u64) -> u64 {
    x * x
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;

    // The configured backend (memory unless a Redis server is named), metered: every backend
    // call records its latency and payload size, labelled with the namespace (key prefix).
    let cache = Config::load()?.builder().metrics(true).build()?;
    let prefix = cache.prefix().to_owned();

    for x in [1, 2, 3, 1, 2, 3, 1] {
        square(&cache, x).await; // 3 misses, then hits
    }
    cache
        .set("direct", &"value", Ttl::from(Duration::from_secs(60)))
        .await?;
    let _: Option<String> = cache.get("direct").await?;
    let _: Option<String> = cache.get("absent").await?;

    // Copy the counters into the recorder (a service would `start` it, or call `report` right
    // before rendering each scrape).
    let reporter = MetricsReporter::new().manager(&cache);
    reporter.report();

    let text = handle.render();
    println!("{text}");
    assert!(text.contains("cachette_hits_total"), "no counters rendered");
    assert!(text.contains("cachette_backend_latency_seconds"));

    square_cleanup(&cache, &prefix).await?;
    Ok(())
}

async fn square_cleanup(cache: &CacheManager, prefix: &str) -> Result<(), cachette::Error> {
    let removed = cache.clear().await?;
    eprintln!("removed {removed} keys under {prefix:?}");
    Ok(())
}
