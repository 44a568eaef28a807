use cachette::cache_put;

#[cache_put(pattern = "user:*")]
async fn refresh(user_id: u64) -> u64 {
    user_id
}

#[cache_put(key = "user:{user_id}")]
fn not_async(user_id: u64) -> u64 {
    user_id
}

fn main() {}
