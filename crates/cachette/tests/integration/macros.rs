//! The attribute macros on both backends: every usage example of the spec (basic caching,
//! custom key builder, conditional caching, eviction, class methods, cached property,
//! dependency injection, best practices) as a test, plus the option matrix.
//!
//! The scenarios are written once inside `macro_scenarios!` and instantiated per backend, so
//! each backend gets its own copy of every decorated function — and so its own per-function
//! statistics, which the tests assert on ("first call miss, second hit"). Each test uses a
//! fresh manager under a unique prefix and names it with `cache = ...`; the process-wide
//! default manager is exercised in `macros_default`.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) is_admin: bool,
}

#[derive(Debug, PartialEq)]
pub(crate) enum DbError {
    NotFound(u64),
    Cache(cachette::ErrorKind),
}

impl From<cachette::Error> for DbError {
    fn from(e: cachette::Error) -> Self {
        DbError::Cache(e.kind())
    }
}

/// A fake database that counts its queries.
#[derive(Debug, Default)]
pub(crate) struct Db {
    pub(crate) queries: AtomicUsize,
}

impl Db {
    pub(crate) fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    pub(crate) async fn fetch_user(&self, id: u64) -> Result<User, DbError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        if id >= 1000 {
            return Err(DbError::NotFound(id));
        }
        Ok(User {
            id,
            name: format!("user {id}"),
            is_admin: id == 0,
        })
    }
}

/// The statistics of a decorated function of the calling module.
macro_rules! fn_stats {
    ($name:literal) => {
        cachette::runtime::function_stats_of(&format!("{}::{}", module_path!(), $name))
            .map(|s| (s.stats.misses, s.stats.hits))
            .unwrap_or_default()
    };
}

