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
//! The one exception is the hard timeout (`LoadOptions::hard_timeout`): a body that runs
//! longer is dropped, and [`cached_result_bounded`] and [`cached_result_strict`] return the
//! timeout as the function's error (or the stale copy, when there is one). The other variants
//! have no error to return, so they finish the body past it; `#[cached]` only accepts
//! `hard_timeout` on functions returning `Result<T, E>` with `E: From<cachette::Error>`.
//!
//! When concurrent calls of one key are coalesced by the manager, only the first one runs the
//! body; the callers that waited get its outcome without running theirs:
//!
//! - a value: decoded from the bytes it stored (or would have stored);
//! - a `None` (`Option<T>` functions): `None`;
//! - an `Err` (`Result<T, E>` functions): a clone of it when `E: Clone + Send + Sync +
//!   'static`; otherwise, when `E: From<cachette::Error>`, `E::from` an
//!   [`ErrorKind::Loader`] error ("the loader failed in a concurrent call for this key");
//!   see [`ErrSharing`]. `#[cached]` picks the first that applies at compile time;
//! - otherwise (an `E` with neither, or a body that panicked), the waiters do not run their
//!   bodies together: one of them runs its body next while the others wait for it, so at most
//!   one body runs at a time per key, as for a value.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};
use crate::load::coalesce::Handoff;
use crate::load::leader::Begin;
use crate::load::read_through::First;
use crate::load::{LoadError, LoadKey};
use crate::stats::Counters;

use super::call::{Call, CallState};
use super::hit::HitPath;
pub use super::share::{ErrProbe, ErrSharing, ResultMode, ShareByClone, ShareByFrom, ShareNone};
use super::share::{NoSharing, NoneSharing, ShareOutput};

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

    /// [`finish`](Self::finish), for a body running outside the manager (uncached): bounded
    /// by `limit` (the options' hard timeout) when `on_timeout` reports the timeout; the body
    /// is dropped at the timeout.
    async fn finish_within<K>(
        self,
        limit: Option<Duration>,
        counters: &Counters,
        on_timeout: K,
    ) -> F::Output
    where
        K: FnOnce(Error) -> Option<F::Output>,
    {
        match (self, limit) {
            (Slot::Pending(mut body), Some(limit)) => {
                match tokio::time::timeout(limit, body.as_mut()).await {
                    Ok(output) => output,
                    Err(_) => {
                        counters.loader_timeout();
                        match on_timeout(Error::timeout("the function body", limit)) {
                            Some(output) => output,
                            None => body.await,
                        }
                    }
                }
            }
            (slot, _) => slot.finish().await,
        }
    }
}

/// The body shared between the caller and the loader handed to the manager.
struct BodyCell<'b, 'h, S: Shape, F: Future> {
    slot: Mutex<Slot<'b, F>>,
    shape: PhantomData<fn() -> S>,
    /// Where a failed outcome goes for the callers waiting on this one.
    handoff: &'h Handoff,
    /// How a failed outcome is shared.
    sharing: &'h (dyn ShareOutput<S::Output> + Sync),
}

/// Gives access to the cacheable value of a finished body.
trait Peek<V> {
    fn peek<R>(&self, f: impl FnOnce(Option<&V>) -> R) -> R;
}

impl<S: Shape, F: Future<Output = S::Output>> Peek<S::Value> for BodyCell<'_, '_, S, F> {
    fn peek<R>(&self, f: impl FnOnce(Option<&S::Value>) -> R) -> R {
        let slot = self.slot.lock();
        match &*slot {
            Slot::Finished(output) => f(S::project(output)),
            Slot::Pending(_) => f(None),
        }
    }
}

