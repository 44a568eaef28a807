//! What the callers that waited on a coalesced call get when its body failed: the leader's
//! `None` as is, its `Err` cloned (`E: Clone`) or converted (`E: From<cachette::Error>`), or,
//! with neither, nothing shared (each waiter then runs the body, one at a time). The macro
//! picks the rule at compile time by autoref specialisation over [`ErrProbe`].

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Error;
use crate::load::coalesce::Payload;

/// How a failed outcome of a decorated function reaches the calls that waited for it.
pub(crate) trait ShareOutput<O> {
    /// The leader: a shareable form of its failed output (`None`: not shareable).
    fn share(&self, output: &O) -> Option<Payload>;
    /// A waiter: its output from the leader's payload (if any) and error; `None`: run the
    /// body (after the others, one at a time).
    fn rebuild(&self, payload: Option<&Payload>, error: Error) -> Option<O>;
}

/// Nothing to share (plain values: only a panic fails them).
pub(crate) struct NoSharing;

impl<O> ShareOutput<O> for NoSharing {
    fn share(&self, _: &O) -> Option<Payload> {
        None
    }
    fn rebuild(&self, _: Option<&Payload>, _: Error) -> Option<O> {
        None
    }
}

/// `Option<T>`: the leader's `None` is every waiter's `None`.
pub(crate) struct NoneSharing;

/// What a waiter of an `Option<T>` function gets for the leader's `None`.
struct SharedNone;

impl<T> ShareOutput<Option<T>> for NoneSharing {
    fn share(&self, output: &Option<T>) -> Option<Payload> {
        output.is_none().then(|| Arc::new(SharedNone) as Payload)
    }
    fn rebuild(&self, payload: Option<&Payload>, _: Error) -> Option<Option<T>> {
        payload.filter(|p| p.is::<SharedNone>()).map(|_| None)
    }
}

impl<T, E> ShareOutput<Result<T, E>> for ErrSharing<E> {
    fn share(&self, output: &Result<T, E>) -> Option<Payload> {
        match (output, self.clone) {
            (Err(e), Some((into, _))) => Some(into(e)),
            _ => None,
        }
    }

    fn rebuild(&self, payload: Option<&Payload>, error: Error) -> Option<Result<T, E>> {
        if let (Some(payload), Some((_, from))) = (payload, self.clone) {
            if let Some(e) = from(payload) {
                return Some(Err(e));
            }
        }
        self.convert.map(|convert| Err(convert(error)))
    }
}

/// Into and out of a shared payload, for a `Clone` error.
type ClonePair<E> = (fn(&E) -> Payload, fn(&Payload) -> Option<E>);

/// How the callers of a `#[cached]` function returning `Result<T, E>` that waited for a
/// concurrent call of the same key get its `Err` (without running their own body).
///
/// - [`ErrSharing::cloned`] (`E: Clone + Send + Sync + 'static`): a clone of it;
/// - [`ErrSharing::converted`] (`E: From<cachette::Error>`): `E::from` an
///   [`ErrorKind::Loader`](crate::ErrorKind::Loader) error;
/// - [`ErrSharing::none`]: neither; the waiters run their bodies one at a time (one runs while
///   the others wait for it, as for the first).
///
/// A body that panicked is shared by `converted` only (as an `ErrorKind::Loader` error);
/// `cloned` and `none` then run the next body, one at a time. `#[cached]` picks `cloned`, else
/// `converted`, else `none`, from the bounds `E` satisfies where the function is defined
/// ([`ErrProbe`]).
pub struct ErrSharing<E> {
    clone: Option<ClonePair<E>>,
    convert: Option<fn(Error) -> E>,
}

impl<E> Clone for ErrSharing<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for ErrSharing<E> {}

impl<E> std::fmt::Debug for ErrSharing<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrSharing")
            .field("cloned", &self.clone.is_some())
            .field("converted", &self.convert.is_some())
            .finish()
    }
}

fn clone_into_payload<E: Clone + Send + Sync + 'static>(e: &E) -> Payload {
    Arc::new(e.clone())
}

fn clone_from_payload<E: Clone + Send + Sync + 'static>(p: &Payload) -> Option<E> {
    let any: &(dyn Any + Send + Sync) = p.as_ref();
    any.downcast_ref::<E>().cloned()
}

impl<E> ErrSharing<E> {
    /// Waiters do not get the `Err`: they run their bodies one at a time.
    pub const fn none() -> Self {
        ErrSharing {
            clone: None,
            convert: None,
        }
    }

