//! The tower glue: [`HttpCache`] as a `Layer`, and its service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::CacheBody;
use crate::config::{HttpCache, Settings};
use crate::service::handle;

/// The service of [`HttpCache`]: caches the responses of `S`.
#[derive(Clone)]
pub struct HttpCacheService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> std::fmt::Debug for HttpCacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCacheService")
            .field("cache", &self.settings.cache.describe())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HttpCache {
    type Service = HttpCacheService<S>;

    fn layer(&self, inner: S) -> HttpCacheService<S> {
        HttpCacheService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The future of [`HttpCacheService`].
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send + 'static>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpCacheService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Buf + Send,
    ResB::Error: Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The service that was made ready is the one that serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.settings.clone();
        if settings.stale_while_revalidate.is_some() {
            Box::pin(crate::revalidate::handle(settings, inner, req))
        } else {
            Box::pin(handle(settings, inner, req, None))
        }
    }
}
