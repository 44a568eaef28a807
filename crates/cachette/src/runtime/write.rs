//! Write-through: what `#[cache_put]` expands into (the body runs, then its cacheable value is
//! stored, with the call's tags when it has some).

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::call::{Call, CallState};
use super::read::{fail_open, OptionShape, ResultShape, Shape, ValueShape};
use crate::error::Error;

/// Stores a write-through value, with the call's tags when it has some.
async fn store<T: serde::Serialize + ?Sized>(
    manager: &crate::CacheManager,
    key: &str,
    value: &T,
    options: &crate::LoadOptions,
) -> Result<(), Error> {
    if options.tag_names().is_empty() {
        manager.set(key, value, options.ttl).await
    } else {
        Box::pin(manager.set_tagged(key, value, options.ttl, options.tag_names())).await
    }
}

/// Write-through: runs the body, then stores its cacheable value unless `unless` says not to.
pub(crate) async fn write_through<S, F, U, H>(
    call: Call<'_>,
    on_error: H,
    unless: U,
    body: F,
) -> S::Output
where
    S: Shape,
    F: Future<Output = S::Output>,
    U: FnOnce(&S::Value) -> bool,
    H: FnOnce(Error) -> Option<S::Output>,
{
    let output = body.await;
    let failure = match call.state {
        CallState::Bypass => None,
        CallState::KeyFailed(e) => Some(*e),
        CallState::Active { manager, full } => match S::project(&output) {
            Some(value) if !unless(value) => {
                let key = super::call::key_of(manager, &full);
                match store(manager, key, value, call.options).await {
                    Ok(()) => {
                        call.counters.write(1);
                        None
                    }
                    Err(e) => {
                        call.counters.error();
                        Some(e)
                    }
                }
            }
            _ => None,
        },
    };
    match failure {
        None => output,
        Some(e) => match on_error(e) {
            Some(replacement) => replacement,
            None => {
                tracing::warn!(
                    "cachette: storing the function's value failed; returning it uncached"
                );
                output
            }
        },
    }
}

/// `#[cache_put]` on a function returning `Result<T, E>`: runs the body and stores an `Ok`
/// value under the call's key; a cache failure is logged and ignored.
pub fn put_result<'m, T, E, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Result<T, E>> + use<'m, T, E, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Result<T, E>>,
    U: FnOnce(&T) -> bool,
{
    write_through::<ResultShape<T, E>, _, _, _>(call, fail_open, unless, body)
}

/// [`put_result`] with `fallback_on_error = false`: a failed write is returned as
/// `Err(E::from(error))` (the body has run).
pub fn put_result_strict<'m, T, E, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Result<T, E>> + use<'m, T, E, Fut, U>
where
    T: Serialize + DeserializeOwned,
    E: From<Error>,
    Fut: Future<Output = Result<T, E>>,
    U: FnOnce(&T) -> bool,
{
    write_through::<ResultShape<T, E>, _, _, _>(call, |e| Some(Err(E::from(e))), unless, body)
}

/// `#[cache_put]` on a function returning `Option<T>`: stores `Some` values.
pub fn put_option<'m, T, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Option<T>> + use<'m, T, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Option<T>>,
    U: FnOnce(&T) -> bool,
{
    write_through::<OptionShape<T>, _, _, _>(call, fail_open, unless, body)
}

/// `#[cache_put]` on a function returning any other `T`: stores every value.
pub fn put_value<'m, T, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = T> + use<'m, T, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = T>,
    U: FnOnce(&T) -> bool,
{
    write_through::<ValueShape<T>, _, _, _>(call, fail_open, unless, body)
}
