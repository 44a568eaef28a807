//! Every option of #[cached], on free functions, methods, generics and `impl Trait`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cachette::{cached, CacheManager, Ttl};
use serde::{Deserialize, Serialize};

static CACHE: LazyLock<CacheManager> = LazyLock::new(CacheManager::memory);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    is_admin: bool,
}

#[derive(Debug)]
enum AppError {
    Cache(cachette::Error),
}

impl From<cachette::Error> for AppError {
    fn from(e: cachette::Error) -> Self {
        AppError::Cache(e)
    }
}

fn build_key(name: &str, user_id: &u64, include_extra: &bool) -> String {
    format!("{name}:{user_id}:{include_extra}")
}

fn is_admin(user: &User) -> bool {
    user.is_admin
}

struct Db;

#[cached]
async fn defaults(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = 300, key = "user:{user_id}:extra:{include_extra}")]
async fn templated(user_id: u64, include_extra: bool) -> Option<u64> {
    include_extra.then_some(user_id)
}

#[cached(ttl = None, key_builder = build_key, unless = is_admin, cache = CACHE)]
async fn built(user_id: u64, include_extra: bool) -> Result<User, std::io::Error> {
    let _ = include_extra;
    Ok(User { id: user_id, is_admin: false })
}

#[cached(ttl = Duration::from_millis(500), fallback_on_error = false, skip(db), name = "get_user")]
async fn strict(db: &Db, user_id: u64) -> Result<User, AppError> {
    let _ = db;
    Ok(User { id: user_id, is_admin: false })
}

#[cached(ttl = Ttl::Never, cache_none = true, key_builder = |name: &str, id: &u64| format!("{name}/{id}"))]
async fn maybe(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

#[cached(cache = Arc::new(CacheManager::memory()), unless = |n: &u64| *n == 0)]
async fn with_arc(n: u64) -> std::io::Result<u64> {
    Ok(n)
}

// A closure without type annotations: its argument is inferred as `&User`.
#[cached(unless = |user| user.is_admin)]
async fn inferred_unless(id: u64) -> Result<User, std::io::Error> {
    Ok(User { id, is_admin: false })
}

#[cached]
async fn generic<T: Serialize + Send + Sync + std::fmt::Debug>(value: T, label: impl AsRef<str> + Serialize + Send) -> String {
    format!("{}: {value:?}", label.as_ref())
}

#[cached(key = "{{literal}}:{pair.0}:{user.id}")]
async fn fields(pair: (u8, String), user: &User) -> u8 {
    let _ = user;
    pair.0
}

// The stampede options, every value a literal (the options are a static).
#[cached(
    ttl = 300,
    lock = true,
    lock_ttl = 30,
    lock_wait = 0,
    early_refresh = 1.0,
    stale_ttl = 60,
    soft_timeout = 1,
    hard_timeout = 10,
    jitter = 10,
    coalesce = false,
    cache = CACHE
)]
async fn stampede_literals(id: u64) -> Result<User, AppError> {
    Ok(User { id, is_admin: false })
}

// Durations as expressions (the options are built per call) and an integer beta.
#[cached(
    ttl = Duration::from_millis(500),
    lock = true,
    lock_wait = Duration::from_millis(100),
    stale_ttl = Duration::from_secs(5),
    soft_timeout = Duration::from_millis(50),
    early_refresh = 2,
    fallback_on_error = false
)]
async fn stampede_expressions(id: u64) -> Result<User, AppError> {
    Ok(User { id, is_admin: false })
}

// `hard_timeout` returns through `E: From<cachette::Error>`: `cachette::Error` itself qualifies.
#[cached(hard_timeout = Duration::from_millis(200), jitter = 0)]
async fn bounded(id: u64) -> Result<u64, cachette::Error> {
    Ok(id)
}

// Every stampede option but `hard_timeout` fits non-`Result` functions.
#[cached(stale_ttl = 60, early_refresh = 0.5, lock = true)]
async fn plain_value(id: u64) -> Option<u64> {
    Some(id)
}

struct Service {
    cache: CacheManager,
    tenant: String,
}

impl Service {
    #[cached(cache = self.cache, ttl = 60)]
    async fn count(&self) -> u64 {
        1
    }

    #[cached(cache = self.cache, key = "{self.tenant}:user:{id}")]
    async fn user(&self, id: u64) -> Result<User, std::io::Error> {
        Ok(User { id, is_admin: false })
    }

    #[cached(cache = self.cache.clone())]
    async fn reset(&mut self, id: u64) -> u64 {
        self.tenant.clear();
        id
    }

    #[cached(cache = CACHE)]
    async fn associated(id: u64) -> u64 {
        id
    }

    // An option computed from `self`, evaluated before the body.
    #[cached(cache = self.cache, ttl = 60, stale_ttl = self.stale(), hard_timeout = 5)]
    async fn stale_from_self(&self, id: u64) -> Result<u64, cachette::Error> {
        Ok(id)
    }

    fn stale(&self) -> Duration {
        Duration::from_secs(30)
    }
}

trait Repository {
    async fn find(&self, id: u64) -> Option<u64>;
}

impl Repository for Service {
    #[cached(cache = self.cache)]
    async fn find(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {
    // The futures are Send, so they can be spawned.
    fn assert_send<T: Send>(_: T) {}
    assert_send(defaults(1));
    assert_send(built(1, true));
    assert_send(strict(&Db, 1));
    assert_send(maybe(1));
    assert_send(with_arc(1));
    assert_send(generic(1u8, "x"));
    assert_send(stampede_literals(1));
    assert_send(stampede_expressions(1));
    assert_send(bounded(1));
    assert_send(plain_value(1));
    let _ = templated(1, true);
    let _ = inferred_unless(1);
    let _ = fields((1, String::new()), &User { id: 1, is_admin: false });
    let service = Service { cache: CacheManager::memory(), tenant: String::new() };
    assert_send(service.count());
    assert_send(service.user(1));
    let _ = Service::associated(1);
    let _ = service.find(1);
    assert_send(service.stale_from_self(1));
}
