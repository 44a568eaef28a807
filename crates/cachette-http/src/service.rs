//! One request's path through the cache.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Buf;
use cachette::{LoadError, LoadOptions, Outcome};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::sync::oneshot;
use tower_service::Service;

use crate::body::{collect, CacheBody, Collected};
use crate::config::{Credentials, Route, Settings};
use crate::entry::{Conditions, Stored};
use crate::{key, policy};

/// A fill has started: for this key, on behalf of a request with these fields (told to
/// stale-while-revalidate, see `revalidate`).
pub(crate) struct Started {
    pub(crate) key: String,
    pub(crate) headers: HeaderMap,
    pub(crate) cond: Conditions,
}

/// What the cache does with one request.
struct Plan {
    primary: String,
    route: Option<Route>,
    cc: policy::Directives,
    cond: Conditions,
    /// `Authorization` present and shared ([`Credentials::Shared`]).
    auth_shared: bool,
}

/// How a response was obtained (the value of the status header).
#[derive(Clone, Copy)]
pub(crate) enum Status {
    Hit,
    Miss,
    Stale,
    Bypass,
}

impl Status {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Status::Hit => "HIT",
            Status::Miss => "MISS",
            Status::Stale => "STALE",
            Status::Bypass => "BYPASS",
        })
    }
}

/// `None`: the request bypasses the cache.
fn plan(s: &Settings, parts: &http::request::Parts) -> Option<Plan> {
    let head = parts.method == Method::HEAD;
    if !(head || parts.method == Method::GET) || parts.headers.contains_key(header::RANGE) {
        return None;
    }
    let route = s.route_of(parts);
    if route.as_ref().is_some_and(|r| !r.cache) {
        return None;
    }
    let mut user: Option<Vec<u8>> = None;
    let mut auth_shared = false;
    for (name, policy) in [
        (header::AUTHORIZATION, s.authorization),
        (header::COOKIE, s.cookies),
    ] {
        if !parts.headers.contains_key(&name) {
            continue;
        }
        match policy {
            Credentials::Bypass => return None,
            Credentials::PerUser => {
                let u = user.get_or_insert_with(Vec::new);
                for v in parts.headers.get_all(&name) {
                    u.extend_from_slice(name.as_str().as_bytes());
                    u.push(b'\n');
                    u.extend_from_slice(v.as_bytes());
                    u.push(b'\n');
                }
            }
            Credentials::Shared => auth_shared |= name == header::AUTHORIZATION,
        }
    }
    let cc = policy::Directives::parse(&parts.headers);
    if cc.no_store {
        return None;
    }
    let origin = key::origin(parts);
    Some(Plan {
        primary: key::primary(&s.key_prefix, &origin, &parts.uri, user.as_deref()),
        route,
        cc,
        cond: Conditions::of(&parts.headers, head),
        auth_shared,
    })
}

fn finish<B: Body>(
    s: &Settings,
    mut resp: Response<CacheBody<B>>,
    status: Status,
) -> Response<CacheBody<B>> {
    if let Some(tags) = &s.tags_header {
        resp.headers_mut().remove(tags);
    }
    resp.headers_mut()
        .insert(s.status_header.clone(), status.value());
    resp
}

pub(crate) fn from_entry<B: Body>(
    s: &Settings,
    entry: Stored,
    cond: &Conditions,
    age: Option<u64>,
    status: Status,
) -> Response<CacheBody<B>> {
    let resp = entry.respond(cond, age).map(CacheBody::full);
    finish(s, resp, status)
}

fn plain<B: Body>(s: &Settings, status: StatusCode) -> Response<CacheBody<B>> {
    let mut resp = Response::new(CacheBody::empty());
    *resp.status_mut() = status;
    finish(s, resp, Status::Miss)
}

