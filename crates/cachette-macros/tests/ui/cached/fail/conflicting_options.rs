use cachette::cached;

fn build(_: &str, id: &u64) -> String {
    id.to_string()
}

#[cached(key = "user:{id}", key_builder = build, ttl = 5, ttl = 6, skip(idd))]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
