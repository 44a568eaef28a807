//! Dependency injection: an `axum` handler takes the `CacheManager` from the application state
//! and hands it to a cached function with `cache = ...` (the spec's "Decorator with Dependency
//! Injection", where FastAPI's `Depends` provides the manager).
//!
//! The example drives the router in-process with `tower::ServiceExt::oneshot` (no socket), sends
//! a few requests and exits.
//!
//! ```text
//! cargo run --example dependency_injection
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example dependency_injection
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use cachette::{cached, CacheManager};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Default)]
struct Database {
    queries: AtomicUsize,
}

impl Database {
    async fn fetch_user(&self, user_id: u64) -> Option<User> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        (user_id < 100).then(|| User {
            id: user_id,
            name: format!("user {user_id}"),
        })
    }
}

/// What the handlers depend on.
#[derive(Clone)]
struct AppState {
    cache: CacheManager,
    db: Arc<Database>,
}

/// The manager is injected as an argument; `skip` keeps it (and the database handle) out of
/// the key.
#[cached(ttl = 300, cache = cache, skip(cache, db))]
async fn get_user(cache: &CacheManager, db: &Database, user_id: u64) -> Option<User> {
    db.fetch_user(user_id).await
}

async fn user_handler(
    State(state): State<AppState>,
    Path(user_id): Path<u64>,
) -> Result<Json<User>, StatusCode> {
    get_user(&state.cache, &state.db, user_id)
        .await
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = AppState {
        cache: CacheManager::from_env()?,
        db: Arc::new(Database::default()),
    };
    println!("backend: {}", state.cache.describe());
    let module = module_path!().replace("::", ".");
    state.cache.delete_pattern(&format!("{module}:*")).await?;

    let app = Router::new()
        .route("/users/{id}", get(user_handler))
        .with_state(state.clone());

    for path in [
        "/users/7",
        "/users/7",
        "/users/8",
        "/users/404",
        "/users/404",
    ] {
        let before = state.db.queries.load(Ordering::SeqCst);
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty())?)
            .await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
        let outcome = if state.db.queries.load(Ordering::SeqCst) > before {
            "miss"
        } else {
            "hit "
        };
        println!(
            "GET {path:<12} {outcome} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    println!(
        "database queries: {}",
        state.db.queries.load(Ordering::SeqCst)
    );
    println!(
        "cached keys: {:?}",
        state.cache.keys(&format!("{module}:*")).await?
    );
    state.cache.delete_pattern(&format!("{module}:*")).await?;
    Ok(())
}
