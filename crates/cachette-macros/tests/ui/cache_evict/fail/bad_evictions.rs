use cachette::cache_evict;

#[cache_evict(pattern = "user:{usr_id}:*")]
async fn unknown_placeholder(user_id: u64) -> u64 {
    user_id
}

#[cache_evict(before = true)]
async fn nothing_to_evict(user_id: u64) -> u64 {
    user_id
}

#[cache_evict(key = "user:{user_id}", before = true, always = true)]
async fn always_before(user_id: u64) -> u64 {
    user_id
}

#[cache_evict(key = "user:{user_id}", fallback_on_error = false)]
async fn strict_without_result(user_id: u64) -> u64 {
    user_id
}

#[cache_evict(key = "user:{user_id}", ttl = 5)]
async fn ttl_is_not_an_eviction_option(user_id: u64) -> u64 {
    user_id
}

fn main() {}
