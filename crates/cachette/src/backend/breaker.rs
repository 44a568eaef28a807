//! A circuit breaker as a [`Backend`] wrapper.
//!
//! After `failures` consecutive backend failures (connection errors and timeouts) the circuit
//! **opens**: every call fails at once with [`ErrorKind::CircuitOpen`], in microseconds instead
//! of a timeout, so read-through callers run their loader uncached right away. After `open_for`
//! the next call is let through as a **half-open** probe (the others keep failing fast); its
//! success closes the circuit, its failure opens it for another `open_for`.
//!
//! Other errors (a wrong type, a decode error, bad input) say nothing about the backend's
//! health and neither count nor reset the failure streak.
//!
//! The closed path costs one relaxed atomic load per call (and one more after a failure).
//! The open path spends one unit of tokio's cooperative task budget per refused call, so a
//! task looping on refused calls yields now and then instead of starving the runtime.
//!
//! # Examples
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cachette::backend::{Backend, MemoryBackend, MemoryConfig};
//! use cachette::breaker::{BreakerPolicy, CircuitBreaker, CircuitState};
//!
//! let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new(MemoryConfig::default()));
//! let breaker = CircuitBreaker::new(inner, BreakerPolicy::new(5, Duration::from_secs(1)));
//! assert_eq!(breaker.state(), CircuitState::Closed);
//! ```

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::info::ServerInfo;
use crate::backend::{Backend, KeyTtl, ScanPage};
use crate::error::{Error, ErrorKind, Result};

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go through (also the state of a manager without a breaker).
    #[default]
    Closed,
    /// Calls fail at once with [`ErrorKind::CircuitOpen`].
    Open,
    /// One probe call is in flight; the others fail at once.
    HalfOpen,
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        })
    }
}

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BreakerPolicy {
    /// Consecutive failures (connection errors, timeouts) that open the circuit; `0` never
    /// opens it.
    pub failures: u32,
    /// How long the circuit stays open before a half-open probe.
    pub open_for: Duration,
}

impl BreakerPolicy {
    /// Opens after `failures` consecutive failures, for `open_for`.
    pub const fn new(failures: u32, open_for: Duration) -> Self {
        BreakerPolicy { failures, open_for }
    }
}

