use cachette::cached;

#[cached(ttl = "5m")]
async fn as_text(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = 0)]
async fn zero(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = -1)]
async fn negative(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = 1.5)]
async fn float(user_id: u64) -> u64 {
    user_id
}

fn main() {}
