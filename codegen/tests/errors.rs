//! Kernels that build but that a WebGPU browser would reject, or that go wrong while being
//! built: each fails to compile with every problem reported at the kernel's own line, like
//! rustc's errors. The expected messages are in `tests/errors/*.txt` (insta-free on purpose:
//! the test reads them literally, so a changed message is a visible diff).

use webdit_dsl::prelude::*;

#[derive(webdit_dsl::Uniform)]
pub struct Len {
    n: u32,
}

#[kernel(workgroup_size = [64, 1, 1])]
fn barrier_under_divergent_if(x: &Array<f32>, y: &mut Array<f32>) {
    let i = global_id().x;
    let tile = Shared::<f32>::new(64);
    if x[i] > 0.0 {
        tile[local_index()] = x[i];
        workgroup_barrier();
    }
    y[i] = tile[0u32];
}

#[kernel(workgroup_size = [64, 1, 1])]
fn barrier_after_divergent_return(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i >= p.n {
        return;
    }
    let tile = Shared::<f32>::new(64);
    tile[local_index()] = x[i];
    workgroup_barrier();
    y[i] = tile[63u32 - local_index()];
}

#[kernel(workgroup_size = [64, 1, 1])]
fn barrier_in_loop_with_divergent_break(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let tile = Shared::<f32>::new(64);
    let mut acc = 0.0f32;
    for k in 0u32..p.n {
        tile[local_index()] = x[k * 64u32 + local_index()];
        workgroup_barrier();
        acc += tile[0u32];
        if acc > 100.0 {
            break;
        }
        workgroup_barrier();
    }
    y[global_id().x] = acc;
}

/// Uniform loops and conditions are fine: bounds from uniforms, workgroup ids, constants.
#[kernel(workgroup_size = [64, 1, 1])]
fn uniform_barriers_are_fine(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let tile = Shared::<f32>::new(64);
    let mut acc = 0.0f32;
    let mut k = 0u32;
    while k < p.n {
        if workgroup_id().x < 4u32 {
            tile[local_index()] = x[k * 64u32 + local_index()];
        }
        workgroup_barrier();
        acc += tile[(local_index() + 1u32) % 64u32];
        workgroup_barrier();
        k += 1u32;
    }
    y[global_id().x] = acc;
}

#[kernel(workgroup_size = [1024, 1, 1])]
fn too_many_invocations(y: &mut Array<f32>) {
    y[global_id().x] = 1.0;
}

#[kernel(workgroup_size = [64, 1, 1])]
fn too_much_workgroup_memory(y: &mut Array<f32>) {
    let a = Shared::<Vec4<f32>>::new(520);
    let b = Shared::<Vec4<f32>>::new(520);
    a[local_index()] = vec4(1.0f32, 1.0, 1.0, 1.0);
    b[local_index()] = a[local_index()];
    y[global_id().x] = b[local_index()].x;
}

#[kernel(workgroup_size = [64, 1, 1])]
fn bool_storage_and_bad_arrays(flags: &Array<bool>, y: &mut Array<f32>) {
    let empty = Shared::<f32>::new(0);
    let v = [y[0u32], y[1u32]];
    y[global_id().x] = v[global_id().x];
}

#[kernel_struct]
struct Flagged {
    value: f32,
    keep: bool,
}

#[kernel(workgroup_size = [64, 1, 1])]
fn bool_in_a_storage_struct(items: &Array<Flagged>, y: &mut Array<f32>) {
    let i = global_id().x;
    let item = items[i];
    y[i] = select(item.keep, item.value, 0.0f32);
}

#[kernel(workgroup_size = [64, 1, 1])]
fn atomic_read_by_index(counts: &mut Array<Atomic<u32>>, y: &mut Array<u32>) {
    let i = global_id().x;
    atomic_add(counts, i % 4, 1u32);
    let c = counts[i % 4];
    y[i] = atomic_load(counts, i % 4);
}

/// The invocation's lane, as a WGSL function: builtins are the entry point's arguments.
#[kernel_fn(function)]
fn my_lane(scale: u32) -> u32 {
    local_index() * scale
}

#[kernel_fn(function)]
fn synced(v: f32) -> f32 {
    workgroup_barrier();
    v
}

#[kernel(workgroup_size = [64, 1, 1])]
fn builtin_in_function(y: &mut Array<u32>) {
    let i = global_id().x;
    y[i] = my_lane(2u32);
}

#[kernel(workgroup_size = [64, 1, 1])]
fn barrier_in_function(y: &mut Array<f32>) {
    let i = global_id().x;
    y[i] = synced(1.0f32);
}

fn expected(name: &str) -> String {
    let path = format!("{}/tests/errors/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_default()
}

/// The rendered errors of a kernel; with `WEBDIT_BLESS=1` they are written as the expected
/// text instead of compared.
fn check(name: &str, kernel: webdit_dsl::ir::Kernel) {
    let err = match webdit_codegen::compile(&kernel) {
        Ok(_) => panic!("kernel `{name}` compiled, but it must be rejected"),
        Err(e) => e.to_string(),
    };
    if std::env::var_os("WEBDIT_BLESS").is_some() {
        let path = format!("{}/tests/errors/{name}.txt", env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(path, &err).unwrap();
        return;
    }
    assert_eq!(
        err,
        expected(name),
        "the errors of `{name}` changed (rerun with WEBDIT_BLESS=1 to accept)"
    );
}

#[test]
fn a_barrier_under_a_divergent_condition_is_an_error_at_its_line() {
    check("barrier_if", barrier_under_divergent_if());
    check("barrier_return", barrier_after_divergent_return());
    check("barrier_break", barrier_in_loop_with_divergent_break());
}

#[test]
fn barriers_in_uniform_control_flow_compile() {
    webdit_codegen::compile(&uniform_barriers_are_fine()).expect("uniform barriers are valid");
}

#[test]
fn webgpu_limits_are_errors_at_the_kernel() {
    check("invocations", too_many_invocations());
    check("workgroup_memory", too_much_workgroup_memory());
}

#[test]
fn a_native_only_kernel_may_use_what_it_declares() {
    let k = too_much_workgroup_memory().needs(webdit_dsl::ir::Limits {
        max_workgroup_storage_bytes: 32768,
        ..webdit_dsl::ir::Limits::WEBGPU
    });
    assert!(!k.is_portable());
    webdit_codegen::compile(&k).expect("within its declared limits");
}

#[test]
fn emitted_functions_take_values() {
    check("function_builtin", builtin_in_function());
    check("function_barrier", barrier_in_function());
}

#[test]
fn atomics_are_read_with_atomic_load() {
    check("atomic_index", atomic_read_by_index());
}

#[test]
fn storage_structs_hold_no_bool() {
    check("struct_bool", bool_in_a_storage_struct());
}

#[test]
fn every_error_of_a_kernel_is_reported_at_once() {
    check("several", bool_storage_and_bad_arrays());
}
