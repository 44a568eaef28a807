use cachette::cached;

#[cached(ttl = 300, early_refresh = -1.0)]
async fn negative(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = 300, early_refresh = 1e400)]
async fn infinite(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = 300, early_refresh = f64::NAN)]
async fn not_a_literal(user_id: u64) -> u64 {
    user_id
}

fn main() {}
