//! The bridge between tokio and one asyncio event loop, without the GIL on tokio's threads.
//!
//! Every call from Python creates an `asyncio.Future` on the running loop and spawns its Rust
//! future on the runtime. When the Rust future ends, its result is pushed onto this loop's
//! queue and the loop is woken through a socket pair registered with `loop.add_reader`; the
//! loop drains the queue in its own thread, holding the GIL it already has, and resolves the
//! futures. A tokio thread therefore never waits for the GIL (which the busy loop thread
//! would only hand over at the interpreter's switch interval), and many completions share
//! one wake-up.
//!
//! The same queue starts the decorated function's coroutine as a task of the loop when
//! cachette decides to run the loader, and cancels that task when cachette drops the loader
//! (its caller was cancelled): nothing keeps running for a caller that is gone.
//!
//! Cancelling the `asyncio.Future` aborts the Rust task (a done-callback), which drops
//! cachette's future: cachette's own cancellation handling (another waiter takes over the
//! load, the lease is released) does the rest.

use std::future::Future;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::errors::to_py_err;
use crate::rt::runtime;

/// What a finished Rust call gives its Python future.
pub(crate) enum Reply {
    None,
    Bool(bool),
    Int(i64),
    /// JSON text, decoded with Python's `json.loads`.
    Json(Bytes),
    /// A list of JSON texts or `None`s, each decoded with `json.loads`.
    JsonList(Vec<Option<Box<RawValue>>>),
    Strings(Vec<String>),
    /// A Python object (the value a loader returned to the caller that ran it).
    Obj(Py<PyAny>),
    /// A dict built on the loop's thread.
    Info(cachette::ServerInfo),
}

/// Why a Rust call failed.
pub(crate) enum Failure {
    Cache(cachette::Error),
    Py(PyErr),
}

impl From<cachette::Error> for Failure {
    fn from(e: cachette::Error) -> Self {
        Failure::Cache(e)
    }
}

/// The Python task running a loader, kept so that it can be cancelled.
#[derive(Default)]
pub(crate) struct LoadSlot {
    task: Mutex<Option<Py<PyAny>>>,
}

/// What the loader's coroutine produced: its value, its JSON text (if it has one) and
/// whether `unless` lets it be stored.
pub(crate) struct LoadOut {
    pub(crate) obj: Py<PyAny>,
    pub(crate) json: Option<Box<RawValue>>,
    pub(crate) store: bool,
}

enum Msg {
    Done(Py<PyAny>, Result<Reply, Failure>),
    StartLoad {
        factory: Py<PyAny>,
        tx: oneshot::Sender<PyResult<LoadOut>>,
        slot: Arc<LoadSlot>,
    },
    CancelLoad(Arc<LoadSlot>),
}

struct Shared {
    queue: Mutex<Vec<Msg>>,
    armed: AtomicBool,
    writer: UnixStream,
}

impl Shared {
    fn push(&self, msg: Msg) {
        self.queue.lock().push(msg);
        if !self.armed.swap(true, Ordering::AcqRel) {
            // Non-blocking: a full socket buffer already means a pending wake-up. A closed
            // peer means the loop is gone, and so are the futures to resolve.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

/// The bridge of one event loop (`Bridge(loop)`); register `fileno()` with
/// `loop.add_reader(fileno, bridge.drain)`.
#[pyclass(frozen, module = "cachette._cachette")]
pub(crate) struct Bridge {
    shared: Arc<Shared>,
    reader: UnixStream,
    event_loop: Py<PyAny>,
}

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn json_loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    JSON_LOADS.import(py, "json", "loads")
}

#[pymethods]
impl Bridge {
    #[new]
    fn new(event_loop: Py<PyAny>) -> PyResult<Self> {
        let (reader, writer) = UnixStream::pair()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot create a socket pair: {e}")))?;
        reader
            .set_nonblocking(true)
            .and_then(|()| writer.set_nonblocking(true))
            .map_err(|e| {
                PyRuntimeError::new_err(format!("cannot configure the socket pair: {e}"))
            })?;
        Ok(Bridge {
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                armed: AtomicBool::new(false),
                writer,
            }),
            reader,
            event_loop,
        })
    }