impl Default for BreakerPolicy {
    /// 5 consecutive failures, open for 1 s.
    fn default() -> Self {
        BreakerPolicy::new(5, Duration::from_secs(1))
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// A [`Backend`] that stops calling its inner backend after repeated failures.
///
/// Cheap to share; [`crate::CacheManagerBuilder::build`] wraps the Redis backend in one
/// (configured by [`crate::Config::breaker_failures`] and [`crate::Config::breaker_open`]),
/// and its state and counters appear in [`crate::CacheManager::stats`].
pub struct CircuitBreaker {
    inner: Arc<dyn Backend>,
    policy: BreakerPolicy,
    origin: Instant,
    state: AtomicU8,
    streak: AtomicU32,
    /// Milliseconds since `origin` at which an open circuit lets a probe through.
    retry_at: AtomicU64,
    opens: AtomicU64,
    short_circuits: AtomicU64,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, policy: BreakerPolicy) -> Self {
        CircuitBreaker {
            inner,
            policy,
            origin: Instant::now(),
            state: AtomicU8::new(CLOSED),
            streak: AtomicU32::new(0),
            retry_at: AtomicU64::new(0),
            opens: AtomicU64::new(0),
            short_circuits: AtomicU64::new(0),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// The policy.
    pub fn policy(&self) -> BreakerPolicy {
        self.policy
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match self.state.load(Ordering::Relaxed) {
            OPEN => CircuitState::Open,
            HALF_OPEN => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    /// How many times the circuit opened.
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// How many calls the open circuit refused.
    pub fn short_circuits(&self) -> u64 {
        self.short_circuits.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(self.policy.open_for.as_millis()).unwrap_or(u64::MAX));
        self.retry_at.store(until, Ordering::Relaxed);
        self.state.store(OPEN, Ordering::Release);
        self.opens.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            failures = self.policy.failures,
            open_for_ms = self.policy.open_for.as_millis() as u64,
            backend = self.inner.name(),
            "cachette: circuit breaker opened; cache calls fail fast"
        );
    }

    fn refuse(&self) -> Error {
        self.short_circuits.fetch_add(1, Ordering::Relaxed);
        Error::new(
            ErrorKind::CircuitOpen,
            format!(
                "circuit breaker open after {} consecutive {} failures",
                self.policy.failures,
                self.inner.name()
            ),
        )
    }

    /// Runs `fut` through the breaker (for callers holding the inner backend's concrete
    /// type); an open circuit drops it unpolled.
    /// Whether calls go straight through (closed, or never opening): the caller then awaits
    /// its operation itself and reports it with [`record_closed`](Self::record_closed),
    /// which keeps the operation's future out of a wrapper (and its copies).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // Not `failures == 0 ||`: `record_closed` would then open the circuit on the first
        // failure (`streak >= 0`); such a breaker is never built into the fast path anyway.
        self.policy.failures > 0 && self.state.load(Ordering::Acquire) == CLOSED
    }

    pub(crate) async fn guard<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.call(|| fut).await
    }

    /// Runs `op` through the breaker.
    async fn call<T, Fut>(&self, op: impl FnOnce() -> Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        if self.policy.failures == 0 {
            return op().await;
        }
        match self.state.load(Ordering::Acquire) {
            CLOSED => {
                let result = op().await;
                self.record_closed(&result);
                result
            }
            OPEN if self.now_ms() >= self.retry_at.load(Ordering::Relaxed)
                && self
                    .state
                    .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok() =>
            {
                // This call is the probe. If it is cancelled, the guard re-opens the circuit
                // with an immediate retry, so the breaker cannot stay half-open forever.
                let mut probe = Probe {
                    breaker: self,
                    done: false,
                };
                let result = op().await;
                probe.done = true;
                match &result {
                    Err(e) if counts(e) => self.open(),
                    _ => {
                        self.streak.store(0, Ordering::Relaxed);
                        self.state.store(CLOSED, Ordering::Release);
                        tracing::info!(
                            backend = self.inner.name(),
                            "cachette: circuit breaker closed"
                        );
                    }
                }
                result
            }
            _ => {
                // Refusing completes at once: without this, tasks looping on an open circuit
                // never yield, and can starve the runtime of the very task (a reconnect, the
                // probe's I/O, a timer) that would close it. Cooperates with tokio's task budget
                // (a no-op outside a tokio task).
                tokio::task::coop::consume_budget().await;
                Err(self.refuse())
            }
        }
    }

    pub(crate) fn record_closed<T>(&self, result: &Result<T>) {
        match result {
            Err(e) if counts(e) => {
                let streak = self
                    .streak
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if streak >= self.policy.failures
                    && self
                        .state
                        .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.streak.store(0, Ordering::Relaxed);
                    self.open();
                }
            }
            Err(_) => {}
            Ok(_) => {
                // Read first: a hot path that always succeeds never writes the shared line.
                if self.streak.load(Ordering::Relaxed) != 0 {
                    self.streak.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Only failures that say the backend is unhealthy trip the breaker (a failed TLS handshake
/// is one: no connection can be made).
fn counts(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Auth | ErrorKind::Tls
    )
}

struct Probe<'a> {
    breaker: &'a CircuitBreaker,
    done: bool,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.retry_at.store(0, Ordering::Relaxed);
            self.breaker.state.store(OPEN, Ordering::Release);
        }
    }
}

#[async_trait]
impl Backend for CircuitBreaker {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.call(|| self.inner.get(key)).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.call(|| self.inner.set(key, value, ttl)).await
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.call(|| self.inner.set_nx(key, value, ttl)).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        self.call(|| self.inner.delete_many(keys)).await
    }

    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        self.call(|| self.inner.delete_raw(keys)).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.call(|| self.inner.exists(key)).await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.call(|| self.inner.expire(key, ttl)).await
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        self.call(|| self.inner.persist(key)).await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.call(|| self.inner.ttl(key)).await
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        self.call(|| self.inner.scan(cursor, pattern, count)).await
    }

    async fn info(&self) -> Result<ServerInfo> {
        self.call(|| self.inner.info()).await
    }

    async fn ping(&self) -> Result<()> {
        self.call(|| self.inner.ping()).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.call(|| self.inner.delete(key)).await
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        self.call(|| self.inner.delete_if_equals(key, value)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.call(|| self.inner.get_many(keys)).await
    }

    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.call(|| self.inner.set_many(items, ttl)).await
    }

