//! `_cachette.Manager`: a [`cachette::CacheManager`] for Python, rebuilt in a forked child.
//!
//! Every operation takes the [`Bridge`] of the running loop and returns an `asyncio.Future`;
//! values cross as JSON text (the Python side encodes with `json.dumps` and decodes with
//! `json.loads`), stored as is, so the Rust crate, redis-cli and Python read the same bytes.

use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString};
use serde_json::value::RawValue;

use cachette::{CacheManager, Config, KeyTtl, Ttl};

use crate::bridge::{Bridge, Failure, Reply};
use crate::errors::{snake, to_py_err};
use crate::rt::runtime;

/// How the manager was asked for, to build it again after a `fork()`.
#[derive(Clone)]
struct Spec {
    redis_url: Option<String>,
    default_ttl: Option<Option<Duration>>,
    key_prefix: Option<String>,
    memory: bool,
    breaker: Option<(u32, Duration)>,
    near_cache: Option<bool>,
}

/// A cachette manager (`Manager(redis_url=None, default_ttl=..., key_prefix=None, ...)`).
#[pyclass(frozen, module = "cachette._cachette")]
pub(crate) struct Manager {
    spec: Spec,
    inner: Mutex<(u32, CacheManager)>,
}

impl Spec {
    fn build(&self) -> PyResult<CacheManager> {
        let rt = runtime()?;
        let _enter = rt.enter();
        let mut builder = Config::load().map_err(to_py_err)?.builder();
        if let Some(url) = &self.redis_url {
            builder = builder.url(url.clone());
        }
        if let Some(ttl) = self.default_ttl {
            builder = builder.default_ttl(ttl);
        }
        if let Some(prefix) = &self.key_prefix {
            builder = builder.key_prefix(prefix.clone());
        }
        if self.memory {
            builder = builder.memory();
        }
        if let Some((failures, open_for)) = self.breaker {
            builder = builder.circuit_breaker(failures, open_for);
        }
        if let Some(near) = self.near_cache {
            builder = builder.near_cache(near.then(cachette::NearCacheOptions::default));
        }
        builder.build().map_err(to_py_err)
    }
}

/// A Python TTL: `None` = the manager's default, `"never"` = no expiry, else seconds.
pub(crate) fn ttl_of(ttl: Option<&Bound<'_, PyAny>>) -> PyResult<Ttl> {
    let Some(ttl) = ttl else {
        return Ok(Ttl::Default);
    };
    if ttl.is_none() {
        return Ok(Ttl::Default);
    }
    if let Ok(s) = ttl.cast::<PyString>() {
        if s.to_cow()? == "never" {
            return Ok(Ttl::Never);
        }
    }
    if ttl.is_instance_of::<PyInt>() || ttl.is_instance_of::<PyFloat>() {
        let secs: f64 = ttl.extract()?;
        return Duration::try_from_secs_f64(secs)
            .map(Ttl::After)
            .map_err(|_| PyValueError::new_err(format!("invalid TTL {secs} s")));
    }
    Err(PyValueError::new_err(
        "a TTL is None (the default), \"never\" or a number of seconds",
    ))
}

