//! Compile-time behaviour of the attribute macros, with `trybuild`: each macro has
//! `tests/ui/<macro>/pass/*.rs` (must compile) and `tests/ui/<macro>/fail/*.rs` (must fail
//! with exactly the checked-in `.stderr`).
//!
//! One test for every macro: trybuild compiles the cases as one crate with one build of the
//! dependencies. (Four tests would be four processes under nextest, each running cargo on the
//! same trybuild project and waiting on, or invalidating, the others' builds.)
//!
//! After changing a message (or the toolchain), regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p cachette-macros --test ui` and review the diff.

#[test]
fn macros() {
    let t = trybuild::TestCases::new();
    for macro_name in ["cached", "cache_put", "cache_evict", "cached_property"] {
        t.pass(format!("tests/ui/{macro_name}/pass/*.rs"));
        t.compile_fail(format!("tests/ui/{macro_name}/fail/*.rs"));
    }
}
