use cachette::cached;

#[cached(ttl = std::time::Instant::now())]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
