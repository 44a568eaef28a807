//! Read-through (`#[cached]`) and write-through (`#[cache_put]`) around a function body.
//!
//! The body is a future that has already taken the function's arguments. Read-through goes
//! through [`CacheManager::get_or_load_traced`] (so it gets whatever the manager does on a
//! miss, such as stampede protection), with one twist that makes every path total: the body
//! is pinned in this frame and only *driven* by the loader, and the loader hands the manager a
//! view of the body's output rather than the output itself. Whatever the manager returns —
//! a hit, a stored value, a loader error, or a cache error in any phase — the caller gets
//! either the cached value or the body's own output, running or finishing the body itself when
//! needed. Nothing is cloned and nothing panics.
//!
//! When concurrent calls of one key are coalesced by the manager, the callers that waited get
//! the value the first one stored; if that one's body returned an error (or a `None`), each
//! waiting caller runs its own body, so every caller gets its own function's result.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};
use crate::load::{LoadError, LoadOptions};

use super::call::{Call, CallState};

/// How a function's return type maps to the cached value.
pub(crate) trait Shape {
    /// The function's return type.
    type Output;
    /// The cached part of it.
    type Value: Serialize + DeserializeOwned;
    /// The value to cache, if this output is cacheable.
    fn project(output: &Self::Output) -> Option<&Self::Value>;
    /// The output for a cached value.
    fn inject(value: Self::Value) -> Self::Output;
}

/// `Result<T, E>`: only `Ok` is cached.
pub(crate) struct ResultShape<T, E>(PhantomData<fn() -> (T, E)>);

impl<T: Serialize + DeserializeOwned, E> Shape for ResultShape<T, E> {
    type Output = Result<T, E>;
    type Value = T;
    fn project(output: &Result<T, E>) -> Option<&T> {
        output.as_ref().ok()
    }
    fn inject(value: T) -> Result<T, E> {
        Ok(value)
    }
}

/// `Option<T>`: only `Some` is cached.
pub(crate) struct OptionShape<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned> Shape for OptionShape<T> {
    type Output = Option<T>;
    type Value = T;
    fn project(output: &Option<T>) -> Option<&T> {
        output.as_ref()
    }
    fn inject(value: T) -> Option<T> {
        Some(value)
    }
}

/// Any other `T`: always cached.
pub(crate) struct ValueShape<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned> Shape for ValueShape<T> {
    type Output = T;
    type Value = T;
    fn project(output: &T) -> Option<&T> {
        Some(output)
    }
    fn inject(value: T) -> T {
        value
    }
}

/// The body: pending (pinned in the caller's frame), or finished with its output.
enum Slot<'b, F: Future> {
    Pending(Pin<&'b mut F>),
    Finished(F::Output),
}

impl<F: Future> Slot<'_, F> {
    /// The body's output, running it to completion if it has not finished.
    async fn finish(self) -> F::Output {
        match self {
            Slot::Pending(body) => body.await,
            Slot::Finished(output) => output,
        }
    }
}

/// The body shared between the caller and the loader handed to the manager.
struct BodyCell<'b, S, F: Future> {
    slot: Mutex<Slot<'b, F>>,
    shape: PhantomData<fn() -> S>,
}

/// Gives access to the cacheable value of a finished body.
trait Peek<V> {
    fn peek<R>(&self, f: impl FnOnce(Option<&V>) -> R) -> R;
}

impl<S: Shape, F: Future<Output = S::Output>> Peek<S::Value> for BodyCell<'_, S, F> {
    fn peek<R>(&self, f: impl FnOnce(Option<&S::Value>) -> R) -> R {
        let slot = self.slot.lock();
        match &*slot {
            Slot::Finished(output) => f(S::project(output)),
            Slot::Pending(_) => f(None),
        }
    }
}

impl<'b, S: Shape, F: Future<Output = S::Output>> BodyCell<'b, S, F> {
    /// Drives the body; once it is finished, answers the manager with a view of the value
    /// (`Ok`) or with [`NotCacheable`] (an `Err`, a `None`).
    fn poll_body<'c>(
        &'c self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Stored<'c, S::Value, Self>, NotCacheable>> {
        let mut slot = self.slot.lock();
        if let Slot::Pending(body) = &mut *slot {
            match body.as_mut().poll(cx) {
                Poll::Ready(output) => *slot = Slot::Finished(output),
                Poll::Pending => return Poll::Pending,
            }
        }
        let cacheable = matches!(&*slot, Slot::Finished(output) if S::project(output).is_some());
        drop(slot);
        Poll::Ready(if cacheable {
            Ok(Stored::Borrowed(self))
        } else {
            Err(NotCacheable)
        })
    }
}

/// What the manager stores and returns: a decoded value (a hit), or a view of the body's
/// output (serialized in place, never moved out of the caller's frame).
enum Stored<'c, V, C> {
    Owned(V),
    Borrowed(&'c C),
}

impl<V: Serialize, C: Peek<V>> Serialize for Stored<'_, V, C> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        match self {
            Stored::Owned(value) => value.serialize(serializer),
            Stored::Borrowed(cell) => cell.peek(|value| match value {
                Some(value) => value.serialize(serializer),
                None => Err(serde::ser::Error::custom(
                    "cachette: the function's value is not available",
                )),
            }),
        }
    }
}

impl<'de, V: Deserialize<'de>, C> Deserialize<'de> for Stored<'_, V, C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        V::deserialize(deserializer).map(Stored::Owned)
    }
}

/// The loader's "error" when the body's output is not to be cached.
#[derive(Debug)]
struct NotCacheable;

