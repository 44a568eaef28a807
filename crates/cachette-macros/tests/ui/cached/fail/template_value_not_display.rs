use cachette::cached;

struct Id(u64);

#[cached(key = "user:{id}")]
async fn get_user(id: Id) -> u64 {
    id.0
}

fn main() {}