pub(crate) async fn handle<S, ReqB, ResB>(
    s: Arc<Settings>,
    mut inner: S,
    req: Request<ReqB>,
    started: Option<oneshot::Sender<Started>>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
{
    let (parts, body) = req.into_parts();
    let plan = plan(&s, &parts);
    let req = Request::from_parts(parts, body);
    let Some(plan) = plan else {
        let resp = inner.call(req).await?;
        return Ok(finish(&s, resp.map(CacheBody::inner), Status::Bypass));
    };
    let mut ctx = Ctx {
        s: &s,
        plan: &plan,
        slot: Some(req),
        svc: Some(inner),
        pass: None,
        refused: false,
        reused: false,
        purges: s.purges.load(Ordering::SeqCst),
        started,
    };
    let now = SystemTime::now();
    if plan.cc.only_if_cached {
        return Ok(match ctx.peek(now).await {
            Some(entry) => {
                let age = entry.age(now);
                from_entry(&s, entry, &plan.cond, Some(age), Status::Hit)
            }
            None => plain(&s, StatusCode::GATEWAY_TIMEOUT),
        });
    }
    let (options, cap) = s.options(plan.route.as_ref());
    if plan.cc.no_cache || plan.cc.max_age == Some(0) {
        return ctx.refresh(cap).await;
    }
    let mut key = plan.primary.clone();
    for _ in 0..2 {
        match ctx.lookup(&key, &options, cap).await {
            Looked::Served(entry, status) => {
                let age = match status {
                    Status::Hit | Status::Stale => Some(entry.age(SystemTime::now())),
                    Status::Miss | Status::Bypass => None,
                };
                return Ok(from_entry(&s, entry, &plan.cond, age, status));
            }
            Looked::Pass(resp, status) => return resp.map(|r| finish(&s, r, status)),
            Looked::Other(vary) => {
                key = key::variant(&plan.primary, &ctx.vary_values(&vary));
            }
            Looked::Direct => break,
            Looked::Timeout => return Ok(plain(&s, StatusCode::GATEWAY_TIMEOUT)),
        }
    }
    ctx.direct().await
}

/// What a read-through of one key gave.
enum Looked<B: Body, E> {
    /// A response from the cache, or filled by this request.
    Served(Stored, Status),
    /// This request's own response, not stored.
    Pass(Result<Response<CacheBody<B>>, E>, Status),
    /// The stored response is another variant (varying on these fields): try its key.
    Other(Vec<String>),
    /// The request still has to go to the handler (the fill of the key failed elsewhere).
    Direct,
    /// The handler exceeded the hard timeout.
    Timeout,
}

/// Why a fill stored nothing.
enum Unstored {
    /// The handler failed or answered 500, 502, 503 or 504 (a stale copy is served instead).
    Error,
    /// The response may not be stored.
    Uncacheable,
    /// No request or service left to fill with.
    Gone,
}

/// One request on its way through the cache.
struct Ctx<'a, S, ReqB, ResB: Body, E> {
    s: &'a Settings,
    plan: &'a Plan,
    /// The request, until a fill or [`Ctx::direct`] takes it.
    slot: Option<Request<ReqB>>,
    svc: Option<S>,
    /// The response of this request's fill when it was not stored.
    pass: Option<Result<Response<CacheBody<ResB>>, E>>,
    /// The fill's response was refused by the read-through's filter because its TTL or
    /// stale rule differs from the route's: stored by a plain `set` instead.
    refused: bool,
    /// The read-through's fill found a current entry written with more tags than the route's
    /// (its handler's): served as a hit, not stored again.
    reused: bool,
    /// The layer's purge count when the request came in (before any handler ran).
    purges: u64,
    /// Told when a read-through of this request starts its fill (stale-while-revalidate).
    started: Option<oneshot::Sender<Started>>,
}

impl<S, ReqB, ResB> Ctx<'_, S, ReqB, ResB, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
{
    /// The request's values of `names` (its `Vary` fields).
    fn vary_values(&self, names: &[String]) -> Vec<(String, Option<String>)> {
        let empty = HeaderMap::new();
        let headers = self.slot.as_ref().map_or(&empty, |r| r.headers());
        names
            .iter()
            .map(|n| (n.clone(), policy::field_value(headers, n)))
            .collect()
    }

