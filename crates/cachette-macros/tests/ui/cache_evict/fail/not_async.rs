use cachette::cache_evict;

#[cache_evict(key = "user:{user_id}")]
fn delete_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
