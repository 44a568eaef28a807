use cachette::cached;

#[cached(cache = "redis://localhost")]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
