use cachette::cached;

#[derive(Debug)]
struct MyError;

#[cached(fallback_on_error = false)]
async fn get_user(user_id: u64) -> Result<u64, MyError> {
    Ok(user_id)
}

fn main() {}
