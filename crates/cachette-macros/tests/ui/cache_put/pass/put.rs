use cachette::{cache_put, CacheManager};

#[cache_put(cache = cache, skip(cache), key = "price:{item}", ttl = 60)]
async fn set_price(cache: &CacheManager, item: u32, cents: u64) -> Result<u64, std::io::Error> {
    let _ = item;
    Ok(cents)
}

#[cache_put(name = "get_user", unless = |v: &u64| *v == 0)]
async fn refresh_user(user_id: u64) -> u64 {
    user_id
}

#[cache_put(cache_none = true)]
async fn maybe(user_id: u64) -> Option<u64> {
    Some(user_id)
}

fn main() {
    let cache = CacheManager::memory();
    let _ = set_price(&cache, 1, 2);
    let _ = refresh_user(1);
    let _ = maybe(1);
}
