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
//! - [`MeteredBackend`] wraps a [`Backend`](crate::Backend) and records, per operation, the backend latency
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
//! | `cachette_near_hits_total`, `_misses_total`, `_invalidations_total`, `_flushes_total`, `_discarded_total`, `_evictions_total` | counter | `namespace` (managers with a near cache) |
//! | `cachette_near_entries`, `cachette_near_bytes` | gauge | `namespace` |
//! | `cachette_near_live` | gauge (1 while the invalidation channel vouches for the tier) | `namespace` |
//! | `cachette_near_refused` | gauge (1 while the server refuses the invalidation channel: the near cache is off) | `namespace` |
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
use std::time::Duration;

use ::metrics::{counter, gauge};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
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

/// The near cache's counters and sizes, labelled with the manager's namespace.
fn emit_near(namespace: String, near: &crate::NearStats) {
    for (name, value) in [
        ("cachette_near_hits_total", near.hits),
        ("cachette_near_misses_total", near.misses),
        ("cachette_near_invalidations_total", near.invalidations),
        ("cachette_near_flushes_total", near.flushes),
        ("cachette_near_discarded_total", near.discarded),
        ("cachette_near_evictions_total", near.evictions),
    ] {
        counter!(name, "namespace" => namespace.clone()).absolute(value);
    }
    gauge!("cachette_near_entries", "namespace" => namespace.clone()).set(near.entries as f64);
    gauge!("cachette_near_bytes", "namespace" => namespace.clone()).set(near.bytes as f64);
    gauge!("cachette_near_live", "namespace" => namespace.clone()).set(if near.live {
        1.0
    } else {
        0.0
    });
    gauge!("cachette_near_refused", "namespace" => namespace).set(if near.refused {
        1.0
    } else {
        0.0
    });
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
            counter!("cachette_circuit_opens_total", "namespace" => namespace.clone())
                .absolute(stats.circuit_opens);
            if let Some(near) = m.near_stats() {
                emit_near(namespace, &near);
            }
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

pub use crate::backend::metered::{metered, MeteredBackend};

impl crate::CacheManagerBuilder {
    /// `true`: the backend records the latency, payload size and errors of every operation
    /// through the `metrics` facade (crate feature `metrics`; default `false`): it is wrapped
    /// in a [`MeteredBackend`] labelled with this manager's namespace (its key prefix), through
    /// [`wrap_backend`](crate::CacheManagerBuilder::wrap_backend) under the name `"metrics"`.
    /// That costs a clock read, a histogram sample and a boxed future per operation, so it is
    /// opt-in; the hit/miss/... counters reach the recorder through [`MetricsReporter`] either
    /// way, at no cost to cache calls.
    pub fn metrics(self, on: bool) -> Self {
        if on {
            self.wrap_backend("metrics", |backend, config| {
                std::sync::Arc::new(MeteredBackend::with_namespace(backend, &config.key_prefix))
            })
        } else {
            self.unwrap_backend("metrics")
        }
    }
}
