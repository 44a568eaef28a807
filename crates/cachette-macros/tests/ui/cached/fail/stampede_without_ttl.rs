use cachette::cached;

#[cached(ttl = None, early_refresh = 1.0)]
async fn early(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = None, stale_ttl = 60, jitter = 10)]
async fn stale(user_id: u64) -> u64 {
    user_id
}

fn main() {}