impl<S: Shape, F: Future<Output = S::Output>> BodyCell<'_, '_, S, F> {
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
        if !cacheable {
            if let Slot::Finished(output) = &*slot {
                *self.handoff.outgoing.lock() = self.sharing.share(output);
            }
        }
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

enum Next<V, O> {
    Hit(V),
    Body,
    /// The output rebuilt from a concurrent call's failed outcome.
    Shared(O),
    Failed(Error),
}

/// Read-through: the cached value, or the body's output (stored when cacheable and `unless`
/// says so), with the call's options.
///
/// `fail_open` overrides the options' `fallback_on_error`. `on_error` decides what a cache
/// failure becomes: `Some(output)` is returned as is, `None` runs (or finishes) the body
/// uncached. `on_timeout` decides what a hard timeout (the options' `hard_timeout`) becomes:
/// `Some(output)` is returned and the body dropped; `None` (a function that cannot report it)
/// finishes the body uncached and unbounded. `sharing` hands a failed (not cacheable) outcome
/// of the body to the calls that waited for it, and rebuilds theirs from it. `hit` says how a
/// hit gets its value.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_through<S, F, U, H, K>(
    call: Call<'_>,
    hit: HitPath<S::Value>,
    fail_open: bool,
    on_error: H,
    on_timeout: K,
    sharing: &(dyn ShareOutput<S::Output> + Sync),
    unless: U,
    body: F,
) -> S::Output
where
    S: Shape,
    F: Future<Output = S::Output>,
    U: FnOnce(&S::Value) -> bool,
    H: FnOnce(Error) -> Option<S::Output>,
    K: FnOnce(Error) -> Option<S::Output>,
{
    let (manager, key) = match call.state {
        CallState::Bypass => return body.await,
        CallState::KeyFailed(e) => {
            return match on_error(*e) {
                Some(output) => output,
                None => {
                    Slot::Pending(pin!(body))
                        .finish_within(call.options.hard_timeout, call.counters, on_timeout)
                        .await
                }
            }
        }
        CallState::Active { manager, full } => (manager, full),
    };
    // The hit path: one read, outside the read-through machinery below (boxed, so that a hit
    // neither sets it up nor carries its future).
    let first = match manager
        .read_first::<S::Value>(&key, call.options, Some(call.counters), hit.typed)
        .await
    {
        First::Hit(value) => return S::inject(value),
        First::Rest(first) => first,
    };
    let call = Call {
        state: CallState::Bypass,
        ..call
    };
    Box::pin(read_through_rest::<S, F, U, H, K>(
        call, manager, key, first, fail_open, on_error, on_timeout, sharing, unless, body,
    ))
    .await
}

/// [`read_through`] past the first read (`first`: the read it made, or the span to read the
/// key in): a miss, a stale or early-refresh read, a failure. The call's
/// state is taken apart already (`manager`, the full `key`).
#[allow(clippy::too_many_arguments)]
async fn read_through_rest<S, F, U, H, K>(
    call: Call<'_>,
    manager: &crate::CacheManager,
    key: String,
    first: Begin<S::Value>,
    fail_open: bool,
    on_error: H,
    on_timeout: K,
    sharing: &(dyn ShareOutput<S::Output> + Sync),
    unless: U,
    body: F,
) -> S::Output
where
    S: Shape,
    F: Future<Output = S::Output>,
    U: FnOnce(&S::Value) -> bool,
    H: FnOnce(Error) -> Option<S::Output>,
    K: FnOnce(Error) -> Option<S::Output>,
{
    // The runtime function decides how cache failures end (the options the macro generates
    // always agree with it; a hand-built call may not).
    let adjusted;
    let options = if call.options.fallback_on_error == fail_open {
        call.options
    } else {
        adjusted = call.options.clone().fallback_on_error(fail_open);
        &adjusted
    };

    let body = pin!(body);
    let handoff = Handoff::default();
    let cell: BodyCell<'_, '_, S, F> = BodyCell {
        slot: Mutex::new(Slot::Pending(body)),
        shape: PhantomData,
        handoff: &handoff,
        sharing,
    };
    // Taken by the one attempt that stores a value (`unless` is `FnOnce`).
    let unless = Mutex::new(Some(unless));
    let mut first = Some(first);
    let next = loop {
        let store_if = |stored: &Stored<'_, S::Value, BodyCell<'_, '_, S, F>>| {
            let Some(unless) = unless.lock().take() else {
                return false;
            };
            match stored {
                Stored::Owned(value) => !unless(value),
                Stored::Borrowed(cell) => cell.peek(|value| value.is_some_and(|v| !unless(v))),
            }
        };
        let result = manager
            .get_or_load_as(
                Some((call.site.module(), call.site.name())),
                LoadKey::Full(&key),
                // The first attempt goes on from the read made above.
                first
                    .take()
                    .map_or(Begin::Read(None), |first| first.map(Stored::Owned)),
                options,
                Some(call.counters),
                Some(&handoff),
                store_if,
                || std::future::poll_fn(|cx| cell.poll_body(cx)),
            )
            .await;
        match result {
            Ok((Stored::Owned(value), _)) => break Next::Hit(value),
            Ok((Stored::Borrowed(_), _)) | Err(LoadError::Loader(NotCacheable)) => {
                break Next::Body
            }
            // This call waited for a concurrent call of the key whose body failed (not a
            // cache failure): rebuild its outcome, or run the body next (one at a time).
            Err(LoadError::Cache(e))
                if e.kind() == ErrorKind::Loader
                    && matches!(*cell.slot.lock(), Slot::Pending(_)) =>
            {
                let payload = handoff.incoming.lock().take();
                match sharing.rebuild(payload.as_ref(), e) {
                    Some(output) => break Next::Shared(output),
                    None => continue,
                }
            }
            Err(LoadError::Cache(e)) => break Next::Failed(e),
        }
    };
    let slot = cell.slot.into_inner();
    let limit = options.hard_timeout;
    match next {
        Next::Hit(value) => S::inject(value),
        Next::Shared(output) => {
            call.counters.coalesced();
            output
        }
        Next::Body => slot.finish().await,
        // The body exceeded the hard timeout, in this call (the manager dropped it) or in the
        // concurrent call this one waited for (whose body ran as long as this one's may):
        // the bound the function asked for is reached.
        Next::Failed(e) if limit.is_some() && e.is_timeout() => match on_timeout(e) {
            Some(output) => output,
            None => slot.finish().await,
        },
        Next::Failed(e) => match on_error(e) {
            Some(output) => output,
            None => {
                tracing::warn!(key = %super::call::key_of(manager, &key), "cachette: cache failure; running uncached");
                slot.finish_within(limit, call.counters, on_timeout).await
            }
        },
    }
}