    fn matches(&self, entry: &Stored) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|r| entry.matches(r.headers()))
    }

    /// A fresh stored response for this request, without filling (`only-if-cached`).
    async fn peek(&mut self, now: SystemTime) -> Option<Stored> {
        let mut key = self.plan.primary.clone();
        for _ in 0..2 {
            let entry = match self.s.cache.get::<Stored>(&key).await {
                Ok(Some(e)) if e.readable() => e,
                _ => return None,
            };
            if self.matches(&entry) {
                return entry.is_fresh(now).then_some(entry);
            }
            let names: Vec<String> = entry.vary.iter().map(|(n, _)| n.clone()).collect();
            key = key::variant(&self.plan.primary, &self.vary_values(&names));
        }
        None
    }

    /// `Cache-Control: no-cache` (or `max-age=0`) from the client: the handler runs and its
    /// response replaces the stored one.
    async fn refresh(mut self, cap: Duration) -> Result<Response<CacheBody<ResB>>, S::Error> {
        match self.fill(cap).await {
            Ok(entry) => {
                let mut keys = vec![self.plan.primary.clone()];
                if !entry.vary.is_empty() {
                    keys.push(key::variant(&self.plan.primary, &entry.vary));
                }
                for k in keys {
                    store(self.s, &k, &entry, self.purges).await;
                }
                Ok(from_entry(
                    self.s,
                    entry,
                    &self.plan.cond,
                    None,
                    Status::Miss,
                ))
            }
            Err(_) => match self.pass.take() {
                Some(resp) => resp.map(|r| finish(self.s, r, Status::Miss)),
                None => Ok(plain(self.s, StatusCode::BAD_GATEWAY)),
            },
        }
    }

    /// The handler's response for this request, not stored.
    async fn direct(mut self) -> Result<Response<CacheBody<ResB>>, S::Error> {
        match (self.svc.take(), self.slot.take()) {
            (Some(mut svc), Some(req)) => {
                let resp = svc.call(req).await?;
                Ok(finish(self.s, resp.map(CacheBody::inner), Status::Miss))
            }
            _ => Ok(plain(self.s, StatusCode::BAD_GATEWAY)),
        }
    }

    /// A read-through of `key`: a stored response, or this request's fill.
    async fn lookup(
        &mut self,
        key: &str,
        options: &LoadOptions,
        cap: Duration,
    ) -> Looked<ResB, S::Error> {
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        let stale_copies = options.stale_ttl.is_some();
        let cache = self.s.cache.clone();
        let (s, plan) = (self.s, self.plan);
        let route_tags = tag_set(plan.route.as_ref().map_or(&[][..], |r| r.tags.as_slice()));
        // The read-through stores with the route's tags (their versions read before the
        // handler runs) and serves only entries with exactly those: a response that names
        // tags of its own is stored after the fill, by `store`, and found by a plain read.
        let with_header_tags = !route_tags.is_empty() && s.tags_header.is_some();
        let refused = &mut self.refused;
        let route_set = &route_tags;
        let store_if = |e: &Stored| {
            let ok = e.ttl_ms == cap_ms
                && !(stale_copies && e.no_stale)
                && tag_set(&e.tags) == *route_set;
            *refused = !ok;
            ok
        };
        let slot = &mut self.slot;
        let svc = &mut self.svc;
        let pass = &mut self.pass;
        let reused = &mut self.reused;
        let started = &mut self.started;
        let got = cache
            .get_or_load_traced(key, options, None, store_if, move || async move {
                if with_header_tags {
                    // A tagged read-through misses an entry with more tags than the route's:
                    // a plain read finds it (checked against its own tags).
                    if let Ok(Some(entry)) = s.cache.get::<Stored>(key).await {
                        if entry.readable()
                            && entry.is_fresh(SystemTime::now())
                            && tag_set(&entry.tags) != *route_set
                        {
                            *reused = true;
                            return Ok(entry);
                        }
                    }
                }
                // Only a fill that runs tells (a lookup that finds another variant does not).
                let notify = started.take().map(|tx| (tx, key.to_owned()));
                fill_with(s, plan, svc, slot, pass, cap, notify).await
            })
            .await;
        let ours = self.slot.is_none();
        match got {
            Ok((entry, outcome)) => {
                if !entry.readable() {
                    return Looked::Direct;
                }
                if ours && outcome == Outcome::NotStored && self.refused {
                    store(s, key, &entry, self.purges).await;
                }
                if self.reused && !ours {
                    if !self.matches(&entry) {
                        return Looked::Other(entry.vary.into_iter().map(|(n, _)| n).collect());
                    }
                    return Looked::Served(entry, Status::Hit);
                }
                if !ours && !self.matches(&entry) {
                    return Looked::Other(entry.vary.into_iter().map(|(n, _)| n).collect());
                }
                let status = match outcome {
                    Outcome::Hit | Outcome::Coalesced => Status::Hit,
                    Outcome::Stale => {
                        // A fill that ran and was refused for another reason than an error
                        // is this request's answer (stale-if-error is for errors only).
                        match self.pass.take() {
                            Some(Ok(resp)) if !policy::is_error_status(resp.status()) => {
                                return Looked::Pass(Ok(resp), Status::Miss)
                            }
                            _ => Status::Stale,
                        }
                    }
                    Outcome::Fallback => Status::Bypass,
                    _ => Status::Miss,
                };
                Looked::Served(entry, status)
            }
            Err(LoadError::Loader(_)) => match self.pass.take() {
                Some(resp) => Looked::Pass(resp, Status::Miss),
                None => Looked::Direct,
            },
            Err(LoadError::Cache(e)) => {
                if let Some(resp) = self.pass.take() {
                    return Looked::Pass(resp, Status::Miss);
                }
                if ours {
                    tracing::warn!(error = %e, "cachette-http: the handler did not answer in time");
                    return Looked::Timeout;
                }
                Looked::Direct
            }
        }
    }

    /// Runs the handler for this request outside a read-through (a refresh).
    async fn fill(&mut self, cap: Duration) -> Result<Stored, Unstored> {
        fill_with(
            self.s,
            self.plan,
            &mut self.svc,
            &mut self.slot,
            &mut self.pass,
            cap,
            None,
        )
        .await
    }
}

