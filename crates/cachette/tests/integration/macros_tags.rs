//! `tags = [...]` on `#[cached]`, `#[cache_put]` and `#[cache_evict]`: templates rendered per
//! call (escaped like keys), stored with the value, invalidated in O(1). Instantiated on memory
//! and Redis, as in `macros` (the conformance suite runs tags on every backend).

macro_rules! tag_scenarios {
    ($($backend:ident => $fixture:expr),* $(,)?) => {$(
        mod $backend {
            use std::time::Duration;

            use cachette::{cache_evict, cache_put, cached, CacheManager, LoadOptions, Ttl};

            use crate::macros::{Db, DbError, User};
            use crate::support::Fixture;

            #[cached(
                cache = cache,
                skip(cache, db),
                key = "user:{user_id}",
                tags = ["user:{user_id}", "users"],
                ttl = 300
            )]
            async fn get_user(cache: &CacheManager, db: &Db, user_id: u64) -> Result<User, DbError> {
                db.fetch_user(user_id).await
            }

            #[cache_evict(cache = cache, tags = ["user:{user_id}"])]
            async fn rename_user(cache: &CacheManager, user_id: u64) -> Result<(), DbError> {
                let _ = user_id;
                Ok(())
            }

            #[cache_evict(cache = cache, tags = ["users"], before = true)]
            async fn reset_users(cache: &CacheManager) {}

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cache_evict_tags_invalidates_what_cached_tagged() {
                let fx = $fixture;
                let cache = fx.fresh();
                let db = Db::default();
                for id in [1, 2, 1, 2] {
                    assert_eq!(get_user(&cache, &db, id).await.unwrap().id, id);
                }
                assert_eq!(db.queries(), 2, "the second round is served from the cache");
                rename_user(&cache, 1).await.unwrap();
                get_user(&cache, &db, 1).await.unwrap();
                get_user(&cache, &db, 2).await.unwrap();
                assert_eq!(db.queries(), 3, "only user 1 was invalidated");
                reset_users(&cache).await;
                get_user(&cache, &db, 1).await.unwrap();
                get_user(&cache, &db, 2).await.unwrap();
                assert_eq!(db.queries(), 5, "`users` covers both");
                // The same entry, read through the manager with the same tags: a hit.
                let opts = LoadOptions::ttl(Duration::from_secs(300)).tags(["users", "user:1"]);
                let user = cache
                    .get_or_load("user:1", &opts, || async { Err::<User, _>(DbError::NotFound(1)) })
                    .await
                    .unwrap();
                assert_eq!(user.id, 1);
                cache.invalidate_tag("user:2").await.unwrap();
                assert_eq!(cache.get::<User>("user:2").await.unwrap(), None);
            }

            #[cached(cache = cache, skip(cache), key = "doc:{owner.name}", tags = ["owner:{owner.name}"], ttl = Duration::from_secs(60))]
            async fn doc_of(cache: &CacheManager, owner: &User) -> String {
                format!("doc of {}", owner.name)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tag_templates_escape_values_like_keys() {
                let fx = $fixture;
                let cache = fx.fresh();
                let owner = User { id: 7, name: "a:b{c}".into(), is_admin: false };
                assert_eq!(doc_of(&cache, &owner).await, "doc of a:b{c}");
                let tags = cache.keys("#tag:*").await.unwrap();
                assert_eq!(tags, ["#tag:", "#tag:owner:a%3Ab%7Bc%7D"]);
                assert_eq!(cache.get::<String>("doc:a%3Ab%7Bc%7D").await.unwrap().as_deref(), Some("doc of a:b{c}"));
                // The unescaped name is another tag.
                cache.invalidate_tag("owner:a:b{c}").await.unwrap();
                assert!(cache.get::<String>("doc:a%3Ab%7Bc%7D").await.unwrap().is_some());
                cache.invalidate_tag("owner:a%3Ab%7Bc%7D").await.unwrap();
                assert_eq!(cache.get::<String>("doc:a%3Ab%7Bc%7D").await.unwrap(), None);
            }

            #[cache_put(cache = cache, skip(cache), key = "user:{user.id}", tags = ["user:{user.id}"], ttl = 300)]
            async fn save_user(cache: &CacheManager, user: User) -> Option<User> {
                Some(user)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cache_put_stores_with_tags() {
                let fx = $fixture;
                let cache = fx.fresh();
                let user = User { id: 3, name: "Ada".into(), is_admin: false };
                save_user(&cache, user.clone()).await;
                assert_eq!(cache.get::<User>("user:3").await.unwrap(), Some(user));
                cache.invalidate_tag("user:3").await.unwrap();
                assert_eq!(cache.get::<User>("user:3").await.unwrap(), None);
                // An untagged neighbour is untouched by the tag and by `invalidate_all`.
                cache.set("user:4", &1u8, Ttl::Default).await.unwrap();
                cache.invalidate_all().await.unwrap();
                assert_eq!(cache.get::<u8>("user:4").await.unwrap(), Some(1));
            }
        }
    )*};
}

tag_scenarios! {
    memory => Fixture::memory(),
    redis => Fixture::redis(),
    near => Fixture::near(),
}