    async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        self.call(|| self.inner.keys(pattern)).await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        self.call(|| self.inner.delete_pattern(pattern)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::Faulty;

    fn flaky() -> Arc<Faulty> {
        Arc::new(Faulty::new())
    }

    /// Item 11: 64 tasks looping on an open circuit with no other await, on a 2-worker
    /// runtime, cannot starve the task that heals the backend (a timer, as a reconnect would
    /// be): the breaker closes soon after. Bounded: the loops stop after 5 s at most.
    #[test]
    fn a_loop_on_an_open_circuit_cannot_starve_the_task_that_heals_it() {
        use std::sync::atomic::AtomicBool;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let backend = flaky();
        let breaker = Arc::new(CircuitBreaker::new(
            backend.clone(),
            BreakerPolicy::new(1, Duration::from_millis(20)),
        ));
        backend.set_down(true);
        rt.block_on(async { assert!(breaker.get("k").await.is_err()) });
        assert_eq!(breaker.state(), CircuitState::Open);

        let started = Instant::now();
        let healer = backend.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            healer.set_down(false);
        });
        let stop = Arc::new(AtomicBool::new(false));
        let loops: Vec<_> = (0..64)
            .map(|_| {
                let (breaker, stop) = (breaker.clone(), stop.clone());
                rt.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = breaker.get("k").await;
                    }
                })
            })
            .collect();
        let deadline = started + Duration::from_secs(5);
        while breaker.state() != CircuitState::Closed && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let closed_after = started.elapsed();
        let closed = breaker.state() == CircuitState::Closed;
        stop.store(true, Ordering::Relaxed);
        for l in loops {
            rt.block_on(l).unwrap();
        }
        assert!(
            closed && closed_after < Duration::from_secs(2),
            "closed: {closed} after {closed_after:?}"
        );
    }

    #[tokio::test]
    async fn opens_after_k_failures_short_circuits_and_closes_after_probe() {
        let backend = flaky();
        let breaker = CircuitBreaker::new(
            backend.clone(),
            BreakerPolicy::new(3, Duration::from_millis(50)),
        );
        breaker
            .set("k", Bytes::from_static(b"1"), None)
            .await
            .unwrap();
        backend.set_down(true);
        for _ in 0..2 {
            assert!(breaker.get("k").await.unwrap_err().is_connection());
            assert_eq!(breaker.state(), CircuitState::Closed);
        }
        assert!(breaker.get("k").await.unwrap_err().is_connection());
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.opens(), 1);

        // Open: the inner backend is not called, and the refusal is fast.
        let calls = backend.calls.load(Ordering::SeqCst);
        let started = Instant::now();
        for _ in 0..1000 {
            let e = breaker.get("k").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::CircuitOpen);
        }
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(backend.calls.load(Ordering::SeqCst), calls);
        assert_eq!(breaker.short_circuits(), 1000);

        // Half-open probe fails: open again.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(breaker.get("k").await.unwrap_err().is_connection());
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.opens(), 2);

        // Backend back: the next probe closes the circuit.
        backend.set_down(false);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(breaker.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert!(breaker.get("k").await.is_ok());
    }

    #[tokio::test]
    async fn successes_reset_the_streak_and_other_errors_do_not_count() {
        let backend = flaky();
        let breaker = CircuitBreaker::new(
            backend.clone(),
            BreakerPolicy::new(2, Duration::from_secs(60)),
        );
        for _ in 0..5 {
            backend.set_down(true);
            assert!(breaker.get("k").await.is_err());
            backend.set_down(false);
            assert!(breaker.get("k").await.is_ok());
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        // An error that says nothing about health (bad input) does not trip it.
        assert!(breaker
            .call(|| async { Err::<(), _>(Error::invalid("bad")) })
            .await
            .is_err());
        assert!(breaker
            .call(|| async { Err::<(), _>(Error::invalid("bad")) })
            .await
            .is_err());
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn a_cancelled_probe_does_not_wedge_the_breaker() {
        let backend = flaky();
        let breaker = CircuitBreaker::new(
            backend.clone(),
            BreakerPolicy::new(1, Duration::from_millis(10)),
        );
        backend.set_down(true);
        assert!(breaker.get("k").await.is_err());
        assert_eq!(breaker.state(), CircuitState::Open);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The probe never completes and is dropped.
        let probe = breaker.call(std::future::pending::<Result<()>>);
        assert!(tokio::time::timeout(Duration::from_millis(10), probe)
            .await
            .is_err());
        assert_eq!(breaker.state(), CircuitState::Open);
        backend.set_down(false);
        assert!(breaker.get("k").await.is_ok());
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn zero_failures_never_opens() {
        let backend = flaky();
        let breaker = CircuitBreaker::new(
            backend.clone(),
            BreakerPolicy::new(0, Duration::from_secs(1)),
        );
        backend.set_down(true);
        for _ in 0..10 {
            assert!(breaker.get("k").await.unwrap_err().is_connection());
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
    }
}
