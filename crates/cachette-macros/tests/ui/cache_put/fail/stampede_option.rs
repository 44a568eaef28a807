use cachette::cache_put;

#[cache_put(key = "user:{user_id}", lock = true)]
async fn refresh(user_id: u64) -> u64 {
    user_id
}

fn main() {}
