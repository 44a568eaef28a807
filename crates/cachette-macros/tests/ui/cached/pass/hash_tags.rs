//! Hash tags in key templates: literal braces around a placeholder, text, or both.
use cachette::{cached, CacheManager};

#[cached(key = "user:{{{user_id}}}:posts")]
async fn posts(user_id: u64) -> u64 {
    user_id
}

#[cached(key = "{{tenant-a}}:config:{name}")]
async fn config(name: String) -> String {
    name
}

#[cached(key = "{{user:{user_id}}}:profile")]
async fn profile(user_id: u64) -> u64 {
    user_id
}

struct Service {
    cache: CacheManager,
    id: u64,
}

impl Service {
    #[cached(cache = self.cache, key = "svc:{{{self.id}}}:{n}")]
    async fn method(&self, n: u32) -> u32 {
        n
    }
}

fn main() {
    let _ = (posts, config, profile, Service::method);
}
