//! Default keys for Python functions, computed by cachette's own key code
//! ([`cachette::key::ArgsHasher`] and [`cachette::key::default_key`]): a Python argument is
//! fed to the hasher as the serde data of its JSON form, so a Python function and a Rust
//! `#[cached]` function with the same module path, name and JSON-equal arguments share keys.
//!
//! | Python | serde data (as the Rust type) |
//! |---|---|
//! | `None` | `none` (Rust `Option::None`) |
//! | `bool` | `bool` |
//! | `int` | integer (any Rust integer type) |
//! | `float` | `f64` |
//! | `str` | `str` (`String`, `&str`) |
//! | `list`, `tuple` | sequence (`Vec`, slices, tuples) |
//! | `dict` | map (`HashMap`, `BTreeMap`), keys converted to strings as `json` does |

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use cachette::key::ArgsHasher;

/// A Python value seen as the serde data of its JSON form.
struct PyArg<'a, 'py>(&'a Bound<'py, PyAny>);

impl Serialize for PyArg<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_none() {
            return s.serialize_none();
        }
        if let Ok(b) = v.cast::<PyBool>() {
            return s.serialize_bool(b.is_true());
        }
        if v.is_instance_of::<PyInt>() {
            if let Ok(i) = v.extract::<i64>() {
                return s.serialize_i64(i);
            }
            if let Ok(i) = v.extract::<i128>() {
                return s.serialize_i128(i);
            }
            return match v.extract::<u128>() {
                Ok(u) => s.serialize_u128(u),
                Err(_) => Err(S::Error::custom("an int wider than 128 bits")),
            };
        }
        if let Ok(f) = v.cast::<PyFloat>() {
            return s.serialize_f64(f.value());
        }
        if let Ok(text) = v.cast::<PyString>() {
            let text = text.to_cow().map_err(S::Error::custom)?;
            return s.serialize_str(&text);
        }
        if let Ok(list) = v.cast::<PyList>() {
            let mut seq = s.serialize_seq(Some(list.len()))?;
            for item in list.iter() {
                seq.serialize_element(&PyArg(&item))?;
            }
            return seq.end();
        }
        if let Ok(tuple) = v.cast::<PyTuple>() {
            let mut seq = s.serialize_seq(Some(tuple.len()))?;
            for item in tuple.iter() {
                seq.serialize_element(&PyArg(&item))?;
            }
            return seq.end();
        }
        if let Ok(dict) = v.cast::<PyDict>() {
            let mut map = s.serialize_map(Some(dict.len()))?;
            for (k, item) in dict.iter() {
                map.serialize_entry(&json_key(&k).map_err(S::Error::custom)?, &PyArg(&item))?;
            }
            return map.end();
        }
        let type_name = v
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        Err(S::Error::custom(format!(
            "an object of type {type_name} is not JSON serializable"
        )))
    }
}

/// A dict key as `json.dumps` writes it.
fn json_key(k: &Bound<'_, PyAny>) -> Result<String, String> {
    if let Ok(text) = k.cast::<PyString>() {
        return text
            .to_cow()
            .map(|t| t.into_owned())
            .map_err(|e| e.to_string());
    }
    if k.is_none() {
        return Ok("null".to_owned());
    }
    if let Ok(b) = k.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_owned());
    }
    if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
        if let Ok(f) = k.cast::<PyFloat>() {
            let f = f.value();
            if f.is_nan() {
                return Ok("NaN".to_owned());
            }
            if f.is_infinite() {
                return Ok(if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned());
            }
        }
        return k
            .repr()
            .and_then(|r| r.to_cow().map(|t| t.into_owned()))
            .map_err(|e| e.to_string());
    }
    Err("keys must be str, int, float, bool or None".to_owned())
}

/// `default_key(module, qualname, args)`: the default key (without the manager's prefix) of
/// function `qualname` of module `module` called with `args` (every argument that takes part,
/// in declaration order, `self` excluded): `{module}:{qualname}:{xxh3-128 of the arguments}`.
///
/// Raises `TypeError` when an argument has no JSON form.
#[pyfunction]
pub(crate) fn default_key(
    module: &str,
    qualname: &str,
    args: &Bound<'_, PyTuple>,
) -> PyResult<String> {
    let mut hasher = ArgsHasher::new();
    for arg in args.iter() {
        hasher.arg(&PyArg(&arg));
    }
    let hash = hasher
        .finish()
        .map_err(|e| PyTypeError::new_err(e.to_string()))?;
    Ok(cachette::key::default_key(module, None, qualname, hash))
}

/// `args_hash(args)`: the 32 hex digits of the arguments' hash alone.
#[pyfunction]
pub(crate) fn args_hash(args: &Bound<'_, PyTuple>) -> PyResult<String> {
    let mut hasher = ArgsHasher::new();
    for arg in args.iter() {
        hasher.arg(&PyArg(&arg));
    }
    hasher
        .finish_hex()
        .map_err(|e| PyTypeError::new_err(e.to_string()))
}
