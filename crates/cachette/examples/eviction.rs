//! Cache eviction: `#[cache_evict]` by pattern, by key and by key list, after a successful
//! call or before it (the spec's "Cache Eviction" and "Cache Invalidation Strategy").
//!
//! ```text
//! cargo run --example eviction
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example eviction
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{cache_evict, cached, CacheManager, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

static DB_QUERIES: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 3600, key = "user:{user_id}")]
async fn get_user(user_id: u64) -> Result<User, std::io::Error> {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    Ok(User {
        id: user_id,
        name: format!("user {user_id}"),
    })
}

/// Clear all user caches after an update.
#[cache_evict(pattern = "user:*")]
async fn update_user(user_id: u64, data: HashMap<String, String>) -> Result<(), std::io::Error> {
    println!("  (database: update user {user_id} with {data:?})");
    Ok(())
}

/// Clear one specific user.
#[cache_evict(key = "user:{user_id}")]
async fn delete_user(user_id: u64) -> Result<(), std::io::Error> {
    println!("  (database: delete user {user_id})");
    Ok(())
}

/// Nothing is evicted when the function fails (unless `always = true`).
#[cache_evict(key = "user:{user_id}")]
async fn delete_user_failing(user_id: u64) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(format!("user {user_id} is locked")))
}

/// Evict specific keys.
#[cache_evict(keys = ["user:list", "user:stats"])]
async fn create_user(name: &str) -> Result<u64, std::io::Error> {
    println!("  (database: insert {name:?})");
    Ok(42)
}

async fn show(cache: &CacheManager, after: &str) -> Result<(), cachette::Error> {
    println!("  keys after {after}: {:?}", cache.keys("user:*").await?);
    Ok(())
}

async fn evicted(function: &str) -> u64 {
    cachette::runtime::function_stats_of(&format!("{}::{function}", module_path!()))
        .map_or(0, |s| s.evicted)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cachette::install(CacheManager::from_env()?)?;
    let cache = cachette::default_manager().ok_or("no default manager")?;
    println!("backend: {}", cache.describe());
    cache.delete_pattern("user:*").await?;

    for id in [1, 2, 3] {
        get_user(id).await?;
    }
    cache.set("user:list", &[1, 2, 3], Ttl::Default).await?;
    cache.set("user:stats", &3, Ttl::Default).await?;
    show(cache, "caching users 1-3").await?;

    delete_user(1).await?;
    show(cache, "delete_user(1)").await?;
    println!(
        "  delete_user evicted {} key(s)",
        evicted("delete_user").await
    );

    let failed = delete_user_failing(2).await;
    println!("  delete_user_failing(2) -> {failed:?}");
    show(cache, "a failed delete (nothing evicted)").await?;

    create_user("Ada").await?;
    show(cache, "create_user (evicts user:list and user:stats)").await?;

    let queries = DB_QUERIES.load(Ordering::SeqCst);
    get_user(2).await?;
    println!(
        "  get_user(2) -> {}",
        if DB_QUERIES.load(Ordering::SeqCst) > queries {
            "miss"
        } else {
            "hit"
        }
    );

    update_user(2, HashMap::from([("name".to_owned(), "Grace".to_owned())])).await?;
    show(cache, "update_user (pattern user:*)").await?;
    println!(
        "  update_user evicted {} key(s)",
        evicted("update_user").await
    );

    let queries = DB_QUERIES.load(Ordering::SeqCst);
    get_user(2).await?;
    println!(
        "  get_user(2) -> {}",
        if DB_QUERIES.load(Ordering::SeqCst) > queries {
            "miss (refetched)"
        } else {
            "hit"
        }
    );
    cache.delete_pattern("user:*").await?;
    Ok(())
}