/// The request a fill sends: `GET` for a `HEAD`, without the client's validators (the
/// cache needs the whole response; it answers the validators itself).
fn fill_request<B>(mut req: Request<B>) -> Request<B> {
    if req.method() == Method::HEAD {
        *req.method_mut() = Method::GET;
    }
    let h = req.headers_mut();
    h.remove(header::IF_NONE_MATCH);
    h.remove(header::IF_MODIFIED_SINCE);
    req
}

/// Why a response may not be stored, or its TTL, `Vary` names and stale rule.
fn storable(
    s: &Settings,
    plan: &Plan,
    resp: &http::response::Parts,
    cap: Duration,
    now: SystemTime,
) -> Result<(Duration, Vec<String>, bool), Unstored> {
    if policy::is_error_status(resp.status) {
        return Err(Unstored::Error);
    }
    if !s.status_cacheable(resp.status.as_u16()) {
        return Err(Unstored::Uncacheable);
    }
    let h = &resp.headers;
    let cc = policy::Directives::parse(h);
    if cc.no_store || cc.private || cc.no_cache || h.contains_key(header::SET_COOKIE) {
        return Err(Unstored::Uncacheable);
    }
    if plan.auth_shared && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(Unstored::Uncacheable);
    }
    let Some(vary) = policy::vary_names(h) else {
        return Err(Unstored::Uncacheable);
    };
    let too_big = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > s.max_body_bytes as u64);
    if too_big {
        return Err(Unstored::Uncacheable);
    }
    let ttl = match policy::explicit_freshness(h, &cc, now) {
        Some(fresh) => fresh.min(cap),
        None => cap,
    };
    if ttl.is_zero() {
        return Err(Unstored::Uncacheable);
    }
    Ok((ttl, vary, cc.must_revalidate))
}

