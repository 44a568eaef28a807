use cachette::cached;

#[cached(pattern = "user:*")]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
