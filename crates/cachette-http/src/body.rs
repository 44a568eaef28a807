//! The layer's response body, and reading a handler's body up to a limit.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

/// The body of a response leaving the layer: a stored body, or the handler's own (possibly
/// after frames the layer already read while deciding whether to store it).
pub struct CacheBody<B: Body> {
    kind: Kind<B>,
}

enum Kind<B: Body> {
    Full(Option<Bytes>),
    /// Frames already read, then (an error read, or) the rest of the handler's body.
    Stream {
        read: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    },
}

// Nothing in it is structurally pinned: the handler's body is boxed, and the rest (frames,
// an error) is moved out by value.
impl<B: Body> Unpin for CacheBody<B> {}

impl<B: Body> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => f
                .debug_tuple("CacheBody::Full")
                .field(&b.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream { read, .. } => f
                .debug_struct("CacheBody::Stream")
                .field("frames_read", &read.len())
                .finish(),
        }
    }
}

impl<B: Body> CacheBody<B> {
    /// A complete body.
    pub(crate) fn full(bytes: Bytes) -> Self {
        CacheBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// No body.
    pub(crate) fn empty() -> Self {
        CacheBody {
            kind: Kind::Full(None),
        }
    }

    /// The handler's body, untouched.
    pub(crate) fn inner(body: B) -> Self {
        CacheBody {
            kind: Kind::Stream {
                read: VecDeque::new(),
                error: None,
                rest: Some(Box::pin(body)),
            },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // `Kind` holds nothing that is structurally pinned (the inner body is boxed).
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream { read, error, rest } => {
                if let Some(frame) = read.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(e) = error.take() {
                    *rest = None;
                    return Poll::Ready(Some(Err(e)));
                }
                let Some(body) = rest.as_mut() else {
                    return Poll::Ready(None);
                };
                match body.as_mut().poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        *rest = None;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(e))) => {
                        *rest = None;
                        Poll::Ready(Some(Err(e)))
                    }
                    Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(to_bytes(frame)))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream { read, error, rest } => {
                read.is_empty()
                    && error.is_none()
                    && rest.as_ref().is_none_or(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream { read, error, rest } => {
                let already: u64 = read
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                match rest {
                    Some(body) if error.is_none() => {
                        let inner = body.size_hint();
                        let mut hint = SizeHint::new();
                        hint.set_lower(inner.lower().saturating_add(already));
                        if let Some(upper) = inner.upper() {
                            hint.set_upper(upper.saturating_add(already));
                        }
                        hint
                    }
                    _ => SizeHint::with_exact(already),
                }
            }
        }
    }
}

fn to_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
}

/// How reading a handler's body ended.
pub(crate) enum Collected<B: Body> {
    /// The whole body, within the limit and without trailers.
    Complete(Bytes),
    /// Not storable (over the limit, trailers, or an error): what was read and the rest,
    /// to stream to the client.
    Passthrough(CacheBody<B>),
}

/// Reads `body` until its end, or until more than `limit` bytes, a trailers frame or an
/// error: never holds more than `limit` bytes plus one frame.
pub(crate) async fn collect<B>(body: B, limit: usize) -> Collected<B>
where
    B: Body,
    B::Data: Buf,
{
    let mut body = Box::pin(body);
    let mut buf = BytesMut::new();
    loop {
        let next = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        let frame = match next {
            None => return Collected::Complete(buf.freeze()),
            Some(Err(e)) => return passthrough(buf, None, Some(e), body),
            Some(Ok(frame)) => to_bytes(frame),
        };
        match frame.into_data() {
            Ok(data) => {
                if buf.len() + data.len() > limit {
                    return passthrough(buf, Some(Frame::data(data)), None, body);
                }
                buf.extend_from_slice(&data);
            }
            Err(trailers) => return passthrough(buf, Some(trailers), None, body),
        }
    }
}

fn passthrough<B: Body>(
    buf: BytesMut,
    frame: Option<Frame<Bytes>>,
    error: Option<B::Error>,
    rest: Pin<Box<B>>,
) -> Collected<B> {
    let mut read = VecDeque::new();
    if !buf.is_empty() {
        read.push_back(Frame::data(buf.freeze()));
    }
    read.extend(frame);
    Collected::Passthrough(CacheBody {
        kind: Kind::Stream {
            read,
            error,
            rest: Some(rest),
        },
    })
}