/// `#[cached]` on a function returning `Result<T, E>`, with the failure handling of `mode`,
/// the sharing of `Err` outcomes with concurrent callers of `sharing` and the way hits get
/// their value of `hit` (what the macro expands into; [`cached_result`],
/// [`cached_result_strict`] and [`cached_result_bounded`] are this with fixed choices, and
/// [`HitPath::decode`]).
#[allow(clippy::manual_async_fn)] // the same form as its siblings
pub fn cached_result_with<'m, T, E, Fut, U>(
    call: Call<'m>,
    hit: HitPath<T>,
    mode: ResultMode<E>,
    sharing: ErrSharing<E>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Result<T, E>> + use<'m, T, E, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Result<T, E>>,
    U: FnOnce(&T) -> bool,
{
    async move {
        if let Some(value) = call.hit_now(&hit) {
            crate::backend::memory::cooperate().await;
            return Ok(value);
        }
        read_through::<ResultShape<T, E>, _, _, _, _>(
            call,
            hit,
            mode.on_error.is_none(),
            |e| mode.on_error.map(|f| Err(f(e))),
            |e| mode.on_timeout.map(|f| Err(f(e))),
            &sharing,
            unless,
            body,
        )
        .await
    }
}

pub(super) fn fail_open<O>(_: Error) -> Option<O> {
    None
}

/// `#[cached]` on a function returning `Result<T, E>`: only `Ok` values are cached; a cache
/// failure runs the body uncached (`fallback_on_error = true`, the default).
///
/// `unless(&value)` returning `true` keeps a value out of the cache. The call's options give
/// the TTL and the stampede options; their `fallback_on_error` is ignored (this function
/// fails open). A hard timeout cannot be reported here (`E` has no conversion from
/// [`Error`]): with one in the options, use [`cached_result_bounded`], or the body is
/// finished uncached past it.
///
/// # Examples
///
/// What `#[cached(cache = CACHE, ttl = 60)] async fn get_user(id: u64) -> Result<User, E>`
/// does, written by hand:
///
/// ```
/// use std::sync::LazyLock;
/// use cachette::runtime::{cached_result, Call, FnSite, SiteKind};
/// use cachette::{key::DefaultKey, CacheManager, LoadOptions, Ttl};
///
/// static CACHE: LazyLock<CacheManager> = LazyLock::new(CacheManager::memory);
///
/// async fn get_user(id: u64) -> Result<String, std::io::Error> {
///     static SITE: FnSite = FnSite::new(module_path!(), "get_user", SiteKind::Cached);
///     // Every option is a literal: the options live in a static, built at compile time.
///     static OPTIONS: LoadOptions = LoadOptions::new().with_ttl(Ttl::secs(60));
///     let call = Call::new(&SITE, None, Some(&*CACHE), &OPTIONS, || {
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
    cached_result_with(
        call,
        HitPath::decode(),
        ResultMode::fail_open(),
        ErrSharing::none(),
        unless,
        body,
    )
}

/// [`cached_result`] with `fallback_on_error = false`: a cache failure (down, timeout, key
/// that cannot be built) is returned as `Err(E::from(error))` instead of running uncached.
/// A stored value that does not decode is still a miss (and is overwritten). A hard timeout
/// is returned the same way (see [`cached_result_bounded`]).
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
    cached_result_with(
        call,
        HitPath::decode(),
        ResultMode::strict(),
        ErrSharing::converted(),
        unless,
        body,
    )
}