    /// The file descriptor to watch for readability.
    fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// The event loop this bridge serves.
    #[getter]
    fn event_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// Resolves every finished call and starts or cancels loaders (on the loop's thread).
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        let mut sink = [0u8; 256];
        loop {
            match (&self.reader).read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.shared.armed.store(false, Ordering::Release);
        let batch = std::mem::take(&mut *self.shared.queue.lock());
        for msg in batch {
            match msg {
                Msg::Done(fut, result) => resolve(py, fut.bind(py), result),
                Msg::StartLoad { factory, tx, slot } => self.start_load(py, factory, tx, &slot),
                Msg::CancelLoad(slot) => {
                    if let Some(task) = slot.task.lock().take() {
                        let _ = task.bind(py).call_method0("cancel");
                    }
                }
            }
        }
        Ok(())
    }
}

impl Bridge {
    /// A new `asyncio.Future` on this loop, resolved with what `work` returns.
    ///
    /// `work` is polled once right here (in the runtime's context, with a no-op waker): a
    /// result that needs no I/O (the memory backend, a near-cache hit) resolves the future
    /// at once, without a trip through the runtime. Otherwise it goes on as a task of the
    /// runtime, which polls it again with its own waker. [`spawn_abortable`](Self::spawn_abortable)
    /// also returns what aborts that task.
    pub(crate) fn spawn<'py, F>(&self, py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = Result<Reply, Failure>> + Send + 'static,
    {
        self.spawn_abortable(py, work).map(|(fut, _)| fut)
    }

