//! Basic caching: `#[cached(ttl = 300)]` on an async function, stored in the process-wide
//! default manager (the spec's "Basic Caching" and "Set Appropriate TTL").
//!
//! ```text
//! cargo run --example basic_caching                                        # embedded memory
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example basic_caching     # Redis
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachette::key::DefaultKey;
use cachette::{cached, KeyTtl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

/// A stand-in for the database: slow, and counting its queries.
static DB_QUERIES: AtomicUsize = AtomicUsize::new(0);

async fn fetch_user(user_id: u64) -> Result<User, DbError> {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(User {
        id: user_id,
        name: format!("user {user_id}"),
    })
}

/// Fetch user from database (cached for 5 minutes).
#[cached(ttl = 300)]
async fn get_user(user_id: u64) -> Result<User, DbError> {
    fetch_user(user_id).await
}

/// Static data: no expiry.
#[cached(ttl = None)]
async fn get_reference_data() -> Vec<String> {
    DB_QUERIES.fetch_add(1, Ordering::SeqCst);
    vec!["EUR".into(), "USD".into()]
}

/// Runs `call`, printing whether it hit the cache (no database query) or missed.
async fn report<T: std::fmt::Debug>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    let queries = DB_QUERIES.load(Ordering::SeqCst);
    let started = Instant::now();
    let value = call.await;
    let outcome = if DB_QUERIES.load(Ordering::SeqCst) > queries {
        "miss (fetched from the database)"
    } else {
        "hit  (served from the cache)"
    };
    println!(
        "{what:<24} {outcome} in {:>6.2?} -> {value:?}",
        started.elapsed()
    );
    value
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Built on first use from config.json / REDIS_* variables: the embedded memory backend when
    // no Redis server is named. (`cachette::install(manager)` would set it explicitly.)
    let cache = cachette::default_manager().ok_or("the cache configuration is invalid")?;
    println!(
        "backend: {} (prefix {:?})",
        cache.describe(),
        cache.prefix()
    );
    // Start from a clean slate when the example runs again against the same Redis.
    let module = module_path!().replace("::", ".");
    cache.delete_pattern(&format!("{module}:*")).await?;

    report("get_user(1)", get_user(1)).await?;
    report("get_user(1)", get_user(1)).await?;
    report("get_user(2)", get_user(2)).await?;
    report("get_reference_data()", get_reference_data()).await;
    report("get_reference_data()", get_reference_data()).await;

    // The generated keys: {prefix}{module}:{function}:{xxh3-128 of the arguments}.
    let key = DefaultKey::function(module_path!(), "get_user")
        .arg(&1u64)
        .build()?;
    println!("\nkeys in the cache:");
    for k in cache.keys(&format!("{module}:*")).await? {
        let ttl = match cache.ttl(&k).await? {
            KeyTtl::Expires(left) => format!("expires in {}s", left.as_secs()),
            KeyTtl::Persistent => "persistent".to_owned(),
            KeyTtl::Missing => "gone".to_owned(),
        };
        println!("  {}  ({ttl})", cache.full_key(&k));
    }
    assert!(cache.exists(&key).await?);

    println!("\nper-function statistics:");
    for f in cachette::runtime::function_stats() {
        println!(
            "  {:<40} {} miss(es), {} hit(s)",
            f.name, f.stats.misses, f.stats.hits
        );
    }
    let s = cache.stats();
    println!(
        "manager: {} hits, {} misses, {} writes",
        s.hits, s.misses, s.writes
    );

    cache.delete_pattern(&format!("{module}:*")).await?;
    Ok(())
}
