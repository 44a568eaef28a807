use cachette::cached;

#[cached(fallback_on_error = false)]
async fn count() -> u64 {
    1
}

#[cached(cache_none = true)]
async fn not_an_option() -> u64 {
    1
}

fn main() {}