/// [`cached_result`] for options with a [`hard_timeout`](crate::LoadOptions::hard_timeout)
/// (what `#[cached(hard_timeout = ...)]` uses on a `Result` function that fails open): cache
/// failures still run the body uncached, but a body running longer than the hard timeout is
/// dropped and the call returns `Err(E::from(error))`, an [`ErrorKind::Timeout`] error,
/// unless a stale copy is served instead.
///
/// The bound applies to each run of the body: the one the manager drives on a miss, and the
/// uncached runs after a cache failure. Callers that waited for a concurrent call whose body
/// timed out get the timeout error too (without running their own). A call that bypasses the
/// cache (no manager, or a disabled one) runs the body as if undecorated.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cachette::runtime::{cached_result_bounded, Call, FnSite, SiteKind};
/// use cachette::{CacheManager, ErrorKind, LoadOptions, Ttl};
///
/// #[derive(Debug)]
/// enum AppError {
///     Cache(cachette::Error),
/// }
///
/// impl From<cachette::Error> for AppError {
///     fn from(e: cachette::Error) -> Self {
///         AppError::Cache(e)
///     }
/// }
///
/// async fn slow_report(cache: &CacheManager) -> Result<String, AppError> {
///     static SITE: FnSite = FnSite::new(module_path!(), "slow_report", SiteKind::Cached);
///     static OPTIONS: LoadOptions = LoadOptions::new()
///         .with_ttl(Ttl::secs(300))
///         .hard_timeout(Duration::from_millis(50));
///     let call = Call::new(&SITE, None, Some(cache), &OPTIONS, || Ok("report".to_owned()));
///     cached_result_bounded(call, |_: &String| false, async {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///         Ok("done".to_owned())
///     })
///     .await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = CacheManager::memory();
/// let started = std::time::Instant::now();
/// let Err(AppError::Cache(e)) = slow_report(&cache).await else { panic!("not a timeout") };
/// assert_eq!(e.kind(), ErrorKind::Timeout);
/// assert!(started.elapsed() < Duration::from_secs(30));
/// # }
/// ```
pub fn cached_result_bounded<'m, T, E, Fut, U>(
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
    cached_result_with(
        call,
        HitPath::decode(),
        ResultMode::bounded(),
        ErrSharing::converted(),
        unless,
        body,
    )
}

/// `#[cached]` on a function returning `Option<T>`: only `Some` values are cached (with
/// `cache_none = true` the macro uses [`cached_value`] and caches `None` too).
///
/// A hard timeout cannot be reported (the macro rejects `hard_timeout` here): with one in the
/// options, the body is finished uncached past it.
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
    cached_option_with(call, HitPath::decode(), unless, body)
}

/// [`cached_option`] with the way hits get their value of `hit` (what the macro expands
/// into).
#[allow(clippy::manual_async_fn)] // the same form as its siblings
pub fn cached_option_with<'m, T, Fut, U>(
    call: Call<'m>,
    hit: HitPath<T>,
    unless: U,
    body: Fut,
) -> impl Future<Output = Option<T>> + use<'m, T, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Option<T>>,
    U: FnOnce(&T) -> bool,
{
    async move {
        if let Some(value) = call.hit_now(&hit) {
            crate::backend::memory::cooperate().await;
            return Some(value);
        }
        read_through::<OptionShape<T>, _, _, _, _>(
            call,
            hit,
            true,
            fail_open,
            fail_open,
            &NoneSharing,
            unless,
            body,
        )
        .await
    }
}

/// `#[cached]` on a function returning any other `T`: every value is cached.
///
/// A hard timeout cannot be reported (the macro rejects `hard_timeout` here): with one in the
/// options, the body is finished uncached past it.
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
    cached_value_with(call, HitPath::decode(), unless, body)
}

/// [`cached_value`] with the way hits get their value of `hit` (what the macro expands into).
#[allow(clippy::manual_async_fn)] // the same form as its siblings
pub fn cached_value_with<'m, T, Fut, U>(
    call: Call<'m>,
    hit: HitPath<T>,
    unless: U,
    body: Fut,
) -> impl Future<Output = T> + use<'m, T, Fut, U>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = T>,
    U: FnOnce(&T) -> bool,
{
    async move {
        if let Some(value) = call.hit_now(&hit) {
            crate::backend::memory::cooperate().await;
            return value;
        }
        read_through::<ValueShape<T>, _, _, _, _>(
            call, hit, true, fail_open, fail_open, &NoSharing, unless, body,
        )
        .await
    }
}