/// Sorted, deduplicated tags (the form the core records them in).
fn tag_set(tags: &[String]) -> Vec<String> {
    let mut set = tags.to_vec();
    set.sort_unstable();
    set.dedup();
    set
}

/// Stores `entry` at `key` outside the read-through (its TTL or tags differ from the
/// route's, or a refresh): with [`CacheManager::set_tagged`](cachette::CacheManager::set_tagged)
/// when it has tags. The tag versions are read now, after the handler ran: when a tag purge
/// of this layer (`purges` moved since the request came in) may have landed meanwhile, the
/// entry is removed again rather than kept under versions newer than its response.
async fn store(s: &Settings, key: &str, entry: &Stored, purges: u64) {
    let ttl = Duration::from_millis(entry.ttl_ms);
    let tags = tag_set(&entry.tags);
    let result = if tags.is_empty() {
        s.cache.set(key, entry, ttl).await
    } else {
        s.cache.set_tagged(key, entry, ttl, &tags).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cachette-http: could not store a response");
        return;
    }
    if !tags.is_empty() && s.purges.load(Ordering::SeqCst) != purges {
        if let Err(e) = s.cache.delete(key).await {
            tracing::warn!(error = %e, "cachette-http: could not drop a response stored across a tag purge");
        }
    }
}

/// The tags a response names in the tags header.
fn header_tags(s: &Settings, h: &HeaderMap) -> Vec<String> {
    let Some(name) = &s.tags_header else {
        return Vec::new();
    };
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs the handler for the request in `slot` and makes its response an entry; a response
/// that is not stored goes to `pass`.
async fn fill_with<S, ReqB, ResB>(
    s: &Settings,
    plan: &Plan,
    svc: &mut Option<S>,
    slot: &mut Option<Request<ReqB>>,
    pass: &mut Option<Result<Response<CacheBody<ResB>>, S::Error>>,
    cap: Duration,
    notify: Option<(oneshot::Sender<Started>, String)>,
) -> Result<Stored, Unstored>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    ResB::Data: Buf,
{
    let (Some(mut inner), Some(req)) = (svc.take(), slot.take()) else {
        return Err(Unstored::Gone);
    };
    let req = fill_request(req);
    let request_headers = req.headers().clone();
    if let Some((tx, key)) = notify {
        let _ = tx.send(Started {
            key,
            headers: request_headers.clone(),
            cond: plan.cond.clone(),
        });
    }
    let resp = match inner.call(req).await {
        Ok(resp) => resp,
        Err(e) => {
            *pass = Some(Err(e));
            return Err(Unstored::Error);
        }
    };
    let now = SystemTime::now();
    let (parts, body) = resp.into_parts();
    let (ttl, names, no_stale) = match storable(s, plan, &parts, cap, now) {
        Ok(ok) => ok,
        Err(why) => {
            *pass = Some(Ok(Response::from_parts(parts, CacheBody::inner(body))));
            return Err(why);
        }
    };
    let body = match collect(body, s.max_body_bytes).await {
        Collected::Complete(bytes) => bytes,
        Collected::Passthrough(body) => {
            *pass = Some(Ok(Response::from_parts(parts, body)));
            return Err(Unstored::Uncacheable);
        }
    };
    let vary = names
        .into_iter()
        .map(|n| {
            let v = policy::field_value(&request_headers, &n);
            (n, v)
        })
        .collect();
    let mut tags = plan
        .route
        .as_ref()
        .map(|r| r.tags.clone())
        .unwrap_or_default();
    tags.extend(header_tags(s, &parts.headers));
    match Stored::new(
        parts.status,
        &parts.headers,
        body.clone(),
        now,
        ttl,
        vary,
        tags,
        no_stale,
        s.tags_header.as_ref(),
    ) {
        Some(entry) => Ok(entry),
        None => {
            *pass = Some(Ok(Response::from_parts(parts, CacheBody::full(body))));
            Err(Unstored::Uncacheable)
        }
    }
}
