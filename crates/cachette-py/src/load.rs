//! The read-through call behind `@cached`: [`cachette::CacheManager::get_or_load_traced`]
//! with the decorated function's coroutine as the loader.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use cachette::stats::Counters;
use cachette::{LoadError, LoadOptions};

use crate::bridge::{Abort, Bridge, Failure, Reply};
use crate::manager::{stats_dict, ttl_of, Manager};

/// A cached value: its JSON text as stored, and on the caller that ran the loader the Python
/// object itself (returned as is, not decoded again) and whether `unless` lets it be stored.
struct PyJson {
    raw: Box<RawValue>,
    obj: Option<Py<PyAny>>,
    store: bool,
}

impl Serialize for PyJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PyJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PyJson {
            raw: Box::<RawValue>::deserialize(d)?,
            obj: None,
            store: true,
        })
    }
}

/// The options of one decorated function ([`cachette::LoadOptions`]).
#[pyclass(frozen, module = "cachette._cachette")]
pub(crate) struct Options {
    options: Arc<LoadOptions>,
}

fn secs(name: &str, v: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| PyValueError::new_err(format!("invalid {name}: {v}")))
}

#[pymethods]
impl Options {
    #[new]
    #[pyo3(signature = (ttl=None, fallback_on_error=true, coalesce=true, lock=false, lock_ttl=None, lock_wait=None, early_refresh=0.0, stale_ttl=None, soft_timeout=None, hard_timeout=None, jitter=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ttl: Option<&Bound<'_, PyAny>>,
        fallback_on_error: bool,
        coalesce: bool,
        lock: bool,
        lock_ttl: Option<f64>,
        lock_wait: Option<f64>,
        early_refresh: f64,
        stale_ttl: Option<f64>,
        soft_timeout: Option<f64>,
        hard_timeout: Option<f64>,
        jitter: u8,
    ) -> PyResult<Self> {
        let mut o = LoadOptions::new()
            .with_ttl(ttl_of(ttl)?)
            .fallback_on_error(fallback_on_error)
            .coalesce(coalesce)
            .lock(lock)
            .early_refresh(early_refresh)
            .jitter_percent(jitter);
        if let Some(v) = lock_ttl {
            o = o.lock_ttl(secs("lock_ttl", v)?);
        }
        if let Some(v) = lock_wait {
            o = o.lock_wait(secs("lock_wait", v)?);
        }
        if let Some(v) = stale_ttl {
            o = o.stale_ttl(secs("stale_ttl", v)?);
        }
        if let Some(v) = soft_timeout {
            o = o.soft_timeout(secs("soft_timeout", v)?);
        }
        if let Some(v) = hard_timeout {
            o = o.hard_timeout(secs("hard_timeout", v)?);
        }
        Ok(Options {
            options: Arc::new(o),
        })
    }
}

/// Hit/miss counters of one decorated function.
#[pyclass(frozen, module = "cachette._cachette")]
#[derive(Default)]
pub(crate) struct FnStats {
    counters: Arc<Counters>,
}

#[pymethods]
impl FnStats {
    #[new]
    fn new() -> Self {
        FnStats::default()
    }

    /// The counters as a dict.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.counters.snapshot())
    }

    /// Sets every counter to 0.
    fn reset(&self) {
        self.counters.reset();
    }
}

/// `load(manager, bridge, key, options, stats, factory)`: the value at `key`, or the value
/// of `await factory()` (a coroutine returning `(value, json_text_or_None, store)`), stored
/// when `store` is true. Returns `(future, abort)`: an `asyncio.Future`, and an `Abort` to
/// call if the caller is cancelled while awaiting it (`None` when the future is already done).
#[pyfunction]
pub(crate) fn load<'py>(
    py: Python<'py>,
    manager: &Manager,
    bridge: &Bridge,
    key: String,
    options: &Options,
    stats: &FnStats,
    factory: Py<PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Option<Abort>)> {
    let m = manager.core()?;
    let options = Arc::clone(&options.options);
    let counters = Arc::clone(&stats.counters);
    let loaders = bridge.loaders();
    bridge.spawn_abortable(py, async move {
        let result = m
            .get_or_load_traced(
                &key,
                &options,
                Some(&counters),
                |v: &PyJson| v.store,
                || async move {
                    // Only a miss gets here: the function runs as a task of the caller's loop.
                    let out = loaders.start(factory).wait().await?;
                    let raw = match out.json {
                        Some(raw) => raw,
                        // No JSON form: handed to this caller, never stored.
                        None => RawValue::from_string("null".to_owned())
                            .map_err(|e| PyValueError::new_err(format!("invalid JSON: {e}")))?,
                    };
                    Ok::<_, PyErr>(PyJson {
                        raw,
                        obj: Some(out.obj),
                        store: out.store,
                    })
                },
            )
            .await;
        match result {
            Ok((v, _)) => Ok(match v.obj {
                Some(obj) => Reply::Obj(obj),
                None => Reply::Json(bytes::Bytes::from(v.raw.get().as_bytes().to_vec())),
            }),
            Err(LoadError::Loader(e)) => Err(Failure::Py(e)),
            Err(LoadError::Cache(e)) => Err(Failure::Cache(e)),
        }
    })
}
