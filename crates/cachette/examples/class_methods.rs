//! Caching methods: `#[cached]` and `#[cache_evict]` on `&self` methods (the spec's "Class
//! Method Caching"). `self` is not part of the key, so every instance shares the entries; the
//! default key names the type: `{module}:UserService.get_user_count:{hash}`.
//!
//! ```text
//! cargo run --example class_methods
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example class_methods
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{cache_evict, cached, CacheManager};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug, Default)]
struct Db {
    queries: AtomicUsize,
}

impl Db {
    async fn fetch_user(&self, user_id: u64) -> Result<User, std::io::Error> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        Ok(User {
            id: user_id,
            name: format!("user {user_id}"),
        })
    }

    async fn count_users(&self) -> u64 {
        self.queries.fetch_add(1, Ordering::SeqCst);
        3
    }
}

struct UserService {
    db: Db,
    /// The manager this service caches in; `cache = self.cache` names it.
    cache: CacheManager,
}

impl UserService {
    // A key template, so that `update_user` can evict by pattern.
    #[cached(cache = self.cache, ttl = 300, key = "user:{user_id}")]
    async fn get_user(&self, user_id: u64) -> Result<User, std::io::Error> {
        self.db.fetch_user(user_id).await
    }

    // The default key: {module}:UserService.get_user_count:{hash of no arguments}.
    #[cached(cache = self.cache, ttl = 60)]
    async fn get_user_count(&self) -> u64 {
        self.db.count_users().await
    }

    #[cache_evict(cache = self.cache, pattern = "user:*")]
    async fn update_user(
        &self,
        user_id: u64,
        data: HashMap<String, String>,
    ) -> Result<(), std::io::Error> {
        println!("  (database: update user {user_id} with {data:?})");
        Ok(())
    }

    async fn call<T: std::fmt::Debug>(&self, what: &str, f: impl std::future::Future<Output = T>) {
        let before = self.db.queries.load(Ordering::SeqCst);
        let value = f.await;
        let outcome = if self.db.queries.load(Ordering::SeqCst) > before {
            "miss"
        } else {
            "hit "
        };
        println!("{what:<28} {outcome} -> {value:?}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = CacheManager::from_env()?;
    println!("backend: {}", cache.describe());
    let module = module_path!().replace("::", ".");
    cache.delete_pattern("user:*").await?;
    cache.delete_pattern(&format!("{module}:*")).await?;

    let service = UserService {
        db: Db::default(),
        cache: cache.clone(),
    };
    service
        .call("service.get_user(1)", service.get_user(1))
        .await;
    service
        .call("service.get_user(1)", service.get_user(1))
        .await;
    service
        .call("service.get_user_count()", service.get_user_count())
        .await;
    service
        .call("service.get_user_count()", service.get_user_count())
        .await;

    // Another instance shares the entries: `self` is not part of the key.
    let other = UserService {
        db: Db::default(),
        cache: cache.clone(),
    };
    other.call("other.get_user(1)", other.get_user(1)).await;

    println!(
        "keys: {:?}",
        cache
            .keys("*")
            .await?
            .iter()
            .filter(|k| k.starts_with("user:") || k.starts_with(&module))
            .collect::<Vec<_>>()
    );
    service.update_user(1, HashMap::new()).await?;
    println!("after update_user: {:?}", cache.keys("user:*").await?);
    service
        .call("service.get_user(1)", service.get_user(1))
        .await;

    for f in cachette::runtime::function_stats() {
        println!(
            "{:<48} {} miss(es), {} hit(s), {} evicted",
            f.name, f.stats.misses, f.stats.hits, f.evicted
        );
    }
    cache.delete_pattern("user:*").await?;
    cache.delete_pattern(&format!("{module}:*")).await?;
    Ok(())
}
