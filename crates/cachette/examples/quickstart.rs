//! The quickstart: direct cache operations on the embedded memory backend, or on Redis when
//! `REDIS_URL` (or `REDIS_HOST`, or a `config.json`) names one.
//!
//! ```text
//! cargo run --example quickstart
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example quickstart
//! ```

use std::collections::HashMap;
use std::time::Duration;

use cachette::{CacheManager, KeyTtl, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct User {
    id: u64,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // config.json / REDIS_* environment variables; the memory backend when no Redis is named.
    let cache = CacheManager::from_env()?;
    println!(
        "backend: {} (prefix {:?})",
        cache.describe(),
        cache.prefix()
    );
    if !cache.ping().await {
        return Err("the configured Redis server does not answer".into());
    }
    cache.delete_pattern("quickstart:*").await?;

    // set / get with a TTL
    let ada = User {
        id: 1,
        name: "Ada".into(),
    };
    cache
        .set("quickstart:user:1", &ada, Duration::from_secs(300))
        .await?;
    let got: Option<User> = cache.get("quickstart:user:1").await?;
    println!("get quickstart:user:1 -> {got:?}");
    println!("exists: {}", cache.exists("quickstart:user:1").await?);

    // ttl in its three states
    cache
        .set("quickstart:config", &"static", Ttl::Never)
        .await?;
    for key in [
        "quickstart:user:1",
        "quickstart:config",
        "quickstart:missing",
    ] {
        let ttl = match cache.ttl(key).await? {
            KeyTtl::Expires(left) => format!("expires in {}s", left.as_secs()),
            KeyTtl::Persistent => "persistent".to_owned(),
            KeyTtl::Missing => "missing".to_owned(),
        };
        println!("ttl {key}: {ttl}");
    }

    // batches: one round trip each
    let users: HashMap<String, User> = (2..=4)
        .map(|id| {
            (
                format!("quickstart:user:{id}"),
                User {
                    id,
                    name: format!("user {id}"),
                },
            )
        })
        .collect();
    cache.set_many(&users, Duration::from_secs(300)).await?;
    let keys = [
        "quickstart:user:1",
        "quickstart:user:2",
        "quickstart:user:9",
    ];
    let many: Vec<Option<User>> = cache.get_many(&keys).await?;
    for (key, value) in keys.iter().zip(&many) {
        println!(
            "get_many {key} -> {}",
            value.as_ref().map_or("miss".to_owned(), |u| u.name.clone())
        );
    }

    // patterns (Redis glob syntax)
    println!(
        "keys quickstart:user:* -> {:?}",
        cache.keys("quickstart:user:*").await?
    );
    println!(
        "delete_pattern quickstart:user:[2-3] -> {}",
        cache.delete_pattern("quickstart:user:[2-3]").await?
    );
    println!(
        "keys quickstart:* -> {:?}",
        cache.keys("quickstart:*").await?
    );

    // info and stats
    let info = cache.info().await?;
    println!(
        "info: version {}, used memory {}, keys in db0 {}",
        info.version().unwrap_or("?"),
        info.used_memory_human().unwrap_or("?"),
        info.keys_in_db(0)
    );
    let stats = cache.stats();
    println!(
        "stats: {} hits, {} misses, {} writes, hit rate {:.0}%",
        stats.hits,
        stats.misses,
        stats.writes,
        stats.hit_rate() * 100.0
    );

    cache.delete_pattern("quickstart:*").await?;
    Ok(())
}
