//! Counters and histograms through the [`metrics`](https://docs.rs/metrics) facade (crate
//! feature `metrics`): install any recorder (Prometheus, StatsD, OpenTelemetry, ...) and
//! cachette's figures appear there. Labels are the function and the namespace (key prefix)
//! only, never a key, so the number of series stays bounded.
//!
//! Two pieces, both opt-in:
//!
//! - [`MetricsReporter`] copies the counters cachette keeps anyway (per decorated function,
//!   [`crate::runtime::function_stats`], and per [`CacheManager`] you add) into the recorder as
//!   absolute counters, every interval (default 1 s) or when asked ([`MetricsReporter::report`],
//!   e.g. right before rendering a scrape). Cache calls pay nothing for it.
//! - [`MeteredBackend`] wraps a [`Backend`] and records, per operation, the backend latency
//!   and the payload size (a histogram each), and backend errors by kind. A manager wraps its
//!   own backend in one with [`CacheManagerBuilder::metrics`](crate::CacheManagerBuilder::metrics)`(true)`
//!   (a clock read, a histogram sample and a boxed future per operation).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cachette_hits_total` | counter | `function` or `namespace` |
//! | `cachette_misses_total` | counter | same |
//! | `cachette_writes_total` | counter | same |
//! | `cachette_errors_total` | counter | same |
//! | `cachette_decode_errors_total` | counter | same |
//! | `cachette_stale_hits_total` | counter | same (stale values served) |
//! | `cachette_coalesced_waits_total` | counter | same |
//! | `cachette_early_refreshes_total` | counter | same |
//! | `cachette_fallbacks_total` | counter | same |
//! | `cachette_loader_errors_total` | counter | same |
//! | `cachette_loader_timeouts_total` | counter | same |
//! | `cachette_evicted_total` | counter | `function` |
//! | `cachette_circuit_open` | gauge (0, 0.5 half-open, 1) | `namespace` |
//! | `cachette_circuit_opens_total` | counter | `namespace` |
//! | `cachette_backend_latency_seconds` | histogram | `backend`, `op`, `namespace` |
//! | `cachette_payload_bytes` | histogram | `backend`, `op` (`get` hits and `set`s), `namespace` |
//! | `cachette_backend_errors_total` | counter | `backend`, `op`, `kind`, `namespace` |
//!
//! (`namespace` on the backend series when the manager built the [`MeteredBackend`], or
//! with [`MeteredBackend::with_namespace`].)
//!
//! A `namespace` series counts every call through that manager, the calls of decorated
//! functions that use it included; a `function` series counts that function's calls only.
//! Tracing: every read-through call (`get_or_load`, `#[cached]`) runs in a `debug` span named
//! `cachette.load` that records its outcome; failures are logged with `tracing::warn!`.
//!
//! # Examples
//!
//! See `examples/metrics_prometheus.rs` (Prometheus text format).
//!
//! ```
//! use std::time::Duration;
//! use cachette::metrics::MetricsReporter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cachette::Error> {
//! let cache = cachette::CacheManager::memory();
//! let reporter = MetricsReporter::new()
//!     .manager(&cache) // labelled namespace="cache:"
//!     .start(Duration::from_secs(1))?;
//! reporter.report(); // also on demand
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::{counter, gauge, Key, Label, Metadata, SharedString};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::backend::{Backend, KeyTtl, ScanPage};
use crate::error::{Error, ErrorKind, Result};
use crate::info::ServerInfo;
use crate::manager::CacheManager;
use crate::stats::{CircuitState, Stats};

/// Copies cachette's counters into the installed `metrics` recorder.
#[derive(Clone, Default)]
#[must_use]
pub struct MetricsReporter {
    functions: bool,
    managers: Vec<CacheManager>,
}

impl fmt::Debug for MetricsReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsReporter")
            .field("functions", &self.functions)
            .field("managers", &self.managers.len())
            .finish()
    }
}

/// A running [`MetricsReporter`]; dropping it stops the background task.
#[derive(Debug)]
pub struct RunningReporter {
    reporter: MetricsReporter,
    task: JoinHandle<()>,
}

impl RunningReporter {
    /// Reports now (for example right before a scrape is rendered).
    pub fn report(&self) {
        self.reporter.report();
    }
}

impl Drop for RunningReporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsReporter {
    /// A reporter of every decorated function's counters.
    pub fn new() -> Self {
        MetricsReporter {
            functions: true,
            managers: Vec::new(),
        }
    }

    /// Whether to report decorated functions (default `true`).
    pub fn functions(mut self, on: bool) -> Self {
        self.functions = on;
        self
    }

