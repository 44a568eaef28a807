use cachette::cached;

fn build_key(name: &str, user_id: &u64) -> String {
    format!("{name}:{user_id}")
}

#[cached(key_builder = build_key)]
async fn get_user(user_id: u64, include_extra: bool) -> u64 {
    let _ = include_extra;
    user_id
}

fn main() {}
