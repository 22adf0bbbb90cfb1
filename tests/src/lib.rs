//! The shared GPU test harness: one device per test binary, buffers with poisoned contents
//! and guard regions, dispatch, readback, and error measures against CPU references.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::OnceLock;
use webdit_dsl::ir::Kernel as IrKernel;
use webdit_dsl::prelude::*;
use webdit_dsl::{
    subgroup_add, subgroup_broadcast, subgroup_invocation_id, subgroup_max, subgroup_shuffle_xor,
    subgroup_size, Numeric,
};
use webdit_kernels::elementwise::Len;
use webdit_model::kernels::KernelSource;
use webdit_model::Gpu;

/// The bit pattern written over every output before a run: a NaN, so an element the kernel
/// failed to write can never pass a comparison.
pub const POISON: u32 = 0x7fc0_dead;
/// The same for f16 outputs (a NaN).
pub const POISON_F16: u16 = 0x7e5a;
/// Elements after each output that a kernel must leave alone (catches writes past the end).
pub const GUARD: usize = 64;

/// The device shared by the tests of one binary (tests run in parallel threads).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new_blocking().unwrap_or_else(|e| panic!("GPU tests need an adapter ({e}); `bash scripts/test` installs a software one (mesa-vulkan-drivers)"));
        eprintln!("adapter: {}", gpu.describe());
        gpu
    })
}

