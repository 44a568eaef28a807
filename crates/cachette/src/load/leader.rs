//! The machinery behind every read-through call: reading an entry with its metadata, leading
//! a load (lease, loader with timeouts and panic capture, store, hand-over to waiters) and
//! refreshing early.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::load::coalesce::{Flight, Handoff, Lead, Shared};
use crate::load::fills::Fill;
use crate::load::lease::{recheck_interval, HeldLease};
use crate::load::meta::{Freshness, Meta};
use crate::load::refresh;
use crate::load::state::State;
use crate::load::tags::Versions;
use crate::load::{LoadError, LoadOptions, Outcome};
use crate::stats::Counters;

/// How a loader run ended.
pub(crate) enum Ran<T, E> {
    Value(T),
    Failed(E),
    Panicked(Box<dyn Any + Send + 'static>),
    TimedOut(Duration),
}

/// What a read found.
pub(crate) enum Read<T> {
    Fresh(T),
    Early(Bytes, T),
    Stale(T),
    Miss,
    Failed(Error),
}

/// Where a read-through call starts: to read the key inside the span given (a decorated
/// call's, made while it looked for a hit) or a new one, or after a first read (or the
/// refusal of its key) made by the caller.
pub(crate) enum Begin<T> {
    Read(Option<tracing::Span>),
    After(crate::Result<Read<T>>),
}

impl<T> Begin<T> {
    /// The same start with its value mapped.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Begin<U> {
        match self {
            Begin::Read(span) => Begin::Read(span),
            Begin::After(read) => Begin::After(read.map(|read| read.map(f))),
        }
    }
}

impl<T> Read<T> {
    /// The same read with its value mapped.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        match self {
            Read::Fresh(value) => Read::Fresh(f(value)),
            Read::Early(bytes, value) => Read::Early(bytes, f(value)),
            Read::Stale(value) => Read::Stale(f(value)),
            Read::Miss => Read::Miss,
            Read::Failed(e) => Read::Failed(e),
        }
    }
}

/// How waiting for a lease ended.
pub(crate) enum LeaseStep<T> {
    Acquired(HeldLease),
    /// The value appeared (stored by the lease holder).
    Ready(Bytes, T),
    /// The wait budget ran out.
    TimedOut,
    Failed(Error),
}

/// What tells a fill, around its store, that a write or eviction superseded it.
#[derive(Clone, Copy, Default)]
pub(crate) struct StoreGuard<'f, 'l> {
    /// This process's ticket (writes and evictions through this manager).
    pub(crate) fill: Option<&'f Fill<'f>>,
    /// The lease (`lock = true`): evictions in any process sharing the backend remove it.
    pub(crate) lease: Option<&'l HeldLease>,
    /// A tagged call's tag versions, read before its loader started (recorded with the value).
    pub(crate) tags: Option<&'l Versions>,
}

impl StoreGuard<'_, '_> {
    fn superseded(&self) -> bool {
        self.fill.is_some_and(Fill::superseded)
    }

    /// After a store: superseded in this process, or (with a lease) the lease is gone.
    async fn superseded_after_store(&self) -> bool {
        if self.superseded() {
            return true;
        }
        match self.lease {
            Some(lease) => !lease.still_held().await,
            None => false,
        }
    }
}

pub(crate) fn finish(lead: Option<Lead>, shared: Shared) {
    if let Some(lead) = lead {
        lead.finish(shared);
    }
}

/// One read-through call: its manager, key, options and counters.
pub(crate) struct Call<'a> {
    pub(crate) cache: &'a Arc<State>,
    /// The key with the manager's prefix (borrowed from a decorated call, which built it).
    pub(crate) full: Cow<'a, str>,
    pub(crate) options: &'a LoadOptions,
    pub(crate) counters: Option<&'a Counters>,
    /// A decorated function's call: how its failed outcome reaches its waiters.
    pub(crate) handoff: Option<&'a Handoff>,
}

