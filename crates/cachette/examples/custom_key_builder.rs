//! Custom keys: a `key_builder` function, and the same key as a template (the spec's "Custom
//! Key Builder" and "Key Naming Conventions").
//!
//! ```text
//! cargo run --example custom_key_builder
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example custom_key_builder
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{cached, CacheManager};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    relations: Vec<String>,
}

static DB_QUERIES: AtomicUsize = AtomicUsize::new(0);

async fn fetch_user(user_id: u64, include_extra: bool) -> Result<User, std::io::Error> {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    Ok(User {
        id: user_id,
        name: format!("user {user_id}"),
        relations: if include_extra {
            vec!["team:7".into(), "org:1".into()]
        } else {
            vec![]
        },
    })
}

/// Custom key builder: given the function's name and its arguments by reference.
fn build_key(func_name: &str, user_id: &u64, include_extra: &bool) -> String {
    let _ = func_name; // "get_user_with_relations"
    format!("user:{user_id}:extra:{include_extra}")
}

#[cached(ttl = 600, key_builder = build_key)]
async fn get_user_with_relations(
    user_id: u64,
    include_extra: bool,
) -> Result<User, std::io::Error> {
    fetch_user(user_id, include_extra).await
}

/// The same key as a template: `{argument}` placeholders, written with `Display`.
#[cached(ttl = 600, key = "user:{user_id}:extra:{include_extra}")]
async fn get_user_templated(user_id: u64, include_extra: bool) -> Result<User, std::io::Error> {
    fetch_user(user_id, include_extra).await
}

/// List-based key, in the spec's recommended pattern.
#[cached(ttl = 60, key = "users:page:{page}:size:{size}")]
async fn list_users(page: u32, size: u32) -> Vec<u64> {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    (u64::from(page * size)..u64::from((page + 1) * size)).collect()
}

/// Argument values are escaped, so they cannot add key fields: `:` becomes `%3A`.
#[cached(ttl = 60, key = "category:{slug}")]
async fn category(slug: &str) -> String {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    slug.to_uppercase()
}

async fn call<T: std::fmt::Debug>(what: &str, f: impl std::future::Future<Output = T>) {
    let before = DB_QUERIES.load(Ordering::SeqCst);
    let value = f.await;
    let outcome = if DB_QUERIES.load(Ordering::SeqCst) > before {
        "miss"
    } else {
        "hit "
    };
    println!("{what:<42} {outcome} -> {value:?}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cachette::install(CacheManager::from_env()?)?;
    let cache = cachette::default_manager().ok_or("no default manager")?;
    println!("backend: {}", cache.describe());
    for pattern in ["user:*", "users:*", "category:*"] {
        cache.delete_pattern(pattern).await?;
    }

    call(
        "get_user_with_relations(1, true)",
        get_user_with_relations(1, true),
    )
    .await;
    call(
        "get_user_with_relations(1, true)",
        get_user_with_relations(1, true),
    )
    .await;
    call(
        "get_user_with_relations(1, false)",
        get_user_with_relations(1, false),
    )
    .await;
    // The template builds the same key as the builder: a hit on the builder's entry.
    call("get_user_templated(1, true)", get_user_templated(1, true)).await;
    call("list_users(2, 3)", list_users(2, 3)).await;
    call("list_users(2, 3)", list_users(2, 3)).await;
    call("category(\"books:fiction\")", category("books:fiction")).await;

    println!("\nkeys:");
    for pattern in ["user:*", "users:*", "category:*"] {
        for key in cache.keys(pattern).await? {
            println!("  {}", cache.full_key(&key));
        }
    }
    for pattern in ["user:*", "users:*", "category:*"] {
        cache.delete_pattern(pattern).await?;
    }
    Ok(())
}