    /// Also reports `manager`'s own counters and circuit breaker, labelled with its prefix.
    pub fn manager(mut self, manager: &CacheManager) -> Self {
        self.managers.push(manager.clone());
        self
    }

    /// Sets every counter to its current total in the installed recorder.
    pub fn report(&self) {
        if self.functions {
            for f in crate::runtime::function_stats() {
                emit("function", f.name.clone(), &f.stats);
                counter!("cachette_evicted_total", "function" => f.name).absolute(f.evicted);
            }
        }
        for m in &self.managers {
            let stats = m.stats();
            let namespace = m.prefix().to_owned();
            emit("namespace", namespace.clone(), &stats);
            let open = match stats.circuit {
                CircuitState::Open => 1.0,
                CircuitState::HalfOpen => 0.5,
                _ => 0.0,
            };
            gauge!("cachette_circuit_open", "namespace" => namespace.clone()).set(open);
            counter!("cachette_circuit_opens_total", "namespace" => namespace)
                .absolute(stats.circuit_opens);
        }
    }

    /// Reports every `interval` in a background task (and once right away).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] outside a tokio runtime.
    pub fn start(self, interval: Duration) -> Result<RunningReporter> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "a MetricsReporter must be started inside a tokio runtime",
            )
        })?;
        let reporter = self.clone();
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                reporter.report();
            }
        });
        Ok(RunningReporter {
            reporter: self,
            task,
        })
    }
}

