//! One cache for Rust and Python: a `#[cached]` function whose entries the Python package
//! (crates/cachette-py) reads and writes under the same key, because a Python `@cached`
//! function defined in module `python_interop.services.user` with the same name and
//! JSON-equal arguments has the same default key (see `cachette::key`).
//!
//! ```text
//! cargo run --example python_interop                 # self-check (memory, or REDIS_URL)
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example python_interop -- get 42
//! ```
//!
//! `get ID` prints the key and the JSON of `get_user(ID)`: the cached entry if there is one
//! (perhaps written by Python), else the value this program loads and stores (`"origin": "rust"`).

use cachette::key::DefaultKey;

mod services {
    pub(crate) mod user {
        use cachette::cached;
        use serde::{Deserialize, Serialize};

        /// A user as both languages store it (a JSON object).
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        pub(crate) struct User {
            pub(crate) id: u64,
            pub(crate) name: String,
            pub(crate) origin: String,
        }

        /// The database query, cached for 5 minutes under
        /// `cache:python_interop.services.user:get_user:{hash of user_id}`.
        #[cached(ttl = 300)]
        pub(crate) async fn get_user(user_id: u64) -> Result<User, std::io::Error> {
            Ok(User {
                id: user_id,
                name: format!("user {user_id}"),
                origin: "rust".into(),
            })
        }
    }
}

fn key_of(user_id: u64) -> Result<String, cachette::Error> {
    DefaultKey::function(concat!(module_path!(), "::services::user"), "get_user")
        .arg(&user_id)
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = cachette::default_manager().ok_or("invalid cache configuration")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, id] = args.as_slice() {
        if cmd == "get" {
            let id: u64 = id.parse()?;
            let user = services::user::get_user(id).await?;
            println!("key {}{}", cache.prefix(), key_of(id)?);
            println!("{}", serde_json::to_string(&user)?);
            return Ok(());
        }
    }
    if !args.is_empty() {
        return Err("usage: python_interop [get USER_ID]".into());
    }
    // Self-check: the macro stores under the documented key, which Python computes alike.
    let key = key_of(1)?;
    cache.delete(&key).await?;
    let first = services::user::get_user(1).await?;
    assert!(cache.exists(&key).await?, "no entry under {key}");
    assert_eq!(services::user::get_user(1).await?, first);
    println!("get_user(1) is cached under {}{key}", cache.prefix());
    cache.delete(&key).await?;
    Ok(())
}
