//! How the waiters of a failed call get its `Err` is chosen from the bounds of `E` (clone,
//! `From<cachette::Error>`, or one body at a time): every kind of error type compiles,
//! including generic ones, `io::Result`, borrowed and `!Send` errors.

use std::rc::Rc;

use cachette::cached;

#[derive(Debug, Clone)]
struct Cloneable;

#[derive(Debug)]
struct Opaque;

#[cached]
async fn cloned(id: u64) -> Result<u64, Cloneable> {
    Ok(id)
}

#[cached]
async fn converted(id: u64) -> Result<u64, cachette::Error> {
    Ok(id)
}

#[cached]
async fn opaque(id: u64) -> Result<u64, Opaque> {
    Ok(id)
}

#[cached]
async fn io(id: u64) -> std::io::Result<u64> {
    Ok(id)
}

#[cached]
async fn generic<E: std::fmt::Debug>(id: u64) -> Result<u64, E> {
    Ok(id)
}

#[cached]
async fn generic_clone<E: Clone + Send + Sync + 'static>(id: u64) -> Result<u64, E> {
    Ok(id)
}

#[cached(key = "borrowed:{id}")]
async fn borrowed<'a>(id: u64, _label: &'a str) -> Result<u64, &'a str> {
    Ok(id)
}

// `Rc` is `Clone` but not `Send`: the waiters run the body one at a time.
#[cached]
async fn not_send(id: u64) -> Result<u64, Rc<String>> {
    Ok(id)
}

fn main() {
    fn assert_send<T: Send>(_: T) {}
    assert_send(cloned(1));
    assert_send(converted(1));
    assert_send(opaque(1));
    assert_send(io(1));
    assert_send(generic::<String>(1));
    assert_send(generic_clone::<String>(1));
    assert_send(borrowed(1, "x"));
    let _ = not_send(1);
}
