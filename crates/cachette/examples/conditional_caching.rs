//! Conditional caching: `unless` keeps some results out of the cache, and `Option`/`Result`
//! returns cache only `Some`/`Ok` (the spec's "Conditional Caching").
//!
//! ```text
//! cargo run --example conditional_caching
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example conditional_caching
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{cached, CacheManager};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    is_admin: bool,
}

#[derive(Debug)]
#[allow(dead_code)] // the id is shown through `Debug`
enum DbError {
    NotFound(u64),
}

static DB_QUERIES: AtomicUsize = AtomicUsize::new(0);

async fn fetch_user(user_id: u64) -> Result<User, DbError> {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    match user_id {
        0..=99 => Ok(User {
            id: user_id,
            is_admin: user_id == 1,
        }),
        _ => Err(DbError::NotFound(user_id)),
    }
}

/// Don't cache admins (their permissions change often).
fn skip_cache_for_admin(user: &User) -> bool {
    user.is_admin
}

#[cached(ttl = 300, unless = skip_cache_for_admin, key = "user:{user_id}")]
async fn get_user(user_id: u64) -> Result<User, DbError> {
    fetch_user(user_id).await
}

/// `None` is not cached (the user may appear later) unless `cache_none = true`.
#[cached(ttl = 300, key = "user-name:{user_id}")]
async fn find_user_name(user_id: u64) -> Option<String> {
    fetch_user(user_id)
        .await
        .ok()
        .map(|u| format!("user {}", u.id))
}

async fn call<T: std::fmt::Debug>(what: &str, f: impl std::future::Future<Output = T>) {
    let before = DB_QUERIES.load(Ordering::SeqCst);
    let value = f.await;
    let outcome = if DB_QUERIES.load(Ordering::SeqCst) > before {
        "miss"
    } else {
        "hit "
    };
    println!("{what:<22} {outcome} -> {value:?}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cachette::install(CacheManager::from_env()?)?;
    let cache = cachette::default_manager().ok_or("no default manager")?;
    println!("backend: {}", cache.describe());
    cache.delete_pattern("user:*").await?;
    cache.delete_pattern("user-name:*").await?;

    println!("-- a regular user is cached");
    call("get_user(2)", get_user(2)).await;
    call("get_user(2)", get_user(2)).await;
    println!("-- an admin is returned but never cached (unless = skip_cache_for_admin)");
    call("get_user(1)", get_user(1)).await;
    call("get_user(1)", get_user(1)).await;
    println!("-- errors are returned and never cached");
    call("get_user(404)", get_user(404)).await;
    call("get_user(404)", get_user(404)).await;
    println!("-- Option: Some is cached, None is not");
    call("find_user_name(3)", find_user_name(3)).await;
    call("find_user_name(3)", find_user_name(3)).await;
    call("find_user_name(500)", find_user_name(500)).await;
    call("find_user_name(500)", find_user_name(500)).await;

    let mut keys = cache.keys("user:*").await?;
    keys.extend(cache.keys("user-name:*").await?);
    println!("\ncached keys: {keys:?}");
    cache.delete_pattern("user:*").await?;
    cache.delete_pattern("user-name:*").await?;
    Ok(())
}