    /// [`spawn`](Self::spawn), and an [`Abort`] for the task (`None` when the work finished
    /// at once): the caller's coroutine calls `abort()` when it is cancelled while awaiting
    /// the future. (Not a done-callback of the future: that would cost every call one more
    /// handle run by the loop.)
    pub(crate) fn spawn_abortable<'py, F>(
        &self,
        py: Python<'py>,
        work: F,
    ) -> PyResult<(Bound<'py, PyAny>, Option<Abort>)>
    where
        F: Future<Output = Result<Reply, Failure>> + Send + 'static,
    {
        let rt = runtime()?;
        let fut = self.event_loop.bind(py).call_method0("create_future")?;
        let mut work = Box::pin(work);
        {
            let _enter = rt.enter();
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(result) = work.as_mut().poll(&mut cx) {
                resolve(py, &fut, result);
                return Ok((fut, None));
            }
        }
        let target = fut.clone().unbind();
        let shared = Arc::clone(&self.shared);
        let handle = rt.spawn(async move {
            let result = work.await;
            shared.push(Msg::Done(target, result));
        });
        let abort = Abort {
            handle: handle.abort_handle(),
        };
        Ok((fut, Some(abort)))
    }

    fn start_load(
        &self,
        py: Python<'_>,
        factory: Py<PyAny>,
        tx: oneshot::Sender<PyResult<LoadOut>>,
        slot: &LoadSlot,
    ) {
        let started = factory.bind(py).call0().and_then(|coro| {
            let task = self
                .event_loop
                .bind(py)
                .call_method1("create_task", (coro,))?;
            Ok(task)
        });
        match started {
            Ok(task) => {
                let done = LoadDone {
                    tx: Mutex::new(Some(tx)),
                };
                if let Err(e) = task.call_method1("add_done_callback", (done,)) {
                    let _ = task.call_method0("cancel");
                    let _ = e; // the sender went with `done`; the load sees a closed channel
                } else {
                    *slot.task.lock() = Some(task.unbind());
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    }

    /// What starts loaders on this loop from any thread.
    pub(crate) fn loaders(&self) -> Loaders {
        Loaders {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Starts loaders as tasks of one loop (see [`Bridge::loaders`]).
pub(crate) struct Loaders {
    shared: Arc<Shared>,
}

impl Loaders {
    /// Runs `factory()` (a coroutine function returning `(value, json_text, store)`) as a task
    /// of the loop; the returned future ends with its outcome. Dropping it before it ends
    /// cancels the task.
    pub(crate) fn start(&self, factory: Py<PyAny>) -> RunningLoad {
        let slot = Arc::new(LoadSlot::default());
        let (tx, rx) = oneshot::channel();
        self.shared.push(Msg::StartLoad {
            factory,
            tx,
            slot: Arc::clone(&slot),
        });
        RunningLoad {
            rx,
            cancel: CancelOnDrop {
                shared: Arc::clone(&self.shared),
                slot: Some(slot),
            },
        }
    }
}

/// A loader running as a task of the loop.
pub(crate) struct RunningLoad {
    rx: oneshot::Receiver<PyResult<LoadOut>>,
    cancel: CancelOnDrop,
}

impl RunningLoad {
    /// Waits for the task's outcome.
    pub(crate) async fn wait(mut self) -> PyResult<LoadOut> {
        let out = (&mut self.rx).await;
        self.cancel.slot = None; // ended: nothing to cancel
        match out {
            Ok(out) => out,
            Err(_) => Err(pyo3::exceptions::asyncio::CancelledError::new_err(
                "the loader's task was cancelled",
            )),
        }
    }
}

struct CancelOnDrop {
    shared: Arc<Shared>,
    slot: Option<Arc<LoadSlot>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.shared.push(Msg::CancelLoad(slot));
        }
    }
}

/// The done-callback of a loader's task: sends its outcome to the waiting Rust future.
#[pyclass(frozen)]
struct LoadDone {
    tx: Mutex<Option<oneshot::Sender<PyResult<LoadOut>>>>,
}

#[pymethods]
impl LoadDone {
    fn __call__(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(tx) = self.tx.lock().take() else {
            return Ok(());
        };
        let out = task.call_method0("result").and_then(|r| {
            let tuple = r.cast_into::<PyTuple>()?;
            let obj = tuple.get_item(0)?.unbind();
            let text = tuple.get_item(1)?;
            let store: bool = tuple.get_item(2)?.extract()?;
            let json = if text.is_none() {
                None
            } else {
                let text: String = text.extract()?;
                Some(RawValue::from_string(text).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!("invalid JSON: {e}"))
                })?)
            };
            Ok(LoadOut { obj, json, store })
        });
        let _ = tx.send(out);
        Ok(())
    }
}

/// Aborts the Rust task of a call whose caller was cancelled (`abort()`): dropping
/// cachette's future releases what it held (its place in a coalesced load, its lease; the
/// loader's task is cancelled through [`CancelOnDrop`]).
#[pyclass(frozen, module = "cachette._cachette")]
pub(crate) struct Abort {
    handle: AbortHandle,
}

#[pymethods]
impl Abort {
    fn abort(&self) {
        self.handle.abort();
    }
}

fn resolve(py: Python<'_>, fut: &Bound<'_, PyAny>, result: Result<Reply, Failure>) {
    if fut
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let value = match result {
        Ok(reply) => reply_to_py(py, reply),
        Err(Failure::Py(e)) => Err(e),
        Err(Failure::Cache(e)) => Err(to_py_err(e)),
    };
    let _ = match value {
        Ok(v) => fut.call_method1("set_result", (v,)),
        Err(e) => fut.call_method1("set_exception", (e.into_value(py),)),
    };
}

fn reply_to_py(py: Python<'_>, reply: Reply) -> PyResult<Py<PyAny>> {
    Ok(match reply {
        Reply::None => py.None(),
        Reply::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Reply::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Reply::Json(bytes) => json_loads(py)?.call1((PyBytes::new(py, &bytes),))?.unbind(),
        Reply::JsonList(items) => {
            let loads = json_loads(py)?;
            let list = PyList::empty(py);
            for item in items {
                match item {
                    Some(raw) => list.append(loads.call1((raw.get(),))?)?,
                    None => list.append(py.None())?,
                }
            }
            list.into_any().unbind()
        }
        Reply::Strings(v) => PyList::new(py, v)?.into_any().unbind(),
        Reply::Obj(o) => o,
        Reply::Info(info) => info_dict(py, &info)?.into_any().unbind(),
    })
}

/// `INFO` as redis-py gives it: every field of every section in one dict (numbers as
/// numbers), and `db0`... as dicts of `keys`, `expires`, `avg_ttl`.
fn info_dict<'py>(py: Python<'py>, info: &cachette::ServerInfo) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for fields in info.sections.values() {
        for (name, value) in fields {
            match value {
                cachette::info::InfoValue::Int(i) => out.set_item(name, i)?,
                cachette::info::InfoValue::Float(f) => out.set_item(name, f)?,
                cachette::info::InfoValue::Text(t) => out.set_item(name, t)?,
                other => out.set_item(name, format!("{other:?}"))?,
            }
        }
    }
    for (db, stats) in &info.keyspace {
        let d = PyDict::new(py);
        d.set_item("keys", stats.keys)?;
        d.set_item("expires", stats.expires)?;
        d.set_item("avg_ttl", stats.avg_ttl_ms)?;
        out.set_item(db, d)?;
    }
    // An empty database has no keyspace line; `info["db0"]["keys"]` is 0 then, not a KeyError.
    if !out.contains("db0")? {
        let d = PyDict::new(py);
        d.set_item("keys", 0)?;
        d.set_item("expires", 0)?;
        d.set_item("avg_ttl", 0)?;
        out.set_item("db0", d)?;
    }
    Ok(out)
}