fn emit(label: &'static str, value: String, s: &Stats) {
    let pairs: [(&'static str, u64); 11] = [
        ("cachette_hits_total", s.hits),
        ("cachette_misses_total", s.misses),
        ("cachette_writes_total", s.writes),
        ("cachette_errors_total", s.errors),
        ("cachette_decode_errors_total", s.decode_errors),
        ("cachette_stale_hits_total", s.stale_served),
        ("cachette_coalesced_waits_total", s.coalesced),
        ("cachette_early_refreshes_total", s.early_refreshes),
        ("cachette_fallbacks_total", s.fallbacks),
        ("cachette_loader_errors_total", s.loader_errors),
        ("cachette_loader_timeouts_total", s.loader_timeouts),
    ];
    for (name, total) in pairs {
        counter!(name, label => value.clone()).absolute(total);
    }
}

/// The operations a [`MeteredBackend`] labels (`op`), in [`OpKeys`] order.
const OPS: [&str; 16] = [
    "get",
    "set",
    "set_nx",
    "delete",
    "exists",
    "expire",
    "persist",
    "ttl",
    "scan",
    "info",
    "ping",
    "delete_if_equals",
    "get_many",
    "set_many",
    "keys",
    "delete_pattern",
];

/// The position of `op` in [`OPS`], `OPS.len()` if absent (evaluated at compile time by
/// [`metered!`], which rejects an unknown operation).
const fn op_index(op: &str) -> usize {
    let mut i = 0;
    while i < OPS.len() {
        let (a, b) = (OPS[i].as_bytes(), op.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    OPS.len()
}

/// The metric keys of one [`MeteredBackend`], built once: recording a sample then hashes a
/// prepared key instead of allocating labels per call.
struct OpKeys {
    backend: &'static str,
    namespace: Option<SharedString>,
    latency: Vec<Key>,
    payload_get: Key,
    payload_set: Key,
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl OpKeys {
    fn new(backend: &'static str, namespace: Option<&str>) -> OpKeys {
        let namespace: Option<SharedString> = namespace.map(|n| SharedString::from(n.to_owned()));
        let labels = |op: &'static str| {
            let mut labels = vec![
                Label::from_static_parts("backend", backend),
                Label::from_static_parts("op", op),
            ];
            if let Some(ns) = &namespace {
                labels.push(Label::new("namespace", ns.clone()));
            }
            labels
        };
        OpKeys {
            backend,
            latency: OPS
                .iter()
                .map(|op| Key::from_parts("cachette_backend_latency_seconds", labels(op)))
                .collect(),
            payload_get: Key::from_parts("cachette_payload_bytes", labels("get")),
            payload_set: Key::from_parts("cachette_payload_bytes", labels("set")),
            namespace,
        }
    }

    fn error_key(&self, op: &'static str, kind: ErrorKind) -> Key {
        let mut labels = vec![
            Label::from_static_parts("backend", self.backend),
            Label::from_static_parts("op", op),
            Label::new("kind", kind.to_string()),
        ];
        if let Some(ns) = &self.namespace {
            labels.push(Label::new("namespace", ns.clone()));
        }
        Key::from_parts("cachette_backend_errors_total", labels)
    }
}

fn record(key: &Key, value: f64) {
    ::metrics::with_recorder(|r| r.register_histogram(key, &METADATA)).record(value);
}

/// A [`Backend`] wrapper that records latency, payload size and errors of every operation.
///
/// A manager built with [`crate::CacheManagerBuilder::metrics`]`(true)` wraps its own backend
/// in one, labelled with its namespace (the key prefix).
/// Wrap a backend of your own with [`MeteredBackend::new`] (no namespace label) or
/// [`MeteredBackend::with_namespace`] and give it to [`crate::CacheManagerBuilder::backend`].
pub struct MeteredBackend<B> {
    inner: B,
    keys: OpKeys,
}

impl<B: Backend> fmt::Debug for MeteredBackend<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredBackend")
            .field("inner", &self.inner)
            .field("namespace", &self.keys.namespace.as_deref())
            .finish()
    }
}

impl<B: Backend> MeteredBackend<B> {
    /// Wraps `inner`; its series are labelled `backend` and `op`.
    pub fn new(inner: B) -> Self {
        let keys = OpKeys::new(inner.name(), None);
        MeteredBackend { inner, keys }
    }

    /// Wraps `inner`; its series are labelled `backend`, `op` and `namespace`.
    pub fn with_namespace(inner: B, namespace: &str) -> Self {
        let keys = OpKeys::new(inner.name(), Some(namespace));
        MeteredBackend { inner, keys }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn observe<T>(&self, op: &'static str, index: usize, started: Instant, result: &Result<T>) {
        record(&self.keys.latency[index], started.elapsed().as_secs_f64());
        if let Err(e) = result {
            let key = self.keys.error_key(op, e.kind());
            ::metrics::with_recorder(|r| r.register_counter(&key, &METADATA)).increment(1);
        }
    }

    fn payload(&self, op: &'static str, bytes: usize) {
        let key = if op == "get" {
            &self.keys.payload_get
        } else {
            &self.keys.payload_set
        };
        record(key, bytes as f64);
    }
}

/// Times `$call`, records it under `$op`, returns its result.
macro_rules! metered {
    ($self:ident, $op:literal, $call:expr) => {{
        const INDEX: usize = op_index($op);
        const _: () = assert!(INDEX < OPS.len(), "unknown metered operation");
        let started = Instant::now();
        let result = $call.await;
        $self.observe($op, INDEX, started, &result);
        result
    }};
}

#[async_trait]
impl<B: Backend> Backend for MeteredBackend<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let result = metered!(self, "get", self.inner.get(key));
        if let Ok(Some(v)) = &result {
            self.payload("get", v.len());
        }
        result
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.payload("set", value.len());
        metered!(self, "set", self.inner.set(key, value, ttl))
    }

    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.payload("set", value.len());
        metered!(self, "set_nx", self.inner.set_nx(key, value, ttl))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        metered!(self, "delete", self.inner.delete_many(keys))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        metered!(self, "exists", self.inner.exists(key))
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        metered!(self, "expire", self.inner.expire(key, ttl))
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        metered!(self, "persist", self.inner.persist(key))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        metered!(self, "ttl", self.inner.ttl(key))
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        metered!(self, "scan", self.inner.scan(cursor, pattern, count))
    }

    async fn info(&self) -> Result<ServerInfo> {
        metered!(self, "info", self.inner.info())
    }

    async fn ping(&self) -> Result<()> {
        metered!(self, "ping", self.inner.ping())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        metered!(self, "delete", self.inner.delete(key))
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        metered!(
            self,
            "delete_if_equals",
            self.inner.delete_if_equals(key, value)
        )
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let result = metered!(self, "get_many", self.inner.get_many(keys));
        if let Ok(values) = &result {
            for v in values.iter().flatten() {
                self.payload("get", v.len());
            }
        }
        result
    }

    async fn set_many(&self, items: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (_, v) in items {
            self.payload("set", v.len());
        }
        metered!(self, "set_many", self.inner.set_many(items, ttl))
    }

    async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        metered!(self, "keys", self.inner.keys(pattern))
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        metered!(self, "delete_pattern", self.inner.delete_pattern(pattern))
    }

    async fn delete_raw(&self, keys: &[Vec<u8>]) -> Result<u64> {
        // Counted as `delete`, like `delete_many`: the same operation on keys that are not UTF-8.
        metered!(self, "delete", self.inner.delete_raw(keys))
    }
}

impl<B: Backend> From<B> for MeteredBackend<B> {
    fn from(inner: B) -> Self {
        MeteredBackend::new(inner)
    }
}

/// A shared [`MeteredBackend`] for [`crate::CacheManagerBuilder::backend`].
pub fn metered<B: Backend>(inner: B) -> Arc<dyn Backend> {
    Arc::new(MeteredBackend::new(inner))
}