macro_rules! macro_scenarios {
    ($($backend:ident => $fixture:expr),* $(,)?) => {$(
        mod $backend {
            use std::collections::HashMap;
            use std::sync::atomic::{AtomicUsize, Ordering};
            use std::sync::Arc;
            use std::time::Duration;

            use cachette::key::DefaultKey;
            use cachette::{
                cache_evict, cache_put, cached, cached_property, CacheManager, CachedProperty,
                KeyTtl, Ttl,
            };
            use serde::Serialize;

            use super::{Db, DbError, User};
            use crate::support::Fixture;

            fn fixture() -> Fixture {
                $fixture
            }

            // ---- basic caching ---------------------------------------------------------

            #[cached(cache = cache, skip(cache, db), ttl = 300)]
            async fn get_user(cache: &CacheManager, db: &Db, user_id: u64) -> Result<User, DbError> {
                db.fetch_user(user_id).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn basic_caching_first_call_misses_second_hits() {
                let fx = fixture();
                let cache = fx.fresh();
                let db = Db::default();

                let user1 = get_user(&cache, &db, 1).await.unwrap();
                assert_eq!(db.queries(), 1, "first call fetches from the DB");
                assert_eq!(fn_stats!("get_user"), (1, 0));
                let user2 = get_user(&cache, &db, 1).await.unwrap();
                assert_eq!(user1, user2);
                assert_eq!(db.queries(), 1, "second call is served from the cache");
                assert_eq!(fn_stats!("get_user"), (1, 1));
                let stats = cache.stats();
                assert_eq!((stats.hits, stats.misses, stats.writes), (1, 1, 1));

                // The default key: module:function:xxh3-128 of the arguments, `db` skipped.
                let key = DefaultKey::function(module_path!(), "get_user").arg(&1u64).build().unwrap();
                assert!(key.starts_with(&format!("integration.macros.{}:get_user:", stringify!($backend))), "{key}");
                assert_eq!(cache.keys("*").await.unwrap(), std::slice::from_ref(&key));
                let ttl = cache.ttl(&key).await.unwrap().remaining().unwrap();
                assert!(ttl > Duration::from_secs(290) && ttl <= Duration::from_secs(300), "{ttl:?}");
                // The stored value is plain JSON of the returned value.
                assert_eq!(cache.get::<User>(&key).await.unwrap(), Some(user1));

                // Another argument is another entry.
                get_user(&cache, &db, 2).await.unwrap();
                assert_eq!(db.queries(), 2);
                assert_eq!(fn_stats!("get_user"), (2, 1));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn errors_are_returned_and_never_cached() {
                let fx = fixture();
                let cache = fx.fresh();
                let db = Db::default();
                assert_eq!(get_user(&cache, &db, 1000).await, Err(DbError::NotFound(1000)));
                assert_eq!(get_user(&cache, &db, 1000).await, Err(DbError::NotFound(1000)));
                assert_eq!(db.queries(), 2);
                assert!(cache.keys("*").await.unwrap().is_empty());
            }

            // ---- custom key builder ----------------------------------------------------

            fn build_key(func_name: &str, user_id: &u64, include_extra: &bool) -> String {
                assert_eq!(func_name, "get_user_with_relations");
                format!("user:{user_id}:extra:{include_extra}")
            }

            #[cached(cache = cache, skip(cache, db), ttl = 600, key_builder = build_key)]
            async fn get_user_with_relations(
                cache: &CacheManager,
                db: &Db,
                user_id: u64,
                include_extra: bool,
            ) -> Result<User, DbError> {
                let mut user = db.fetch_user(user_id).await?;
                if include_extra {
                    user.name.push_str(" (with relations)");
                }
                Ok(user)
            }

            // The same key as a template.
            #[cached(cache = cache, skip(db), ttl = 600, key = "user:{user_id}:extra:{include_extra}")]
            async fn get_user_with_relations_templated(
                cache: &CacheManager,
                db: &Db,
                user_id: u64,
                include_extra: bool,
            ) -> Result<User, DbError> {
                get_user_with_relations(cache, db, user_id, include_extra).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn custom_key_builder_names_the_key() {
                let fx = fixture();
                let cache = fx.fresh();
                let db = Db::default();
                let u = get_user_with_relations(&cache, &db, 1, true).await.unwrap();
                assert_eq!(u.name, "user 1 (with relations)");
                get_user_with_relations(&cache, &db, 1, false).await.unwrap();
                assert_eq!(
                    cache.keys("*").await.unwrap(),
                    ["user:1:extra:false", "user:1:extra:true"]
                );
                let ttl = cache.ttl("user:1:extra:true").await.unwrap().remaining().unwrap();
                assert!(ttl > Duration::from_secs(590), "{ttl:?}");
                // The template builds the same key, so it hits the builder's entry.
                let again = get_user_with_relations_templated(&cache, &db, 1, true).await.unwrap();
                assert_eq!(again, u);
                assert_eq!(db.queries(), 2);
                assert_eq!(fn_stats!("get_user_with_relations_templated"), (0, 1));
            }

            // ---- conditional caching ---------------------------------------------------

            fn skip_cache_for_admin(user: &User) -> bool {
                user.is_admin
            }

            #[cached(cache = cache, skip(cache, db), ttl = 300, unless = skip_cache_for_admin)]
            async fn get_user_unless_admin(cache: &CacheManager, db: &Db, user_id: u64) -> Result<User, DbError> {
                db.fetch_user(user_id).await
            }

            #[cached(cache = cache, skip(cache, db), unless = |name: &String| name.is_empty())]
            async fn find_name(cache: &CacheManager, db: &Db, user_id: u64) -> Option<String> {
                db.fetch_user(user_id).await.ok().map(|u| if u.is_admin { String::new() } else { u.name })
            }

            #[cached(cache = cache, skip(cache, db), cache_none = true)]
            async fn find_name_caching_none(cache: &CacheManager, db: &Db, user_id: u64) -> Option<String> {
                db.fetch_user(user_id).await.ok().map(|u| u.name)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn conditional_caching_skips_admins_and_none() {
                let fx = fixture();
                let cache = fx.fresh();
                let db = Db::default();
                // Admins are returned but not cached.
                assert!(get_user_unless_admin(&cache, &db, 0).await.unwrap().is_admin);
                assert!(get_user_unless_admin(&cache, &db, 0).await.unwrap().is_admin);
                assert_eq!(db.queries(), 2);
                // Others are cached.
                get_user_unless_admin(&cache, &db, 5).await.unwrap();
                get_user_unless_admin(&cache, &db, 5).await.unwrap();
                assert_eq!(db.queries(), 3);
                assert_eq!(fn_stats!("get_user_unless_admin"), (3, 1));

                // Option: None is not cached; `unless` sees the inner value.
                let db = Db::default();
                assert_eq!(find_name(&cache, &db, 2000).await, None);
                assert_eq!(find_name(&cache, &db, 2000).await, None);
                assert_eq!(find_name(&cache, &db, 0).await.as_deref(), Some(""));
                assert_eq!(find_name(&cache, &db, 0).await.as_deref(), Some(""));
                assert_eq!(find_name(&cache, &db, 7).await.as_deref(), Some("user 7"));
                assert_eq!(find_name(&cache, &db, 7).await.as_deref(), Some("user 7"));
                assert_eq!(db.queries(), 5);

                // cache_none = true caches None as JSON null.
                let db = Db::default();
                assert_eq!(find_name_caching_none(&cache, &db, 3000).await, None);
                assert_eq!(find_name_caching_none(&cache, &db, 3000).await, None);
                assert_eq!(db.queries(), 1);
                let key = DefaultKey::function(module_path!(), "find_name_caching_none").arg(&3000u64).build().unwrap();
                assert_eq!(cache.get_raw(&key).await.unwrap().as_deref(), Some(&b"null"[..]));
            }

            // ---- eviction --------------------------------------------------------------

            #[cached(cache = cache, skip(cache, db), ttl = 3600, key = "user:{user_id}")]
            async fn get_user_by_key(cache: &CacheManager, db: &Db, user_id: u64) -> Result<User, DbError> {
                db.fetch_user(user_id).await
            }

            #[cache_evict(cache = cache, pattern = "user:*")]
            async fn update_user(cache: &CacheManager, user_id: u64, data: HashMap<String, String>) -> Result<u64, DbError> {
                let _ = data;
                Ok(user_id)
            }

            #[cache_evict(cache = cache, key = "user:1")]
            async fn delete_user_1(cache: &CacheManager, user_id: u64) -> Result<(), DbError> {
                let _ = user_id;
                Ok(())
            }

            #[cache_evict(cache = cache, key = "user:{user_id}")]
            async fn delete_user(cache: &CacheManager, user_id: u64) -> Result<(), DbError> {
                if user_id >= 1000 {
                    return Err(DbError::NotFound(user_id));
                }
                Ok(())
            }

            #[cache_evict(cache = cache, key = "user:{user_id}", always = true)]
            async fn delete_user_always(cache: &CacheManager, user_id: u64) -> Result<(), DbError> {
                Err(DbError::NotFound(user_id))
            }

            #[cache_evict(cache = cache, keys = ["user:list", "user:stats"])]
            async fn create_user(cache: &CacheManager, name: String) -> u64 {
                let _ = name;
                7
            }

            /// Evicts before the body: the body sees the cache without the key.
            #[cache_evict(cache = cache, key = "user:{user_id}", before = true)]
            async fn reload_user(cache: &CacheManager, user_id: u64) -> bool {
                cache.exists(&format!("user:{user_id}")).await.unwrap()
            }

            /// Stacked: a pattern and a key list.
            #[cache_evict(cache = cache, pattern = "user:{user_id}:*")]
            #[cache_evict(cache = cache, keys = ["user:list", "user:{user_id}"])]
            async fn purge_user(cache: &CacheManager, user_id: String) -> Result<(), DbError> {
                let _ = user_id;
                Ok(())
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn eviction_by_pattern_and_key() {
                let fx = fixture();
                let cache = fx.fresh();
                let db = Db::default();
                for id in [1, 2, 3] {
                    get_user_by_key(&cache, &db, id).await.unwrap();
                }
                cache.set("other:1", &1, Ttl::Default).await.unwrap();
                assert_eq!(cache.keys("user:*").await.unwrap(), ["user:1", "user:2", "user:3"]);

                delete_user_1(&cache, 1).await.unwrap();
                assert_eq!(cache.keys("user:*").await.unwrap(), ["user:2", "user:3"]);
                get_user_by_key(&cache, &db, 1).await.unwrap();
                assert_eq!(db.queries(), 4, "evicted entry is fetched again");

                update_user(&cache, 2, HashMap::from([("name".into(), "Ada".into())])).await.unwrap();
                assert!(cache.keys("user:*").await.unwrap().is_empty());
                assert_eq!(cache.keys("*").await.unwrap(), ["other:1"], "the pattern spares other keys");
                let evicted = cachette::runtime::function_stats_of(&format!("{}::update_user", module_path!())).unwrap();
                assert_eq!(evicted.evicted, 3);

                // Specific key from an argument; not evicted when the function fails.
                get_user_by_key(&cache, &db, 4).await.unwrap();
                get_user_by_key(&cache, &db, 5).await.unwrap();
                delete_user(&cache, 4).await.unwrap();
                assert_eq!(cache.keys("user:*").await.unwrap(), ["user:5"]);
                cache.set("user:1005", &1, Ttl::Default).await.unwrap();
                assert!(delete_user(&cache, 1005).await.is_err());
                assert!(cache.exists("user:1005").await.unwrap(), "no eviction after an Err");
                assert!(delete_user_always(&cache, 1005).await.is_err());
                assert!(!cache.exists("user:1005").await.unwrap(), "always = true evicts after an Err");

                // keys = [...]
                cache.set("user:list", &[1, 2], Ttl::Default).await.unwrap();
                cache.set("user:stats", &2, Ttl::Default).await.unwrap();
                assert_eq!(create_user(&cache, "Ada".into()).await, 7);
                assert!(!cache.exists("user:list").await.unwrap());
                assert!(!cache.exists("user:stats").await.unwrap());

                // before = true
                cache.set("user:9", &1, Ttl::Default).await.unwrap();
                assert!(!reload_user(&cache, 9).await, "evicted before the body ran");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn eviction_patterns_escape_argument_values() {
                let fx = fixture();
                let cache = fx.fresh();
                for key in ["user:list", "user:*", "user:*:posts", "user:42", "user:42:posts", "user:a%3Ab:x"] {
                    cache.set(key, &1, Ttl::Default).await.unwrap();
                }
                // An id of `*` must not widen the pattern to every user.
                purge_user(&cache, "*".into()).await.unwrap();
                assert_eq!(cache.keys("*").await.unwrap(), ["user:42", "user:42:posts", "user:a%3Ab:x"]);
                // `:` in a value is percent-escaped, as in keys built by templates.
                purge_user(&cache, "a:b".into()).await.unwrap();
                assert_eq!(cache.keys("*").await.unwrap(), ["user:42", "user:42:posts"]);
                purge_user(&cache, "42".into()).await.unwrap();
                assert!(cache.keys("*").await.unwrap().is_empty());
            }

            // ---- class method caching --------------------------------------------------

            struct UserService {
                cache: CacheManager,
                db: Db,
            }

            impl UserService {
                #[cached(cache = self.cache, ttl = 300)]
                async fn get_user(&self, user_id: u64) -> Result<User, DbError> {
                    self.db.fetch_user(user_id).await
                }

                #[cached(cache = self.cache, ttl = 60)]
                async fn get_user_count(&self) -> u64 {
                    self.db.queries.fetch_add(1, Ordering::SeqCst);
                    3
                }

                #[cache_evict(cache = self.cache, pattern = "*UserService.get_user:*")]
                async fn update_user(&self, user_id: u64, data: HashMap<String, String>) -> Result<(), DbError> {
                    let _ = (user_id, data);
                    Ok(())
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn class_methods_are_cached_per_type_not_per_instance() {
                let fx = fixture();
                let prefix = crate::support::unique_prefix("svc");
                let service = UserService { cache: fx.manager(&prefix), db: Db::default() };
                service.get_user(1).await.unwrap();
                service.get_user(1).await.unwrap();
                assert_eq!(service.get_user_count().await, 3);
                assert_eq!(service.get_user_count().await, 3);
                assert_eq!(service.db.queries(), 2);
                assert_eq!(fn_stats!("UserService::get_user"), (1, 1));
                assert_eq!(fn_stats!("UserService::get_user_count"), (1, 1));

                let module = module_path!();
                let keys = service.cache.keys("*").await.unwrap();
                assert_eq!(keys, [
                    DefaultKey::method(module, "UserService", "get_user").arg(&1u64).build().unwrap(),
                    DefaultKey::method(module, "UserService", "get_user_count").build().unwrap(),
                ]);
                assert!(keys[1].ends_with(":UserService.get_user_count:99aa06d3014798d86001c324468d497f"));

                // `self` is not part of the key: another instance on the same cache hits.
                let other = UserService { cache: fx.manager(&prefix), db: Db::default() };
                other.get_user(1).await.unwrap();
                assert_eq!(other.db.queries(), 0);

                service.update_user(1, HashMap::new()).await.unwrap();
                let keys = service.cache.keys("*").await.unwrap();
                assert_eq!(keys.len(), 1, "{keys:?}");
                assert!(keys[0].contains("get_user_count"));
            }

            /// Generic types, generic methods and `impl Trait` arguments keep working: the body
            /// is rewritten in place.
            struct Repo<D> {
                cache: CacheManager,
                data: D,
            }

            impl<D: AsRef<[u64]> + Sync> Repo<D> {
                #[cached(cache = self.cache)]
                async fn nth(&self, index: usize) -> Option<u64> {
                    self.data.as_ref().get(index).copied()
                }

                #[cached(cache = self.cache, key = "sum:{label}")]
                async fn sum<L: std::fmt::Display + Send + Sync>(&self, label: L) -> u64 {
                    let _ = &label;
                    self.data.as_ref().iter().sum()
                }
            }

            #[cached(cache = cache, skip(cache))]
            async fn describe(cache: &CacheManager, value: impl Serialize + std::fmt::Debug + Send) -> String {
                format!("{value:?}")
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn generics_and_impl_trait_arguments() {
                let fx = fixture();
                let repo = Repo { cache: fx.fresh(), data: vec![10, 20, 30] };
                assert_eq!(repo.nth(1).await, Some(20));
                assert_eq!(repo.nth(9).await, None);
                assert_eq!(repo.sum("all").await, 60);
                assert_eq!(repo.sum(String::from("all")).await, 60);
                let keys = repo.cache.keys("*").await.unwrap();
                assert_eq!(keys.len(), 2, "{keys:?}");
                assert!(keys[0].contains(":Repo.nth:"), "{keys:?}");
                assert_eq!(keys[1], "sum:all");

                let cache = fx.fresh();
                assert_eq!(describe(&cache, (1, "a")).await, "(1, \"a\")");
                assert_eq!(describe(&cache, [1u8, 2]).await, "[1, 2]");
                assert_eq!(cache.keys("*").await.unwrap().len(), 2);
            }

            // ---- cached property -------------------------------------------------------

            /// The data source is itself cached in the backend; the processed data is cached
            /// per instance.
            struct DataSource {
                cache: CacheManager,
                fetches: AtomicUsize,
            }

            impl DataSource {
                #[cached(cache = self.cache, ttl = 300)]
                async fn fetch(&self) -> Vec<u64> {
                    self.fetches.fetch_add(1, Ordering::SeqCst);
                    vec![3, 1, 2]
                }
            }

            struct DataProcessor {
                data_source: Arc<DataSource>,
                processed_data: CachedProperty<Arc<Vec<u64>>>,
                computations: AtomicUsize,
            }

            impl DataProcessor {
                fn new(data_source: Arc<DataSource>) -> Self {
                    DataProcessor { data_source, processed_data: CachedProperty::new(), computations: AtomicUsize::new(0) }
                }

                #[cached_property(ttl = Duration::from_millis(400))]
                async fn processed_data(&self) -> Arc<Vec<u64>> {
                    let raw_data = self.data_source.fetch().await;
                    self.computations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Arc::new(self.expensive_processing(raw_data))
                }

                fn expensive_processing(&self, mut data: Vec<u64>) -> Vec<u64> {
                    data.sort_unstable();
                    data
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cached_property_is_per_instance_with_ttl() {
                let fx = fixture();
                let source = Arc::new(DataSource { cache: fx.fresh(), fetches: AtomicUsize::new(0) });
                let processor = Arc::new(DataProcessor::new(source.clone()));

                // Concurrent first callers compute once.
                let calls: Vec<_> = (0..8).map(|_| {
                    let p = processor.clone();
                    tokio::spawn(async move { p.processed_data().await })
                }).collect();
                for call in calls {
                    assert_eq!(*call.await.unwrap(), [1, 2, 3]);
                }
                assert_eq!(processor.computations.load(Ordering::SeqCst), 1);
                processor.processed_data().await;
                assert_eq!(processor.computations.load(Ordering::SeqCst), 1);

                // Another instance has its own value (the shared source is a backend hit).
                let second = DataProcessor::new(source.clone());
                second.processed_data().await;
                assert_eq!(second.computations.load(Ordering::SeqCst), 1);
                assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

                // Recomputed after the TTL.
                tokio::time::sleep(Duration::from_millis(500)).await;
                assert!(!processor.processed_data.is_fresh());
                processor.processed_data().await;
                assert_eq!(processor.computations.load(Ordering::SeqCst), 2);

                // Freed with the instance.
                let value = processor.processed_data().await;
                let weak = Arc::downgrade(&value);
                drop(value);
                assert!(weak.upgrade().is_some());
                drop(processor);
                assert!(weak.upgrade().is_none(), "the value is dropped with its instance");
            }

            // ---- dependency injection (axum) -------------------------------------------

            #[derive(Clone)]
            struct AppState {
                cache: CacheManager,
                db: Arc<Db>,
            }

            #[cached(cache = cache, skip(cache, db), ttl = 300)]
            async fn get_user_injected(cache: &CacheManager, db: &Db, user_id: u64) -> Result<User, DbError> {
                db.fetch_user(user_id).await
            }

            async fn user_handler(
                axum::extract::State(state): axum::extract::State<AppState>,
                axum::extract::Path(user_id): axum::extract::Path<u64>,
            ) -> Result<axum::Json<User>, axum::http::StatusCode> {
                get_user_injected(&state.cache, &state.db, user_id)
                    .await
                    .map(axum::Json)
                    .map_err(|_| axum::http::StatusCode::NOT_FOUND)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dependency_injection_through_axum_state() {
                use tower::ServiceExt;
                let fx = fixture();
                let state = AppState { cache: fx.fresh(), db: Arc::new(Db::default()) };
                let app = axum::Router::new()
                    .route("/users/{id}", axum::routing::get(user_handler))
                    .with_state(state.clone());
                for _ in 0..3 {
                    let request = axum::http::Request::get("/users/4").body(axum::body::Body::empty()).unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    assert_eq!(response.status(), axum::http::StatusCode::OK);
                    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                    let user: User = serde_json::from_slice(&body).unwrap();
                    assert_eq!(user.id, 4);
                }
                let request = axum::http::Request::get("/users/1004").body(axum::body::Body::empty()).unwrap();
                assert_eq!(app.oneshot(request).await.unwrap().status(), axum::http::StatusCode::NOT_FOUND);
                assert_eq!(state.db.queries(), 2);
                assert_eq!(fn_stats!("get_user_injected"), (2, 2));
            }

            // ---- best practices: TTLs, put, concurrency --------------------------------

            #[cached(cache = cache, skip(cache), ttl = None)]
            async fn get_reference_data(cache: &CacheManager) -> Vec<String> {
                vec!["EUR".into(), "USD".into()]
            }

            #[cached(cache = cache, skip(cache), ttl = 86400)]
            async fn get_configuration(cache: &CacheManager) -> HashMap<String, u32> {
                HashMap::from([("workers".into(), 4)])
            }

            #[cached(cache = cache, skip(cache))]
            async fn get_default_ttl(cache: &CacheManager) -> u8 {
                1
            }

            #[cached(cache = cache, skip(cache, secs), ttl = Duration::from_secs(*secs))]
            async fn get_with_dynamic_ttl(cache: &CacheManager, secs: &u64) -> u8 {
                2
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ttl_options() {
                let fx = fixture();
                let cache = fx.fresh();
                get_reference_data(&cache).await;
                get_configuration(&cache).await;
                get_default_ttl(&cache).await;
                get_with_dynamic_ttl(&cache, &120).await;
                let ttl_of = |name: &'static str| {
                    let cache = cache.clone();
                    async move {
                        let key = DefaultKey::function(module_path!(), name).build().unwrap();
                        cache.ttl(&key).await.unwrap()
                    }
                };
                assert_eq!(ttl_of("get_reference_data").await, KeyTtl::Persistent);
                let day = ttl_of("get_configuration").await.remaining().unwrap();
                assert!(day > Duration::from_secs(86000), "{day:?}");
                let default = ttl_of("get_default_ttl").await.remaining().unwrap();
                assert!(default > Duration::from_secs(3500) && default <= Duration::from_secs(3600));
                let dynamic = ttl_of("get_with_dynamic_ttl").await.remaining().unwrap();
                assert!(dynamic > Duration::from_secs(110) && dynamic <= Duration::from_secs(120));
            }

            #[cached(cache = cache, skip(cache), key = "price:{item}")]
            async fn price(cache: &CacheManager, item: u32) -> u64 {
                100 + u64::from(item)
            }

            #[cache_put(cache = cache, skip(cache, cents), key = "price:{item}")]
            async fn set_price(cache: &CacheManager, item: u32, cents: u64) -> Result<u64, DbError> {
                Ok(cents)
            }

            /// Shares `price`'s default key through `name`.
            #[cache_put(cache = cache, skip(cache), name = "get_default_ttl")]
            async fn refresh_default(cache: &CacheManager) -> u8 {
                9
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cache_put_always_runs_and_stores() {
                let fx = fixture();
                let cache = fx.fresh();
                assert_eq!(price(&cache, 1).await, 101);
                assert_eq!(set_price(&cache, 1, 250).await, Ok(250));
                assert_eq!(price(&cache, 1).await, 250);
                assert_eq!(set_price(&cache, 1, 300).await, Ok(300));
                assert_eq!(price(&cache, 1).await, 300);
                let put = cachette::runtime::function_stats()
                    .into_iter()
                    .find(|s| s.name == format!("{}::set_price", module_path!()))
                    .unwrap();
                assert_eq!(put.kind, cachette::runtime::SiteKind::Put);
                assert_eq!(put.stats.writes, 2);

                assert_eq!(refresh_default(&cache).await, 9);
                assert_eq!(get_default_ttl(&cache).await, 9);
            }

            #[cached(cache = cache, skip(cache, runs), ttl = 60)]
            async fn slow_square(cache: &CacheManager, runs: &AtomicUsize, x: u64) -> u64 {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                x * x
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_calls_get_correct_values() {
                let fx = fixture();
                let cache = fx.fresh();
                let runs = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..64u64).map(|i| {
                    let (cache, runs) = (cache.clone(), runs.clone());
                    tokio::spawn(async move { (i % 8, slow_square(&cache, &runs, i % 8).await) })
                }).collect();
                for task in tasks {
                    let (x, squared) = task.await.unwrap();
                    assert_eq!(squared, x * x);
                }
                assert!(runs.load(Ordering::SeqCst) >= 8);
                for x in 0..8 {
                    assert_eq!(slow_square(&cache, &runs, x).await, x * x);
                }
                assert_eq!(cache.keys("*").await.unwrap().len(), 8);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn disabled_manager_runs_uncached() {
                let fx = fixture();
                let cache = fx.manager_with(&crate::support::unique_prefix("off"), |mut c| {
                    c.enabled = false;
                    c
                });
                let db = Db::default();
                get_user(&cache, &db, 1).await.unwrap();
                get_user(&cache, &db, 1).await.unwrap();
                assert_eq!(db.queries(), 2);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn undecodable_value_is_a_miss_and_overwritten() {
                let fx = fixture();
                let cache = fx.fresh();
                let db = Db::default();
                cache.set_raw("user:6", &b"not json"[..], Ttl::Default).await.unwrap();
                assert_eq!(get_user_by_key(&cache, &db, 6).await.unwrap().id, 6);
                assert_eq!(db.queries(), 1);
                assert_eq!(cache.get::<User>("user:6").await.unwrap().unwrap().id, 6);
                get_user_by_key(&cache, &db, 6).await.unwrap();
                assert_eq!(db.queries(), 1);
            }
        }
    )*};
}

macro_scenarios! {
    memory => Fixture::memory(),
    redis => Fixture::redis(),
    near => Fixture::near(),
}

/// A body with a 4 KiB state.
#[cachette::cached(cache = cache, skip(cache), ttl = 60)]
async fn big_body(cache: &cachette::CacheManager, x: u64) -> u64 {
    let buf = [x as u8; 4096];
    tokio::task::yield_now().await;
    u64::from(buf[7])
}

/// Structural guard: the decorated function's future holds its body's state once (it is
/// pinned in place and handed to the runtime by reference), plus the runtime's own state.
/// Passed by value, the body was stored three times (a 4 KiB body made a 13 KiB future).
#[test]
fn a_decorated_function_holds_its_body_once() {
    let cache = cachette::CacheManager::memory();
    let call = big_body(&cache, 1);
    let size = std::mem::size_of_val(&call);
    assert!(size < 4096 + 2048, "{size} bytes");
}
