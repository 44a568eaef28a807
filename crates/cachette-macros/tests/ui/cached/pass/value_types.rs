//! How a hit gets its value is chosen from the bounds of the cached value type (a clone of
//! the near cache's decoded copy when it is `Clone + Send + Sync + 'static`, else decoded):
//! every kind of value type compiles, including generic, non-`Clone`, `!Sync` and `Option`s
//! cached whole.

use std::cell::Cell;

use cachette::cached;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Cloneable(u64);

#[derive(Serialize, Deserialize)]
struct Opaque(u64);

#[cached]
async fn cloned(id: u64) -> Cloneable {
    Cloneable(id)
}

#[cached]
async fn opaque(id: u64) -> Opaque {
    Opaque(id)
}

#[cached]
async fn opaque_option(id: u64) -> Option<Opaque> {
    Some(Opaque(id))
}

#[cached(cache_none = true)]
async fn opaque_cache_none(id: u64) -> Option<Opaque> {
    Some(Opaque(id))
}

#[cached]
async fn opaque_result(id: u64) -> Result<Opaque, std::io::Error> {
    Ok(Opaque(id))
}

#[cached(fallback_on_error = false)]
async fn opaque_strict(id: u64) -> Result<Opaque, cachette::Error> {
    Ok(Opaque(id))
}

#[cached]
async fn generic<T: Serialize + DeserializeOwned + Default>(id: u64) -> T {
    let _ = id;
    T::default()
}

#[cached]
async fn generic_clone<T>(id: u64) -> Option<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + Default + 'static,
{
    let _ = id;
    Some(T::default())
}

// `Cell` is `Clone` but not `Sync`: its hits decode.
#[cached]
async fn not_sync(id: u64) -> Cell<u64> {
    Cell::new(id)
}

fn main() {
    fn assert_send<T: Send>(_: T) {}
    assert_send(cloned(1));
    assert_send(opaque(1));
    assert_send(opaque_option(1));
    assert_send(opaque_cache_none(1));
    assert_send(opaque_result(1));
    assert_send(opaque_strict(1));
    assert_send(generic::<String>(1));
    assert_send(generic_clone::<String>(1));
    let _ = not_sync(1);
}
