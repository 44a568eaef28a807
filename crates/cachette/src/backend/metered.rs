//! [`MeteredBackend`]: a backend wrapper that records each operation's latency and outcome
//! through the `metrics` facade (crate feature `metrics`). Re-exported as
//! `cachette::metrics::MeteredBackend`; see that module for the metric names.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::{Key, Label, Metadata, SharedString};
use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::info::ServerInfo;
use crate::backend::{Backend, KeyTtl, ScanPage};
use crate::error::{ErrorKind, Result};

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
