use cachette::cached;

#[cached(ttl = 300, jitter = 150)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = 300, jitter = 2.5)]
async fn fractional(user_id: u64) -> u64 {
    user_id
}

fn main() {}
