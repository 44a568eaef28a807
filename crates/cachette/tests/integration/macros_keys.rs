//! Golden keys: the exact keys the macros generate, hard-coded. A change here changes the key
//! of every cached value in production (and silently empties caches): it needs a new key
//! format version (`cachette::key::KEY_FORMAT_VERSION`) and a release note.

use std::collections::{BTreeMap, HashMap};

use cachette::{cache_evict, cached, CacheManager, Ttl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Filter {
    page: u32,
    tags: Vec<String>,
    min: Option<f64>,
}

#[cached(cache = cache, skip(cache))]
async fn get_user(cache: &CacheManager, user_id: u64) -> u64 {
    user_id
}

#[cached(cache = cache, skip(cache))]
async fn get_flag(cache: &CacheManager, user_id: u64, include_extra: bool) -> bool {
    let _ = user_id;
    include_extra
}

#[cached(cache = cache, skip(cache))]
async fn by_email(cache: &CacheManager, email: &str) -> String {
    email.to_owned()
}

#[cached(cache = cache, skip(cache))]
async fn search(cache: &CacheManager, filter: Filter) -> u32 {
    filter.page
}

#[cached(cache = cache, skip(cache))]
async fn count_tags(cache: &CacheManager, tags: HashMap<String, u32>) -> usize {
    tags.len()
}

#[cached(cache = cache, skip(cache))]
async fn nothing(cache: &CacheManager) -> u8 {
    0
}

struct UserService {
    cache: CacheManager,
}

impl UserService {
    #[cached(cache = self.cache)]
    async fn count(&self) -> u64 {
        3
    }

    #[cached(cache = self.cache)]
    async fn get(&self, user_id: u64) -> u64 {
        user_id
    }
}

#[cached(cache = cache, skip(cache), key = "user:{name}:extra:{extra}")]
async fn templated(cache: &CacheManager, name: &str, extra: bool) -> bool {
    let _ = name;
    extra
}

#[derive(Serialize)]
struct Account {
    id: u64,
    region: (String, u8),
}

#[cached(cache = cache, skip(cache), key = "account:{account.id}:{account.region.0}:{{v{version}}}")]
async fn account_key(cache: &CacheManager, account: &Account, version: u8) -> u8 {
    let _ = account;
    version
}

#[cached(cache = cache, skip(cache), key = "user:{{{user_id}}}:posts")]
async fn tagged_posts(cache: &CacheManager, user_id: &str) -> usize {
    user_id.len()
}

#[cached(cache = cache, skip(cache), key = "user:{{{user_id}}}:profile")]
async fn tagged_profile(cache: &CacheManager, user_id: &str) -> usize {
    user_id.len()
}

#[cache_evict(cache = cache, pattern = "user:{name}:*")]
async fn evict_user(cache: &CacheManager, name: &str) -> Result<(), std::io::Error> {
    let _ = name;
    Ok(())
}

async fn keys(cache: &CacheManager) -> Vec<String> {
    let keys = cache.keys("*").await.unwrap();
    cache.clear().await.unwrap();
    keys
}

#[tokio::test]
async fn golden_default_keys() {
    let cache = CacheManager::memory();

    get_user(&cache, 42).await;
    assert_eq!(
        keys(&cache).await,
        ["integration.macros_keys:get_user:a81db0d4a908caac9ed4ed07560b0030"]
    );
    // The full key, prefix included, as `redis-cli KEYS` would show it.
    assert_eq!(
        cache.full_key("integration.macros_keys:get_user:a81db0d4a908caac9ed4ed07560b0030"),
        "cache:integration.macros_keys:get_user:a81db0d4a908caac9ed4ed07560b0030"
    );

    get_flag(&cache, 1, false).await;
    assert_eq!(
        keys(&cache).await,
        ["integration.macros_keys:get_flag:19c8af124f1a32f34ef566eb56a9fbc5"]
    );

    by_email(&cache, "ada@example.com").await;
    assert_eq!(
        keys(&cache).await,
        ["integration.macros_keys:by_email:eb0e1e0632312a9f76b238a5fe4cd0f8"]
    );

    search(
        &cache,
        Filter {
            page: 2,
            tags: vec!["a".into(), "b".into()],
            min: Some(1.5),
        },
    )
    .await;
    assert_eq!(
        keys(&cache).await,
        ["integration.macros_keys:search:e7484823d4423f1d7fc6305feace0707"]
    );

    nothing(&cache).await;
    assert_eq!(
        keys(&cache).await,
        ["integration.macros_keys:nothing:99aa06d3014798d86001c324468d497f"]
    );

    let service = UserService {
        cache: cache.clone(),
    };
    service.count().await;
    service.get(42).await;
    assert_eq!(
        keys(&cache).await,
        [
            "integration.macros_keys:UserService.count:99aa06d3014798d86001c324468d497f",
            "integration.macros_keys:UserService.get:a81db0d4a908caac9ed4ed07560b0030",
        ]
    );
}

#[tokio::test]
async fn map_arguments_hash_the_same_in_any_order() {
    let cache = CacheManager::memory();
    let forward: HashMap<String, u32> = (0..64).map(|i| (format!("tag{i}"), i)).collect();
    let backward: HashMap<String, u32> = (0..64).rev().map(|i| (format!("tag{i}"), i)).collect();
    count_tags(&cache, forward).await;
    count_tags(&cache, backward).await;
    let keys = keys(&cache).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    // A BTreeMap with the same entries is the same argument value.
    let sorted: BTreeMap<String, u32> = (0..64).map(|i| (format!("tag{i}"), i)).collect();
    let mut h = cachette::key::ArgsHasher::new();
    h.arg(&sorted);
    assert!(keys[0].ends_with(&h.finish_hex().unwrap()));
    let small: HashMap<String, u32> = HashMap::from([("a".into(), 1), ("b".into(), 2)]);
    count_tags(&cache, small).await;
    assert_eq!(
        self::keys(&cache).await,
        ["integration.macros_keys:count_tags:25e5fdfdf6c0c6e0125eb7408e357bfe"]
    );
}

#[tokio::test]
async fn template_values_are_escaped() {
    let cache = CacheManager::memory();
    templated(&cache, "ada", true).await;
    templated(&cache, "a:b%c", false).await;
    assert_eq!(
        keys(&cache).await,
        ["user:a%3Ab%25c:extra:false", "user:ada:extra:true"]
    );

    let account = Account {
        id: 7,
        region: ("eu:west".into(), 1),
    };
    account_key(&cache, &account, 3).await;
    assert_eq!(keys(&cache).await, ["account:7:eu%3Awest:{v3}"]);
}

#[tokio::test]
async fn evict_patterns_escape_glob_characters() {
    let cache = CacheManager::memory();
    for key in [
        "user:*:a",
        "user:x:a",
        "user:?:a",
        "user:[x]:a",
        r"user:\:a",
    ] {
        cache.set(key, &1, Ttl::Default).await.unwrap();
    }
    evict_user(&cache, "*").await.unwrap();
    evict_user(&cache, "?").await.unwrap();
    evict_user(&cache, "[x]").await.unwrap();
    evict_user(&cache, r"\").await.unwrap();
    assert_eq!(keys(&cache).await, ["user:x:a"]);
}

/// `{{{user_id}}}` is a hash tag around the value: every key of one user shares a cluster
/// slot, and a value's own braces are escaped, so they cannot move or break the tag.
#[tokio::test]
async fn hash_tags_in_templates_put_related_keys_in_one_slot() {
    use cachette::key::slot;
    let cache = CacheManager::memory();
    for (user, tag) in [("42", "42"), ("a}b{c", "a%7Db%7Bc")] {
        tagged_posts(&cache, user).await;
        tagged_profile(&cache, user).await;
        let keys = keys(&cache).await;
        assert_eq!(
            keys,
            [
                format!("user:{{{tag}}}:posts"),
                format!("user:{{{tag}}}:profile")
            ]
        );
        for key in &keys {
            let full = cache.full_key(key);
            assert_eq!(slot(full.as_bytes()), slot(tag.as_bytes()), "{full}");
        }
    }
}
