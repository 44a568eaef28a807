//! The near cache: two managers on the same Redis, each with an in-process tier in front of
//! it. A read that the tier holds is answered without a round trip; a write through one
//! manager reaches the other's copy through the server (`CLIENT TRACKING`), which forgets it,
//! so the next read there sees the new value. Without a Redis server (`REDIS_URL`, or
//! `REDIS_HOST`, or a `config.json`) it says what it needs and exits: the near cache sits in
//! front of Redis only.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p cachette --example near_cache
//! ```

use std::time::{Duration, Instant};

use cachette::{CacheManager, NearCacheOptions, Ttl};

/// A manager of `config` with a near cache, once its invalidation channel vouches for it.
async fn near_manager(
    config: &cachette::Config,
) -> Result<CacheManager, Box<dyn std::error::Error>> {
    let cache = config
        .clone()
        .builder()
        .near_cache(Some(NearCacheOptions::default()))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cache.near_stats().is_some_and(|s| s.live) {
        if Instant::now() > deadline {
            return Err("the near cache's invalidation channel did not come up \
                        (does the server allow CLIENT TRACKING?)"
                .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(cache)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = cachette::Config::load()?;
    if !config.uses_redis() || config.uses_cluster() || config.uses_sentinel() {
        println!(
            "no standalone Redis is configured (set REDIS_URL): the near cache runs in front of \
             one, so there is nothing to show on this backend"
        );
        return Ok(());
    }
    let writer = near_manager(&config).await?;
    let reader = near_manager(&config).await?;
    println!("backend: {}", reader.describe());
    writer.delete_pattern("near-example:*").await?;

    writer
        .set("near-example:price", &100u32, Ttl::secs(60))
        .await?;
    // The first reads go to Redis; once a reply is kept, the tier answers.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let before = reader.near_stats().map_or(0, |s| s.hits);
        let price: Option<u32> = reader.get("near-example:price").await?;
        assert_eq!(price, Some(100));
        if reader.near_stats().map_or(0, |s| s.hits) > before {
            println!("reader: price {price:?}, answered in process");
            break;
        }
        if Instant::now() > deadline {
            return Err("the reader's tier never kept the price".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A write through the other manager: the server tells the reader's channel, which forgets
    // its copy; the reader's next read goes to Redis and sees the new price.
    let invalidations = reader.near_stats().map_or(0, |s| s.invalidations);
    let written = Instant::now();
    writer
        .set("near-example:price", &120u32, Ttl::secs(60))
        .await?;
    let deadline = written + Duration::from_secs(1);
    loop {
        let price: Option<u32> = reader.get("near-example:price").await?;
        if price == Some(120) {
            println!(
                "reader: price {price:?} after the writer's update, {:?} later \
                 (the copy was invalidated: {} invalidation(s) received)",
                written.elapsed(),
                reader.near_stats().map_or(0, |s| s.invalidations) - invalidations
            );
            break;
        }
        assert_eq!(price, Some(100), "only the old or the new price");
        if Instant::now() > deadline {
            return Err("the reader kept the old price past the staleness bound".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if let Some(s) = reader.near_stats() {
        println!(
            "reader's near cache: {} hits, {} misses, {} invalidations, {} entries",
            s.hits, s.misses, s.invalidations, s.entries
        );
    }
    writer.delete_pattern("near-example:*").await?;
    Ok(())
}
