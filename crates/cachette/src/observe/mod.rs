//! Observability that attaches to a manager from outside: the stats publisher (counters of
//! every process in Redis, read by `cachette stats`) and the `metrics` facade. The manager
//! never names these types; they name it.

#[cfg(feature = "metrics")]
pub mod metrics;
pub mod publish;
