//! The native part of cachette's Python package (`cachette._cachette`): cachette's Rust core
//! (managers, read-through loads, keys) bridged to asyncio. The Python API (`CacheManager`,
//! `@cached`, ...) is in `python/cachette`; see this crate's README.

mod bridge;
mod errors;
mod keys;
mod load;
mod manager;
mod rt;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _cachette(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<bridge::Bridge>()?;
    m.add_class::<manager::Manager>()?;
    m.add_class::<load::Options>()?;
    m.add_class::<load::FnStats>()?;
    m.add_class::<bridge::Abort>()?;
    m.add_function(wrap_pyfunction!(load::load, m)?)?;
    m.add_function(wrap_pyfunction!(keys::default_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::args_hash, m)?)?;
    m.add("CacheError", py.get_type::<errors::CacheError>())?;
    m.add(
        "CacheConfigError",
        py.get_type::<errors::CacheConfigError>(),
    )?;
    m.add("CacheInputError", py.get_type::<errors::CacheInputError>())?;
    m.add("KEY_FORMAT_VERSION", cachette::key::KEY_FORMAT_VERSION)?;
    Ok(())
}