enum Next<V> {
    Hit(V),
    Body,
    Failed(Error),
}

/// Read-through: the cached value, or the body's output (stored when cacheable and `unless`
/// says so). `on_error` decides what a cache failure becomes: `Some(output)` is returned as
/// is, `None` runs (or finishes) the body uncached.
pub(crate) async fn read_through<S, F, U, H>(
    call: Call<'_>,
    fail_open: bool,
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
    let (manager, key) = match call.state {
        CallState::Bypass => return body.await,
        CallState::KeyFailed(e) => {
            return match on_error(e) {
                Some(output) => output,
                None => body.await,
            }
        }
        CallState::Active { manager, key } => (manager, key),
    };
    let options = LoadOptions::ttl(call.ttl).fallback_on_error(fail_open);

    let body = pin!(body);
    let cell: BodyCell<'_, S, F> = BodyCell {
        slot: Mutex::new(Slot::Pending(body)),
        shape: PhantomData,
    };
    let store_if = |stored: &Stored<'_, S::Value, BodyCell<'_, S, F>>| match stored {
        Stored::Owned(value) => !unless(value),
        Stored::Borrowed(cell) => cell.peek(|value| value.is_some_and(|v| !unless(v))),
    };
    let result = manager
        .get_or_load_traced(&key, &options, Some(call.counters), store_if, || {
            std::future::poll_fn(|cx| cell.poll_body(cx))
        })
        .await;
    let next = match result {
        Ok((Stored::Owned(value), _)) => Next::Hit(value),
        Ok((Stored::Borrowed(_), _)) | Err(LoadError::Loader(NotCacheable)) => Next::Body,
        Err(LoadError::Cache(e)) => Next::Failed(e),
    };
    let slot = cell.slot.into_inner();
    match next {
        Next::Hit(value) => S::inject(value),
        Next::Body => slot.finish().await,
        // A concurrent caller's loader (the one this call waited for) failed: that is not a
        // cache failure, so this caller runs its own body and gets its own result.
        Next::Failed(e) if e.kind() == ErrorKind::Loader => slot.finish().await,
        Next::Failed(e) => match on_error(e) {
            Some(output) => output,
            None => {
                tracing::warn!(key = %key, "cachette: cache failure; running uncached");
                slot.finish().await
            }
        },
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
        CallState::KeyFailed(e) => Some(e),
        CallState::Active { manager, key } => match S::project(&output) {
            Some(value) if !unless(value) => match manager.set(&key, value, call.ttl).await {
                Ok(()) => {
                    call.counters.write(1);
                    None
                }
                Err(e) => {
                    call.counters.error();
                    Some(e)
                }
            },
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

fn fail_open<O>(_: Error) -> Option<O> {
    None
}

/// `#[cached]` on a function returning `Result<T, E>`: only `Ok` values are cached; a cache
/// failure runs the body uncached (`fallback_on_error = true`, the default).
///
/// `unless(&value)` returning `true` keeps a value out of the cache.
///
/// # Examples
///
/// What `#[cached(cache = CACHE, ttl = 60)] async fn get_user(id: u64) -> Result<User, E>`
/// does, written by hand:
///
/// ```
/// use std::sync::LazyLock;
/// use cachette::runtime::{cached_result, Call, FnSite, SiteKind};
/// use cachette::{key::DefaultKey, CacheManager, Ttl};
///
/// static CACHE: LazyLock<CacheManager> = LazyLock::new(CacheManager::memory);
///
/// async fn get_user(id: u64) -> Result<String, std::io::Error> {
///     static SITE: FnSite = FnSite::new(module_path!(), "get_user", SiteKind::Cached);
///     let call = Call::new(&SITE, None, Some(&*CACHE), Ttl::secs(60), || {
///         DefaultKey::function(module_path!(), "get_user").arg(&id).build()
///     });
///     cached_result(call, |_: &String| false, async move { Ok(format!("user {id}")) }).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(get_user(1).await?, "user 1");
/// assert_eq!(CACHE.keys("*").await?.len(), 1);
/// # Ok(())
/// # }
/// ```
pub fn cached_result<'m, T, E, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Result<T, E>> + use<'m, T, E, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Result<T, E>>,
    U: FnOnce(&T) -> bool,
{
    read_through::<ResultShape<T, E>, _, _, _>(call, true, fail_open, unless, body)
}

/// [`cached_result`] with `fallback_on_error = false`: a cache failure (down, timeout, key
/// that cannot be built) is returned as `Err(E::from(error))` instead of running uncached.
/// A stored value that does not decode is still a miss (and is overwritten).
pub fn cached_result_strict<'m, T, E, Fut, U>(
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
    read_through::<ResultShape<T, E>, _, _, _>(call, false, |e| Some(Err(E::from(e))), unless, body)
}

/// `#[cached]` on a function returning `Option<T>`: only `Some` values are cached (with
/// `cache_none = true` the macro uses [`cached_value`] and caches `None` too).
pub fn cached_option<'m, T, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Option<T>> + use<'m, T, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Option<T>>,
    U: FnOnce(&T) -> bool,
{
    read_through::<OptionShape<T>, _, _, _>(call, true, fail_open, unless, body)
}

/// `#[cached]` on a function returning any other `T`: every value is cached.
pub fn cached_value<'m, T, Fut, U>(
    call: Call<'m>,
    unless: U,
    body: Fut,
) -> impl Future<Output = T> + use<'m, T, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = T>,
    U: FnOnce(&T) -> bool,
{
    read_through::<ValueShape<T>, _, _, _>(call, true, fail_open, unless, body)
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