impl Call<'_> {
    /// Counts on the manager and on the caller's counters.
    pub(crate) fn both(&self, count: impl Fn(&Counters)) {
        count(self.cache.counters());
        if let Some(c) = self.counters {
            count(c);
        }
    }

    /// Counts on the caller's counters only (the manager counted it already).
    pub(crate) fn mine(&self, count: impl Fn(&Counters)) {
        if let Some(c) = self.counters {
            count(c);
        }
    }

    pub(crate) async fn read<T: DeserializeOwned>(&self) -> Read<T> {
        let entry = match self
            .cache
            .read_entry(&self.full, self.options.needs_meta(), &self.options.tags)
            .await
        {
            Ok(Some(entry)) => entry,
            Ok(None) => return Read::Miss,
            Err(e) => return Read::Failed(e),
        };
        match self.cache.codec().decode::<T>(&self.full, &entry.bytes) {
            Ok(value) => match entry.freshness(self.options.beta) {
                Freshness::Fresh => Read::Fresh(value),
                Freshness::RefreshEarly => Read::Early(entry.bytes, value),
                Freshness::Stale if self.options.stale_ttl.is_some() => Read::Stale(value),
                Freshness::Stale => Read::Miss,
            },
            Err(e) => {
                // An undecodable value is a miss that gets overwritten.
                self.both(Counters::decode_error);
                tracing::warn!(error = %e, "cachette: treating an undecodable cached value as a miss");
                Read::Miss
            }
        }
    }

    /// A value at the key that is not stale, right now.
    pub(crate) async fn fresh<T: DeserializeOwned>(&self) -> crate::Result<Option<(Bytes, T)>> {
        let entry = self
            .cache
            .read_entry(&self.full, self.options.needs_meta(), &self.options.tags)
            .await?;
        Ok(entry
            .filter(|e| e.freshness(0.0) != Freshness::Stale)
            .and_then(|e| {
                let value = self.cache.codec().decode::<T>(&self.full, &e.bytes).ok()?;
                Some((e.bytes, value))
            }))
    }

    /// A second, uncounted look at the key by a call that just became the leader after a
    /// miss: the miss may have been read before another leader stored its value and ended its
    /// flight (the read and the join are not atomic), and loading again would run the loader
    /// twice. Costs one read per load, never one per hit. A failure is no value.
    pub(crate) async fn recheck<T: DeserializeOwned>(&self) -> Option<(Bytes, T)> {
        let entry = self
            .cache
            .fetch_entry(&self.full, self.options.needs_meta(), &self.options.tags)
            .await
            .ok()??;
        if entry.freshness(0.0) == Freshness::Stale {
            return None;
        }
        let value = self
            .cache
            .codec()
            .decode::<T>(&self.full, &entry.bytes)
            .ok()?;
        Some((entry.bytes, value))
    }

    /// Waits for a flight; `None` when the soft timeout passed first (with a stale copy).
    pub(crate) async fn wait_for(&self, flight: &Flight, has_stale: bool) -> Option<Shared> {
        match (has_stale, self.options.soft_timeout) {
            (true, Some(soft)) => tokio::time::timeout(soft, flight.wait()).await.ok(),
            _ => Some(flight.wait().await),
        }
    }

    pub(crate) fn serve_stale<T>(&self, value: T, why: &str) -> (T, Outcome) {
        self.both(Counters::stale_served);
        tracing::warn!(key = %self.full, reason = why, "cachette: serving a stale value");
        (value, Outcome::Stale)
    }

    /// Stores `bytes` with the options' TTL (jittered), metadata and tag versions; returns
    /// the bytes stored at the key (marked when tagged).
    pub(crate) async fn store(
        &self,
        bytes: Bytes,
        compute: Duration,
        tags: Option<&Versions>,
    ) -> crate::Result<Bytes> {
        let ttl = self
            .cache
            .resolve_ttl(self.options.ttl)?
            .map(|t| refresh::jitter(t, self.options.jitter_percent));
        let meta = match ttl {
            Some(ttl) if self.options.needs_meta() => Some((
                Meta {
                    expires_at_ms: refresh::unix_ms().saturating_add(refresh::ceil_ms(ttl)),
                    compute_ms: refresh::ceil_ms(compute),
                },
                self.options.stale_ttl.unwrap_or_default(),
            )),
            _ => None,
        };
        self.cache
            .write_entry(&self.full, bytes, ttl, meta, tags)
            .await
    }

    /// The tag versions a fill of a tagged call records, read before its loader starts
    /// (`Ok(None)` without tags).
    pub(crate) async fn snapshot(&self) -> crate::Result<Option<Versions>> {
        if self.options.tags.is_empty() {
            return Ok(None);
        }
        Box::pin(self.cache.snapshot_tags(&self.options.tags))
            .await
            .map(Some)
            .map_err(|e| e.with_key(&*self.full))
    }

    /// Runs the loader: panics caught, bounded by the hard timeout, the lease renewed.
    pub(crate) async fn run<T, E, Fut>(&self, fut: Fut, lease: Option<&HeldLease>) -> Ran<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let caught = AssertUnwindSafe(fut).catch_unwind();
        let renewed = async {
            match lease {
                None => caught.await,
                Some(lease) => {
                    let keep = async {
                        lease.keep_alive().await;
                        // Lost the lease: keep loading, without renewing.
                        std::future::pending().await
                    };
                    tokio::select! {
                        biased;
                        out = caught => out,
                        out = keep => out,
                    }
                }
            }
        };
        let out = match self.options.hard_timeout {
            Some(limit) => match tokio::time::timeout(limit, renewed).await {
                Ok(out) => out,
                Err(_) => return Ran::TimedOut(limit),
            },
            None => renewed.await,
        };
        match out {
            Ok(Ok(value)) => Ran::Value(value),
            Ok(Err(e)) => Ran::Failed(e),
            Err(payload) => Ran::Panicked(payload),
        }
    }

    /// Takes the key's lease, or waits (woken when it is released) until the value appears,
    /// the lease is free or the wait budget (`lock_wait`, or `stale_wait` when shorter) runs
    /// out.
    pub(crate) async fn acquire_or_wait<T: DeserializeOwned>(
        &self,
        stale_wait: Option<Duration>,
    ) -> LeaseStep<T> {
        let leases = self.cache.leases();
        let budget = stale_wait.map_or(self.options.lock_wait, |w| w.min(self.options.lock_wait));
        let deadline = Instant::now() + budget;
        let recheck = recheck_interval(self.options.lock_ttl);
        let mut listener = None;
        loop {
            if listener.is_some() {
                match self.fresh::<T>().await {
                    Ok(Some((bytes, value))) => return LeaseStep::Ready(bytes, value),
                    Ok(None) => {}
                    Err(e) => return LeaseStep::Failed(e),
                }
            }
            match leases
                .try_acquire(self.cache.backend(), &self.full, self.options.lock_ttl)
                .await
            {
                Ok(Some(lease)) => {
                    // The previous holder may have stored the value just before releasing.
                    return match self.fresh::<T>().await {
                        Ok(Some((bytes, value))) => {
                            lease.release_quietly().await;
                            LeaseStep::Ready(bytes, value)
                        }
                        _ => LeaseStep::Acquired(lease),
                    };
                }
                Ok(None) => {}
                Err(e) => return LeaseStep::Failed(e),
            }
            match listener.as_mut() {
                None => {
                    // Register before checking the value again, so a release in between
                    // wakes us.
                    listener = Some(leases.listen(&self.full).await);
                }
                Some(listener) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return LeaseStep::TimedOut;
                    }
                    listener.wait(recheck.min(deadline - now)).await;
                }
            }
        }
    }

    /// Runs the loader for this key (holding the flight `lead` and, with `lock`, the lease),
    /// stores its value and hands the outcome to the waiters.
    pub(crate) async fn lead<T, E, F, Fut>(
        &self,
        lead: Option<Lead>,
        load: F,
        store_if: impl FnOnce(&T) -> bool,
        stale: Option<T>,
        mut fallback: bool,
    ) -> Result<(T, Outcome), LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut lease = None;
        if self.options.lock && !fallback {
            let stale_wait = if stale.is_some() {
                self.options.soft_timeout
            } else {
                None
            };
            match self.acquire_or_wait::<T>(stale_wait).await {
                LeaseStep::Acquired(held) => lease = Some(held),
                LeaseStep::Ready(bytes, value) => {
                    finish(lead, Shared::Value(bytes));
                    self.both(Counters::coalesced);
                    return Ok((value, Outcome::Coalesced));
                }
                LeaseStep::TimedOut => match stale {
                    Some(value) => {
                        let why = "another process's reload did not finish in time";
                        finish(lead, Shared::failed(ErrorKind::Timeout, why));
                        return Ok(self.serve_stale(value, why));
                    }
                    None => tracing::debug!(
                        key = %self.full,
                        "cachette: lease wait exceeded; loading without the lease"
                    ),
                },
                LeaseStep::Failed(e) => {
                    self.mine(Counters::error);
                    if !self.options.fallback_on_error {
                        finish(lead, Shared::failed(e.kind(), e.to_string()));
                        return Err(LoadError::Cache(e));
                    }
                    tracing::warn!(error = %e, "cachette: cache failed while locking; running uncached");
                    fallback = true;
                }
            }
        }
        // A tagged fill records the tag versions current before its loader starts.
        let mut versions = None;
        if !fallback {
            match self.snapshot().await {
                Ok(v) => versions = v,
                Err(e) => {
                    self.mine(Counters::error);
                    if !self.options.fallback_on_error {
                        finish(lead, Shared::failed(e.kind(), e.to_string()));
                        if let Some(lease) = lease {
                            lease.release().await;
                        }
                        return Err(LoadError::Cache(e));
                    }
                    tracing::warn!(error = %e, "cachette: cannot read the tag versions; running uncached");
                    fallback = true;
                }
            }
        }
        if fallback {
            self.both(Counters::fallback);
        }
        // Registered before the loader starts: a write or eviction of the key from now on
        // supersedes this fill (see the `fills` module).
        let fill = (!fallback).then(|| self.cache.fills().start(&self.full));
        let started = Instant::now();
        let ran = self.run(load(), lease.as_ref()).await;
        let compute = started.elapsed();
        let (result, shared) = match ran {
            Ran::Value(value) => {
                let guard = StoreGuard {
                    fill: fill.as_ref(),
                    lease: lease.as_ref(),
                    tags: versions.as_ref(),
                };
                self.settle(value, store_if, compute, fallback, lead.is_some(), guard)
                    .await
            }
            Ran::Failed(e) => {
                self.both(Counters::loader_error);
                let shared = Shared::Failed {
                    kind: ErrorKind::Loader,
                    message: "the loader failed in a concurrent call for this key".into(),
                    payload: self.handoff.and_then(|h| h.outgoing.lock().take()),
                };
                match stale {
                    Some(value) => (Ok(self.serve_stale(value, "the loader failed")), shared),
                    None => (Err(LoadError::Loader(e)), shared),
                }
            }
            Ran::TimedOut(limit) => {
                self.both(Counters::loader_timeout);
                let e = Error::timeout("the loader", limit).with_key(&*self.full);
                let shared = Shared::failed(ErrorKind::Timeout, e.to_string());
                match stale {
                    Some(value) => (Ok(self.serve_stale(value, "the loader timed out")), shared),
                    None => (Err(LoadError::Cache(e)), shared),
                }
            }
            Ran::Panicked(payload) => {
                self.both(Counters::loader_error);
                finish(
                    lead,
                    Shared::failed(
                        ErrorKind::Loader,
                        "the loader panicked in a concurrent call for this key",
                    ),
                );
                if let Some(lease) = lease {
                    lease.release().await;
                }
                std::panic::resume_unwind(payload);
            }
        };
        finish(lead, shared);
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    }

    /// Stores a loaded value (unless `fallback` or the filter says no, or a write or eviction
    /// of the key superseded the fill) and prepares what the waiters get (`share`: there may
    /// be waiters).
    pub(crate) async fn settle<T, E>(
        &self,
        value: T,
        store_if: impl FnOnce(&T) -> bool,
        compute: Duration,
        fallback: bool,
        share: bool,
        guard: StoreGuard<'_, '_>,
    ) -> (Result<(T, Outcome), LoadError<E>>, Shared)
    where
        T: Serialize,
    {
        let store = !fallback && store_if(&value);
        let unstored = if fallback {
            Outcome::Fallback
        } else {
            Outcome::NotStored
        };
        if !store && !share {
            return (Ok((value, unstored)), Shared::Abandoned);
        }
        let bytes = match self.cache.codec().encode(&self.full, &value) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                let shared = Shared::failed(e.kind(), e.to_string());
                if !store {
                    return (Ok((value, unstored)), shared);
                }
                self.mine(Counters::error);
                if !self.options.fallback_on_error {
                    return (Err(LoadError::Cache(e)), shared);
                }
                tracing::warn!(error = %e, "cachette: cannot encode the value; returning it uncached");
                return (Ok((value, Outcome::Fallback)), shared);
            }
        };
        let shared = Shared::Value(bytes.clone());
        if !store {
            return (Ok((value, unstored)), shared);
        }
        if guard.superseded() {
            // Its callers and waiters still get the value; the cache keeps the write.
            tracing::debug!(key = %self.full, "cachette: a write or eviction superseded this fill; not storing");
            return (Ok((value, Outcome::NotStored)), shared);
        }
        if !self.options.tags.is_empty() && guard.tags.is_none() {
            // Never store a tagged call's value without its tag versions.
            return (Ok((value, Outcome::NotStored)), shared);
        }
        match self.store(bytes.clone(), compute, guard.tags).await {
            Ok(stored) => {
                self.mine(|c| c.write(1));
                if guard.superseded_after_store().await {
                    // Superseded while storing: remove our value (only if it is still ours).
                    tracing::debug!(key = %self.full, "cachette: a write or eviction superseded this fill while it stored; removing its value");
                    if let Err(e) = self
                        .cache
                        .backend()
                        .delete_if_equals(&self.full, &stored)
                        .await
                    {
                        tracing::warn!(error = %e, key = %self.full, "cachette: could not remove a superseded value");
                    }
                    return (Ok((value, Outcome::NotStored)), shared);
                }
                (Ok((value, Outcome::Miss)), shared)
            }
            Err(e) => {
                self.mine(Counters::error);
                if !self.options.fallback_on_error {
                    return (Err(LoadError::Cache(e)), shared);
                }
                tracing::warn!(error = %e, "cachette: cache write failed; returning the uncached value");
                self.both(Counters::fallback);
                (Ok((value, Outcome::Fallback)), shared)
            }
        }
    }

    /// XFetch drew this caller: refresh the (still fresh) value now, unless another caller or
    /// process is already refreshing it. `None`: keep the cached value.
    pub(crate) async fn refresh_early<T, E, F, Fut>(
        &self,
        cached_bytes: Bytes,
        store_if: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<Option<(T, Outcome)>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let lead = if self.options.coalesce {
            match self.cache.flights().try_lead(&self.full) {
                Some(lead) => Some(lead),
                None => return Ok(None),
            }
        } else {
            None
        };
        self.refresh_early_led(lead, cached_bytes, store_if, load)
            .await
    }

    /// [`refresh_early`](Self::refresh_early) once the flight is led (or coalescing is off).
    pub(crate) async fn refresh_early_led<T, E, F, Fut>(
        &self,
        lead: Option<Lead>,
        cached_bytes: Bytes,
        store_if: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<Option<(T, Outcome)>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut lease = None;
        if self.options.lock {
            match self
                .cache
                .leases()
                .try_acquire(self.cache.backend(), &self.full, self.options.lock_ttl)
                .await
            {
                Ok(Some(held)) => lease = Some(held),
                // Another process is refreshing (or the cache fails): keep the cached value.
                _ => return Ok(None),
            }
        }
        let versions = match self.snapshot().await {
            Ok(versions) => versions,
            Err(e) => {
                // Keep the cached value rather than store one without its tags.
                tracing::warn!(error = %e, "cachette: cannot read the tag versions; keeping the cached value");
                finish(lead, Shared::Value(cached_bytes));
                if let Some(lease) = lease {
                    lease.release().await;
                }
                return Ok(None);
            }
        };
        self.both(Counters::early_refresh);
        let fill = self.cache.fills().start(&self.full);
        let started = Instant::now();
        let ran = self.run(load(), lease.as_ref()).await;
        let compute = started.elapsed();
        // Callers that joined the flight meanwhile get the new value, or the still valid old one.
        let (result, shared) = match ran {
            Ran::Value(value) => {
                let guard = StoreGuard {
                    fill: Some(&fill),
                    lease: lease.as_ref(),
                    tags: versions.as_ref(),
                };
                let (result, shared) = self
                    .settle(value, store_if, compute, false, lead.is_some(), guard)
                    .await;
                let result = result.map(|(v, o)| match o {
                    Outcome::Miss => Some((v, Outcome::Refreshed)),
                    o => Some((v, o)),
                });
                (result, shared)
            }
            Ran::Failed(_) => {
                self.both(Counters::loader_error);
                tracing::warn!(key = %self.full, "cachette: early refresh failed; keeping the cached value");
                (Ok(None), Shared::Value(cached_bytes))
            }
            Ran::TimedOut(_) => {
                self.both(Counters::loader_timeout);
                tracing::warn!(key = %self.full, "cachette: early refresh timed out; keeping the cached value");
                (Ok(None), Shared::Value(cached_bytes))
            }
            Ran::Panicked(payload) => {
                self.both(Counters::loader_error);
                finish(lead, Shared::Value(cached_bytes));
                if let Some(lease) = lease {
                    lease.release().await;
                }
                std::panic::resume_unwind(payload);
            }
        };
        finish(lead, shared);
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    }
}
