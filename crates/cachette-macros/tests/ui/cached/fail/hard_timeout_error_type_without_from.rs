use std::time::Duration;

use cachette::cached;

#[derive(Debug)]
struct MyError;

// An error type that cannot hold the timeout (a `cachette::Error`).
#[cached(ttl = 300, hard_timeout = Duration::from_millis(200))]
async fn no_from(user_id: u64) -> Result<u64, MyError> {
    Ok(user_id)
}

fn main() {}
