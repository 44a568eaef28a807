//! Compile-time behaviour of the attribute macros, with `trybuild`: each macro has
//! `tests/ui/<macro>/pass/*.rs` (must compile) and `tests/ui/<macro>/fail/*.rs` (must fail
//! with exactly the checked-in `.stderr`).
//!
//! After changing a message (or the toolchain), regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p cachette --test ui` and review the diff.

fn run_ui_tests(macro_name: &str) {
    let t = trybuild::TestCases::new();
    t.pass(format!("tests/ui/{macro_name}/pass/*.rs"));
    t.compile_fail(format!("tests/ui/{macro_name}/fail/*.rs"));
}

#[test]
fn cached() {
    run_ui_tests("cached");
}

#[test]
fn cache_put() {
    run_ui_tests("cache_put");
}

#[test]
fn cache_evict() {
    run_ui_tests("cache_evict");
}

#[test]
fn cached_property() {
    run_ui_tests("cached_property");
}
