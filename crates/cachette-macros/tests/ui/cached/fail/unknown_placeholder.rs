use cachette::cached;

#[cached(key = "user:{usr_id}:extra:{include_extra}")]
async fn get_user(user_id: u64, include_extra: bool) -> u64 {
    let _ = include_extra;
    user_id
}

fn main() {}
