use cachette::cached;

// `soft_timeout` without a stale copy to serve.
#[cached(ttl = 300, soft_timeout = 1)]
async fn soft(user_id: u64) -> u64 {
    user_id
}

// Lease settings without the lease.
#[cached(ttl = 300, lock_ttl = 30, lock = false, lock_wait = 5)]
async fn lease(user_id: u64) -> u64 {
    user_id
}

// A soft timeout that the hard one always beats.
#[cached(ttl = 300, stale_ttl = 60, soft_timeout = 5, hard_timeout = 2)]
async fn timeouts(user_id: u64) -> Result<u64, cachette::Error> {
    Ok(user_id)
}

// Zero and text durations.
#[cached(ttl = 300, stale_ttl = 0, hard_timeout = "2s")]
async fn values(user_id: u64) -> Result<u64, cachette::Error> {
    Ok(user_id)
}

fn main() {}
