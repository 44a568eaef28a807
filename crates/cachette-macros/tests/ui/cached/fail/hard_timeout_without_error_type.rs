use cachette::cached;

// No error to return the timeout through.
#[cached(ttl = 300, hard_timeout = 2)]
async fn plain(user_id: u64) -> Option<u64> {
    Some(user_id)
}

fn main() {}
