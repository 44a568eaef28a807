//! Python exceptions for cachette errors: `CacheError` (with the `kind` of the Rust
//! [`cachette::ErrorKind`] as a lowercase string) and its subclasses.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(_cachette, CacheError, PyException, "A cache operation failed; `kind` tells how (`connection`, `timeout`, `decode`, `loader`, ...).");
create_exception!(
    _cachette,
    CacheConfigError,
    CacheError,
    "The cache configuration (arguments, config.json, REDIS_* variables) is invalid."
);
create_exception!(
    _cachette,
    CacheInputError,
    CacheError,
    "An argument was refused (an empty key, a TTL out of range, a value too large)."
);

/// The lowercase name of an error kind (`ErrorKind::CircuitOpen` → `circuit_open`).
pub(crate) fn kind_name(kind: cachette::ErrorKind) -> String {
    snake(&format!("{kind:?}"))
}

/// `CamelCase` → `camel_case`.
pub(crate) fn snake(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Python exception of a cachette error, with its `kind` attribute set.
pub(crate) fn to_py_err(e: cachette::Error) -> PyErr {
    let kind = e.kind();
    let message = e.to_string();
    let err = match kind {
        cachette::ErrorKind::Config => CacheConfigError::new_err(message),
        cachette::ErrorKind::InvalidInput => CacheInputError::new_err(message),
        _ => CacheError::new_err(message),
    };
    Python::attach(|py| {
        let _ = err.value(py).setattr("kind", kind_name(kind));
    });
    err
}