    /// Waiters get a clone of the `Err`.
    pub fn cloned() -> Self
    where
        E: Clone + Send + Sync + 'static,
    {
        ErrSharing {
            clone: Some((clone_into_payload::<E>, clone_from_payload::<E>)),
            convert: None,
        }
    }

    /// Waiters get `E::from` an [`ErrorKind::Loader`](crate::ErrorKind::Loader) error.
    pub fn converted() -> Self
    where
        E: From<Error>,
    {
        ErrSharing {
            clone: None,
            convert: Some(E::from),
        }
    }
}

/// Picks an [`ErrSharing`] from the bounds of `E` (autoref specialization): in scope of the
/// traits [`ShareByClone`], [`ShareByFrom`] and [`ShareNone`],
/// `(&&&ErrProbe::of(&body)).err_sharing()` is [`ErrSharing::cloned`] when `E: Clone + Send +
/// Sync + 'static`, else [`ErrSharing::converted`] when `E: From<cachette::Error>`, else
/// [`ErrSharing::none`]. What `#[cached]` expands into.
pub struct ErrProbe<E>(PhantomData<fn() -> E>);

impl<E> std::fmt::Debug for ErrProbe<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErrProbe")
    }
}

impl<E> ErrProbe<E> {
    /// The probe for the error type of `body`'s `Result`.
    pub fn of<T, F: Future<Output = Result<T, E>>>(_body: &Pin<&mut F>) -> Self {
        ErrProbe(PhantomData)
    }
}

/// See [`ErrProbe`]: `E: Clone + Send + Sync + 'static`.
pub trait ShareByClone<E> {
    /// [`ErrSharing::cloned`].
    fn err_sharing(&self) -> ErrSharing<E>;
}

impl<E: Clone + Send + Sync + 'static> ShareByClone<E> for &&ErrProbe<E> {
    fn err_sharing(&self) -> ErrSharing<E> {
        ErrSharing::cloned()
    }
}

/// See [`ErrProbe`]: `E: From<cachette::Error>`.
pub trait ShareByFrom<E> {
    /// [`ErrSharing::converted`].
    fn err_sharing(&self) -> ErrSharing<E>;
}

impl<E: From<Error>> ShareByFrom<E> for &ErrProbe<E> {
    fn err_sharing(&self) -> ErrSharing<E> {
        ErrSharing::converted()
    }
}

/// See [`ErrProbe`]: any other `E`.
pub trait ShareNone<E> {
    /// [`ErrSharing::none`].
    fn err_sharing(&self) -> ErrSharing<E>;
}

impl<E> ShareNone<E> for ErrProbe<E> {
    fn err_sharing(&self) -> ErrSharing<E> {
        ErrSharing::none()
    }
}

/// How `#[cached]` on a `Result<T, E>` function handles cache failures and the hard timeout:
/// [`ResultMode::fail_open`], [`ResultMode::strict`] (`fallback_on_error = false`) or
/// [`ResultMode::bounded`] (`hard_timeout`). See [`cached_result_with`](crate::runtime::cached_result_with).
pub struct ResultMode<E> {
    pub(crate) on_error: Option<fn(Error) -> E>,
    pub(crate) on_timeout: Option<fn(Error) -> E>,
}

impl<E> std::fmt::Debug for ResultMode<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultMode")
            .field("strict", &self.on_error.is_some())
            .field("bounded", &self.on_timeout.is_some())
            .finish()
    }
}

impl<E> ResultMode<E> {
    /// As [`cached_result`](crate::runtime::cached_result): cache failures run the body uncached.
    pub const fn fail_open() -> Self {
        ResultMode {
            on_error: None,
            on_timeout: None,
        }
    }

    /// As [`cached_result_strict`](crate::runtime::cached_result_strict): cache failures and the hard timeout are returned as
    /// `Err(E::from(error))`.
    pub fn strict() -> Self
    where
        E: From<Error>,
    {
        ResultMode {
            on_error: Some(E::from),
            on_timeout: Some(E::from),
        }
    }

    /// As [`cached_result_bounded`](crate::runtime::cached_result_bounded): cache failures run the body uncached; the hard timeout is
    /// returned as `Err(E::from(error))`.
    pub fn bounded() -> Self
    where
        E: From<Error>,
    {
        ResultMode {
            on_error: None,
            on_timeout: Some(E::from),
        }
    }
}
