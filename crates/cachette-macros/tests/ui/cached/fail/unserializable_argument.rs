use cachette::cached;

struct DbConnection;

#[cached(ttl = 300)]
async fn get_user(db: &DbConnection, user_id: u64) -> u64 {
    let _ = db;
    user_id
}

fn main() {}
