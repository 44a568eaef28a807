use cachette::cached;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct User {
    is_admin: bool,
}

// Takes the value instead of a reference.
fn skip_cache_for_admin(user: User) -> bool {
    user.is_admin
}

#[cached(ttl = 300, unless = skip_cache_for_admin)]
async fn get_user(user_id: u64) -> Result<User, std::io::Error> {
    Ok(User { is_admin: user_id == 0 })
}

// Returns something other than bool.
#[cached(ttl = 300, unless = |user: &User| if user.is_admin { "yes" } else { "no" })]
async fn get_other(user_id: u64) -> Result<User, std::io::Error> {
    Ok(User { is_admin: user_id == 0 })
}

fn main() {}
