//! One tokio runtime per process: a process forked from one that had a runtime (gunicorn's
//! pre-fork workers) has none of its threads, so the first call after `fork()` builds a new one.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime of this process, built on first use and again after a `fork()`.
pub(crate) fn runtime() -> PyResult<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock();
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(rt));
        }
    }
    // The parent's runtime, inherited by a forked child: its worker threads do not exist
    // here, and dropping it would wait for them. Leak it (a few KiB once per fork).
    if let Some(old) = slot.take() {
        std::mem::forget(old);
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("cachette-py")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}")))?;
    let rt = Arc::new(rt);
    *slot = Some((pid, Arc::clone(&rt)));
    Ok(rt)
}
