//! Stale-while-revalidate for the request that finds the entry stale.
//!
//! Concurrent requests get the stale copy from cachette's read-through (a stale copy and a
//! zero soft timeout). The request whose read-through leads the reload would wait for the
//! handler; instead, as soon as its fill starts, the stored copy is read once more and, when
//! it is within the stale-while-revalidate window and matches the request's `Vary` fields,
//! served at once (`x-cache: STALE`) while the rest of the request (the handler, the store)
//! goes on in a spawned task.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Buf;
use http::{Request, Response};
use http_body::Body;
use tokio::sync::oneshot;
use tower_service::Service;

use crate::body::CacheBody;
use crate::config::Settings;
use crate::entry::{unix_ms, Stored};
use crate::service::{from_entry, handle as handle_request, Status};

/// [`handle_request`] with stale-while-revalidate for the request that leads the reload.
pub(crate) async fn handle<S, ReqB, ResB>(
    s: Arc<Settings>,
    inner: S,
    req: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Buf + Send,
    ResB::Error: Send,
{
    let (tx, rx) = oneshot::channel();
    let mut work = Box::pin(handle_request(s.clone(), inner, req, Some(tx)));
    let started = tokio::select! {
        biased;
        done = &mut work => return done,
        started = rx => match started {
            Ok(started) => started,
            // No fill (a hit, a bypass...): the request goes on as it is.
            Err(_) => return work.await,
        },
    };
    let Some(window) = s.stale_while_revalidate else {
        return work.await;
    };
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let stale = match s.cache.get::<Stored>(&started.key).await {
        Ok(Some(entry))
            // A fresh entry is the reload's own (it stored before this read): not stale.
            if entry.readable()
                && !entry.is_fresh(SystemTime::now())
                && !entry.no_stale
                && entry.matches(&started.headers)
                && unix_ms(SystemTime::now())
                    < entry
                        .stored_at_ms
                        .saturating_add(entry.ttl_ms)
                        .saturating_add(window_ms) =>
        {
            entry
        }
        _ => return work.await,
    };
    // The reload goes on without this request: its response is stored when it finishes.
    tokio::spawn(async move {
        let _ = work.await;
    });
    let age = stale.age(SystemTime::now());
    Ok(from_entry(
        &s,
        stale,
        &started.cond,
        Some(age),
        Status::Stale,
    ))
}
