//! Redis Sentinel: the same `CacheManager` on the primary that the sentinels named by
//! `REDIS_SENTINELS` (with `REDIS_SENTINEL_MASTER`) give, following its failovers. Without
//! them it runs unchanged on whatever else is configured (`REDIS_URL`, or the embedded memory
//! backend), so it is safe to run anywhere.
//!
//! ```text
//! cargo run -p cachette --example sentinel
//! REDIS_SENTINELS=127.0.0.1:26379,127.0.0.1:26380 REDIS_SENTINEL_MASTER=mymaster \
//!     cargo run -p cachette --example sentinel
//! ```

use std::time::Duration;

use cachette::{cached, CacheManager, Ttl};

/// A body whose value is known: `#[cached]` returns it whether or not the cache answers.
#[cached(cache = cache, skip(cache), ttl = 60)]
async fn square(cache: &CacheManager, x: u64) -> u64 {
    x * x
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = cachette::Config::load()?;
    if !config.uses_sentinel() {
        println!("REDIS_SENTINELS is not set: running on the configured backend instead");
    }
    let cache = config.builder().build()?;
    // `redis+sentinel://host:port,.../mymaster/0`: never the credentials.
    println!("backend: {}", cache.describe());
    if !cache.ping().await {
        return Err("the configured cache does not answer".into());
    }
    cache.delete_pattern("sentinel-example:*").await?;
    cache
        .set("sentinel-example:greeting", &"hello", Ttl::secs(60))
        .await?;
    let greeting: Option<String> = cache.get("sentinel-example:greeting").await?;
    println!("read back: {greeting:?}");

    // A few calls through `#[cached]`; during a failover they keep returning the body's value
    // (run uncached while the cache fails) and go back to the cache once the sentinels have
    // named the new primary.
    for x in 0..5 {
        assert_eq!(square(&cache, x).await, x * x);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = cache.stats();
    println!(
        "#[cached] calls: {} hits, {} misses, {} fallbacks",
        stats.hits, stats.misses, stats.fallbacks
    );
    cache.delete_pattern("sentinel-example:*").await?;
    Ok(())
}
