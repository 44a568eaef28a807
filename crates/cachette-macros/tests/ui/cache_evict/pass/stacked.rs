use std::collections::HashMap;

use cachette::{cache_evict, CacheManager};

#[cache_evict(pattern = "user:*")]
async fn update_user(user_id: u64, data: HashMap<String, String>) -> Result<(), std::io::Error> {
    let _ = (user_id, data);
    Ok(())
}

#[cache_evict(cache = cache, key = "user:{user_id}", before = true)]
#[cache_evict(cache = cache, keys = ["user:list", "user:stats"], always = true)]
#[cache_evict(cache = cache, pattern = "user:{user_id}:*", fallback_on_error = false)]
async fn delete_user(cache: &CacheManager, user_id: u64) -> Result<(), cachette::Error> {
    let _ = user_id;
    Ok(())
}

struct Service {
    cache: CacheManager,
}

impl Service {
    #[cache_evict(cache = self.cache, key = "user:{id}")]
    async fn touch(&self, id: u64) {
        let _ = id;
    }
}

fn main() {
    let cache = CacheManager::memory();
    let _ = update_user(1, HashMap::new());
    let _ = delete_user(&cache, 1);
    let service = Service { cache };
    let _ = service.touch(1);
}
