//! Kernels the DSL rejects: each must fail to compile with an error pointing at the
//! offending Rust code (see the `.stderr` files next to each case).

#[test]
fn rejected_kernels_point_at_the_code() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
