use cachette::cached;

#[cached(ttl = 300, early_refesh = 1.0)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

fn main() {}