/// A random generator with a fresh seed each run (printed, and fixed with `WEBDIT_SEED`).
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("WEBDIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("{test}: WEBDIT_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// `n` values uniform in [-1, 1).
pub fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Compiles a kernel built now (e.g. with tiles other than the build's) into a source the
/// runtime can load, as `build.rs` does for the registry.
pub fn compile(name: &str, kernel: &IrKernel) -> &'static KernelSource {
    let wgsl = webdit_codegen::compile(kernel)
        .unwrap_or_else(|e| panic!("{e}"))
        .wgsl;
    KernelSource::leak(name, kernel, wgsl)
}

/// A kernel argument for [`run`].
#[derive(Clone)]
pub enum Arg<'a> {
    /// Read-only input data.
    Input(&'a [f32]),
    /// Raw input words (f16 pairs, u32s, ...).
    InputBytes(&'a [u8]),
    /// An output of `n` f32 elements, poisoned before the run, followed by a guard region.
    Output(usize),
    /// Input data stored as f16 (rounded from the given f32s).
    InputF16(&'a [f32]),
    /// An output of `n` f16 elements, read back as f32.
    OutputF16(usize),
    /// An output that starts with the given f32 data (for in-place kernels).
    InOut(&'a [f32]),
    /// A uniform struct's bytes.
    Uniform(Vec<u8>),
}

/// Runs `src` once over `groups` workgroups and returns each output's elements. Panics if a
/// guard element after an output was overwritten.
pub fn run(src: &'static KernelSource, args: &[Arg], groups: [u32; 3]) -> Vec<Vec<f32>> {
    let gpu = gpu();
    let kernel = gpu.kernel(src).unwrap_or_else(|e| panic!("{e}"));
    let poison = |n: usize| bytemuck::cast_slice::<u32, u8>(&vec![POISON; n + GUARD]).to_vec();
    let poison16 = |n: usize| {
        bytemuck::cast_slice::<u16, u8>(&vec![POISON_F16; (n + GUARD).next_multiple_of(2)]).to_vec()
    };
    let guarded = |d: &[f32]| {
        let mut words: Vec<u32> = d.iter().map(|v| v.to_bits()).collect();
        words.extend([POISON; GUARD]);
        bytemuck::cast_slice::<u32, u8>(&words).to_vec()
    };
    let buffers: Vec<(wgpu::Buffer, Option<(usize, bool)>)> = args
        .iter()
        .map(|a| match a {
            Arg::Input(d) => (gpu.storage_init("input", bytemuck::cast_slice(d)), None),
            Arg::InputBytes(d) => (gpu.storage_init("input", d), None),
            Arg::InputF16(d) => (gpu.storage_init("input", &f16_bytes(d)), None),
            Arg::Output(n) => (gpu.storage_init("output", &poison(*n)), Some((*n, false))),
            Arg::OutputF16(n) => (gpu.storage_init("output", &poison16(*n)), Some((*n, true))),
            Arg::InOut(d) => (
                gpu.storage_init("inout", &guarded(d)),
                Some((d.len(), false)),
            ),
            Arg::Uniform(b) => (gpu.uniform("params", b), None),
        })
        .collect();
    let refs: Vec<&wgpu::Buffer> = buffers.iter().map(|(b, _)| b).collect();
    let bind = kernel.bind(gpu, &refs).unwrap_or_else(|e| panic!("{e}"));
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        kernel.dispatch(&mut pass, &bind, groups);
    }
    gpu.queue.submit([enc.finish()]);
    buffers
        .iter()
        .filter_map(|(b, n)| n.map(|n| (b, n)))
        .map(|(b, (n, half))| {
            let bytes = pollster::block_on(gpu.read(b)).unwrap_or_else(|e| panic!("{e}"));
            let overrun = |at: Option<usize>| {
                assert!(
                    at.is_none(),
                    "{}: wrote {} past the end of an output",
                    src.name,
                    at.unwrap()
                );
            };
            if half {
                let h: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
                overrun(h[n..].iter().position(|w| *w != POISON_F16));
                h[..n]
                    .iter()
                    .map(|w| half::f16::from_bits(*w).to_f32())
                    .collect()
            } else {
                let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
                overrun(words[n..].iter().position(|w| *w != POISON));
                words[..n].iter().map(|w| f32::from_bits(*w)).collect()
            }
        })
        .collect()
}

/// The largest reference magnitude, the scale [`assert_close`] measures errors against.
pub fn magnitude(want: &[f64]) -> f64 {
    want.iter().fold(0.0f64, |m, w| m.max(w.abs()))
}

/// The largest error relative to `scale`; infinite if any value is NaN or infinite (so NaN
/// never passes).
pub fn rel_error(got: &[f32], want: &[f64], scale: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    if got.iter().any(|g| !g.is_finite()) {
        return f64::INFINITY;
    }
    let worst = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    worst / scale.max(1e-30)
}

/// Asserts `got` matches `want` within `tol` relative to the largest reference magnitude,
/// naming the first bad element.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_close_to(what, got, want, magnitude(want), tol)
}

/// Asserts `got` matches `want` within `tol · scale`. Sums whose terms cancel need the scale
/// of their terms (e.g. Σ|a·w| for a dot product), not of their result: rounding error grows
/// with the terms.
pub fn assert_close_to(what: &str, got: &[f32], want: &[f64], scale: f64, tol: f64) {
    let err = rel_error(got, want, scale);
    if err <= tol {
        return;
    }
    let scale = scale.max(1e-30);
    let first = got
        .iter()
        .zip(want)
        .position(|(g, w)| !g.is_finite() || (*g as f64 - w).abs() / scale > tol)
        .unwrap_or(0);
    panic!(
        "{what}: relative error {err:.3e} > {tol:.1e}; first bad element {first}: got {}, want {}",
        got[first], want[first]
    );
}

/// f32s rounded to f16, as bytes (padded to 4 bytes).
pub fn f16_bytes(d: &[f32]) -> Vec<u8> {
    let mut h: Vec<u16> = d
        .iter()
        .map(|v| half::f16::from_f32(*v).to_bits())
        .collect();
    if h.len() % 2 == 1 {
        h.push(0);
    }
    bytemuck::cast_slice(&h).to_vec()
}

/// f32s rounded through f16, as the f16 kernels see them.
pub fn round_f16(d: &[f32]) -> Vec<f32> {
    d.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect()
}

/// Workgroups needed to cover `n` items with `per` items each.
pub fn groups(n: u32, per: u32) -> u32 {
    n.div_ceil(per)
}

/// `&&`/`||` short-circuit as in Rust (the neighbour reads run only where the index is in
/// range) and `if`/`else if`/`else` yields a value.
#[kernel(workgroup_size = [64, 1, 1])]
pub fn logic_and_if_values(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i < p.n {
        let next_positive = i + 1 < p.n && x[i + 1] > 0.0;
        let first_or_after_negative = i == 0 || x[i - 1] < 0.0;
        let v = if next_positive {
            x[i] * 2.0
        } else if first_or_after_negative {
            -x[i]
        } else {
            0.5f32
        };
        y[i] = v;
    }
}

/// A helper generic over the element type: one source for f32 and f16.
#[kernel_fn]
pub fn scaled_square<E: Numeric>(v: E, s: E) -> E {
    v * v * s
}

/// `y = x² · x` through [`scaled_square`], in the element type `E`.
#[kernel(workgroup_size = [64, 1, 1])]
pub fn generic_cube<E: Numeric>(x: &Array<E>, y: &mut Array<E>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i < p.n {
        y[i] = scaled_square(x[i], x[i]);
    }
}

/// Per workgroup of 64: the sum over each subgroup (`subgroup_add`), the maximum
/// (`subgroup_max`), lane 0's value (`subgroup_broadcast`) and the neighbour's value
/// (`subgroup_shuffle_xor` with mask 1), written per invocation with the subgroup size.
#[kernel(workgroup_size = [64, 1, 1])]
pub fn subgroup_ops(x: &Array<f32>, y: &mut Array<f32>, lanes: &mut Array<u32>) {
    let i = global_id().x;
    let v = x[i];
    y[4 * i] = subgroup_add(v);
    y[4 * i + 1] = subgroup_max(v);
    y[4 * i + 2] = subgroup_broadcast(v, 0);
    y[4 * i + 3] = subgroup_shuffle_xor(v, 1u32);
    lanes[2 * i] = subgroup_invocation_id();
    lanes[2 * i + 1] = subgroup_size();
}

/// Adds `v²` to the caller's variable (a `&mut` helper parameter).
#[kernel_fn]
pub fn add_square(acc: &mut f32, v: f32) {
    *acc += v * v;
}

/// `y[i] = Σ_j x[4i + j]²`, accumulated by [`add_square`] into this kernel's variable.
#[kernel(workgroup_size = [64, 1, 1])]
pub fn sum_squares(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i < p.n {
        let mut acc = 0.0f32;
        for j in 0u32..4u32 {
            add_square(&mut acc, x[4 * i + j]);
        }
        y[i] = acc;
    }
}

/// A 16-bin histogram of `x % 16`, counted per workgroup in workgroup-memory atomics and
/// added to the global bins; `bins[16]` keeps the largest `x` (storage atomics).
#[kernel(workgroup_size = [64, 1, 1])]
pub fn histogram(x: &Array<u32>, bins: &mut Array<Atomic<u32>>, p: &Uniform<Len>) {
    let counts = Shared::<Atomic<u32>>::new(16);
    let i = global_id().x;
    if i < p.n {
        atomic_add(counts, x[i] % 16, 1u32);
        atomic_max(bins, 16u32, x[i]);
    }
    workgroup_barrier();
    let lane = local_index();
    if lane < 16 {
        atomic_add(bins, lane, atomic_load(counts, lane));
    }
}

/// `v·σ(v)`, emitted once as a WGSL function however often it is called.
#[kernel_fn(function)]
pub fn silu_fn(v: f32) -> f32 {
    v / (1.0 + exp(-v))
}

/// The mean of `silu(v·i)` for `i < n`: an emitted function with a loop and a variable that
/// calls another emitted function; one WGSL function per `n`.
#[kernel_fn(function)]
pub fn mean_silu(v: f32, #[comptime] n: u32) -> f32 {
    let mut acc = 0.0f32;
    for i in 0u32..n {
        acc += silu_fn(v * (i as f32));
    }
    acc / (n as f32)
}

/// Emitted helpers called several times, with two compile-time instantiations.
#[kernel(workgroup_size = [64, 1, 1])]
pub fn emitted_helpers(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i < p.n {
        y[2 * i] = silu_fn(x[i]) + silu_fn(x[i] * 2.0);
        y[2 * i + 1] = mean_silu(x[i], 4) + mean_silu(x[i], 3);
    }
}

/// A stretch of `x` to summarize (an element of a storage array of structs: 12 bytes).
#[kernel_struct]
pub struct Segment {
    pub start: u32,
    pub len: u32,
    pub weight: f32,
}

/// A segment's summary: its length and (sum, max, weighted mean). The `vec3` aligns to 16
/// bytes, so the struct takes 32 (WGSL's layout rules).
#[kernel_struct]
pub struct Summary {
    pub count: u32,
    pub stats: Vec3<f32>,
}

/// One invocation per segment: storage arrays of structs read and written whole (field by
/// field in the WGSL), and a struct written through a helper.
#[kernel(workgroup_size = [64, 1, 1])]
pub fn summarize(
    segments: &Array<Segment>,
    x: &Array<f32>,
    out: &mut Array<Summary>,
    p: &Uniform<Len>,
) {
    let i = global_id().x;
    if i < p.n {
        let s = segments[i];
        let mut sum = 0.0f32;
        let mut big = -3.0e38f32;
        for j in s.start..s.start + s.len {
            sum += x[j];
            big = max(big, x[j]);
        }
        let mean = sum * s.weight / max(s.len as f32, 1.0);
        out[i] = Summary {
            count: s.len,
            stats: vec3(sum, big, mean),
        };
    }
}

/// Whether the adapter has subgroups; where not, says that the calling test checks nothing.
pub fn has_subgroups() -> bool {
    let gpu = gpu();
    if !gpu.subgroups {
        eprintln!(
            "not checked: this adapter ({}) has no subgroups",
            gpu.describe()
        );
    }
    gpu.subgroups
}