#[pymethods]
impl Manager {
    #[new]
    #[pyo3(signature = (redis_url=None, default_ttl=None, default_ttl_never=false, key_prefix=None, memory=false, breaker_failures=None, breaker_open=None, near_cache=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        redis_url: Option<String>,
        default_ttl: Option<f64>,
        default_ttl_never: bool,
        key_prefix: Option<String>,
        memory: bool,
        breaker_failures: Option<u32>,
        breaker_open: Option<f64>,
        near_cache: Option<bool>,
    ) -> PyResult<Self> {
        let default_ttl = if default_ttl_never {
            Some(None)
        } else {
            match default_ttl {
                None => None,
                Some(0.0) => Some(None),
                Some(s) => Some(Some(Duration::try_from_secs_f64(s).map_err(|_| {
                    PyValueError::new_err(format!("invalid default_ttl {s}"))
                })?)),
            }
        };
        let breaker = match (breaker_failures, breaker_open) {
            (None, None) => None,
            (f, o) => Some((
                f.unwrap_or(5),
                Duration::try_from_secs_f64(o.unwrap_or(1.0))
                    .map_err(|_| PyValueError::new_err("invalid breaker_open"))?,
            )),
        };
        let spec = Spec {
            redis_url,
            default_ttl,
            key_prefix,
            memory,
            breaker,
            near_cache,
        };
        let manager = py.detach(|| spec.build())?;
        Ok(Manager {
            spec,
            inner: Mutex::new((std::process::id(), manager)),
        })
    }

    /// The key prefix.
    #[getter]
    fn prefix(&self) -> PyResult<String> {
        Ok(self.core()?.prefix().to_owned())
    }

    /// The default TTL in seconds (`None`: no expiry).
    #[getter]
    fn default_ttl(&self) -> PyResult<Option<f64>> {
        Ok(self.core()?.default_ttl().map(|d| d.as_secs_f64()))
    }

    /// `"redis"`, `"memory"`, `"cluster"`, ...
    #[getter]
    fn backend(&self) -> PyResult<&'static str> {
        Ok(self.core()?.backend_name())
    }

    /// A description of the backend (never with a password).
    fn describe(&self) -> PyResult<String> {
        Ok(self.core()?.describe().to_owned())
    }

    /// The full key (with the prefix) of `key`.
    fn full_key(&self, key: &str) -> PyResult<String> {
        Ok(self.core()?.full_key(key))
    }

    /// Counters of this manager and the state of its circuit breaker.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.core()?;
        let s = m.stats();
        let d = stats_dict(py, &s)?;
        d.set_item("circuit", snake(&format!("{:?}", s.circuit)))?;
        d.set_item("circuit_opens", s.circuit_opens)?;
        d.set_item("short_circuits", s.short_circuits)?;
        d.set_item("loads_in_flight", m.loads_in_flight())?;
        Ok(d)
    }

    /// How many coalesced loads are running (0 once every load has ended, however it ended).
    fn loads_in_flight(&self) -> PyResult<usize> {
        Ok(self.core()?.loads_in_flight())
    }

    fn get<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move {
            Ok(match m.get_raw(&key).await? {
                Some(bytes) => Reply::Json(bytes),
                None => Reply::None,
            })
        })
    }

    #[pyo3(signature = (bridge, key, json, ttl=None))]
    fn set<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        key: String,
        json: String,
        ttl: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        let ttl = ttl_of(ttl)?;
        bridge.spawn(py, async move {
            m.set_raw(&key, json.into_bytes(), ttl).await?;
            Ok(Reply::Bool(true))
        })
    }

    fn delete<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move { Ok(Reply::Bool(m.delete(&key).await?)) })
    }

    fn delete_many<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        keys: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move {
            Ok(Reply::Int(
                i64::try_from(m.delete_many(&keys).await?).unwrap_or(i64::MAX),
            ))
        })
    }

    fn exists<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move { Ok(Reply::Bool(m.exists(&key).await?)) })
    }

    fn expire<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        key: String,
        ttl: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        let ttl = ttl_of(Some(ttl))?;
        bridge.spawn(
            py,
            async move { Ok(Reply::Bool(m.expire(&key, ttl).await?)) },
        )
    }

    /// Redis `TTL` semantics: -2 missing, -1 no expiry, else whole seconds (rounded).
    fn ttl<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move {
            Ok(Reply::Int(match m.ttl(&key).await? {
                KeyTtl::Missing => -2,
                KeyTtl::Persistent => -1,
                KeyTtl::Expires(d) => {
                    i64::try_from((d.as_millis() + 500) / 1000).unwrap_or(i64::MAX)
                }
            }))
        })
    }

    fn delete_pattern<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        pattern: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move {
            Ok(Reply::Int(
                i64::try_from(m.delete_pattern(&pattern).await?).unwrap_or(i64::MAX),
            ))
        })
    }

    fn keys<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        pattern: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(
            py,
            async move { Ok(Reply::Strings(m.keys(&pattern).await?)) },
        )
    }

    fn clear<'py>(&self, py: Python<'py>, bridge: &Bridge) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move {
            m.clear().await?;
            Ok(Reply::Bool(true))
        })
    }

    fn info<'py>(&self, py: Python<'py>, bridge: &Bridge) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move { Ok(Reply::Info(m.info().await?)) })
    }

    fn ping<'py>(&self, py: Python<'py>, bridge: &Bridge) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move { Ok(Reply::Bool(m.ping().await)) })
    }

    fn get_many<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        keys: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        bridge.spawn(py, async move {
            Ok(Reply::JsonList(
                m.get_many::<Box<RawValue>, _>(&keys).await?,
            ))
        })
    }

    #[pyo3(signature = (bridge, items, ttl=None))]
    fn set_many<'py>(
        &self,
        py: Python<'py>,
        bridge: &Bridge,
        items: Vec<(String, String)>,
        ttl: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = self.core()?;
        let ttl = ttl_of(ttl)?;
        let items = items
            .into_iter()
            .map(|(k, v)| {
                RawValue::from_string(v)
                    .map(|v| (k, v))
                    .map_err(|e| PyValueError::new_err(format!("invalid JSON: {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        bridge.spawn(py, async move {
            m.set_many(items, ttl).await?;
            Ok::<_, Failure>(Reply::Bool(true))
        })
    }
}

impl Manager {
    /// This process's manager: the one built here, or a new one after a `fork()`.
    pub(crate) fn core(&self) -> PyResult<CacheManager> {
        let pid = std::process::id();
        let mut inner = self.inner.lock();
        if inner.0 != pid {
            let fresh = self.spec.build()?;
            // The parent's manager lives on tasks of the parent's runtime: leak it.
            let old = std::mem::replace(&mut *inner, (pid, fresh));
            std::mem::forget(old);
        }
        Ok(inner.1.clone())
    }
}

/// The counters of a [`cachette::Stats`] as a dict.
pub(crate) fn stats_dict<'py>(
    py: Python<'py>,
    s: &cachette::Stats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("hits", s.hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("writes", s.writes)?;
    d.set_item("errors", s.errors)?;
    d.set_item("decode_errors", s.decode_errors)?;
    d.set_item("coalesced", s.coalesced)?;
    d.set_item("early_refreshes", s.early_refreshes)?;
    d.set_item("stale_served", s.stale_served)?;
    d.set_item("fallbacks", s.fallbacks)?;
    d.set_item("loader_errors", s.loader_errors)?;
    d.set_item("loader_timeouts", s.loader_timeouts)?;
    d.set_item("hit_rate", s.hit_rate())?;
    Ok(d)
}
