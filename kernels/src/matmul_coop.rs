//! The matrix product on tensor cores: `C = A · Wᵀ` with f16 operands accumulated in f32 by
//! the DSL's cooperative matrices (16×16×16 tiles, one subgroup each). Native only; used
//! where the adapter has cooperative matrices at that configuration and 32-lane subgroups.

use crate::elementwise::silu;
use crate::matmul::{operands, store_inside, Epilogue, MatmulParams, Operands};
use webdit_dsl::coop::*;
use webdit_dsl::ir::Limits;
use webdit_dsl::prelude::*;

/// Side of a cooperative-matrix tile.
pub const FRAG: u32 = 16;
/// Lanes per subgroup the kernel is laid out for (NVIDIA's warps).
pub const LANES: u32 = 32;

/// Tile parameters of [`matmul_coop`]: a `bm`×`bn` block of C per workgroup, K in steps of
/// `bk`, split over `warps_m`×`warps_n` subgroups of [`LANES`] lanes, each computing
/// `bm/warps_m`×`bn/warps_n` outputs as 16×16 fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopTiles {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub warps_m: u32,
    pub warps_n: u32,
    /// Copies of the staged tiles: 2 overlaps staging a K-step with multiplying the
    /// previous one (one barrier per K-step).
    pub stages: u32,
    /// K-steps whose global loads are in flight while one is multiplied: 1, or 2 (two sets
    /// of registers, each K-step's loads issued two multiplies ahead; with an odd number
    /// of K-steps the last pair multiplies a step of zeros).
    pub prefetch: u32,
}

impl CoopTiles {
    /// Fragments per subgroup along M and N.
    pub const fn frags(&self) -> (u32, u32) {
        (self.bm / self.warps_m / FRAG, self.bn / self.warps_n / FRAG)
    }

    /// These tiles with each K-step's global loads issued `k` multiplies ahead (1 or 2).
    pub const fn ahead(self, k: u32) -> Self {
        CoopTiles {
            prefetch: k,
            ..self
        }
    }

    pub const fn threads(&self) -> u32 {
        self.warps_m * self.warps_n * LANES
    }

    /// Elements between rows of a staged tile: `bk` plus 8 halves of padding, so that the
    /// rows of a fragment fall in different memory banks.
    pub const fn stride(&self) -> u32 {
        self.bk + 8
    }

    /// The limits its kernels need (workgroup memory beyond WebGPU's 16 KiB, more than 256
    /// invocations for more than 8 subgroups).
    pub const fn limits(&self) -> Limits {
        let staged = self.stages * (self.bm + self.bn) * self.stride() * 2;
        let out = self.warps_m * self.warps_n * FRAG * FRAG * 4;
        let w = Limits::WEBGPU;
        let threads = self.threads();
        let invocations = if threads > w.max_invocations_per_workgroup {
            threads
        } else {
            w.max_invocations_per_workgroup
        };
        Limits {
            max_workgroup_storage_bytes: staged + out,
            max_invocations_per_workgroup: invocations,
            max_workgroup_size: [invocations, 256, 64],
            ..w
        }
    }
}

/// The tensor-core tile for products too small to fill the GPU with [`COOP_TILES_LARGE`]:
/// 128×128 per workgroup of 16 subgroups (4×4, 32×32 each), K-step 32, single-buffered,
/// each K-step's global loads issued two multiplies ahead (`bench --coop` on an H200: 117
/// TFLOP/s at 1024×2048×512 and 140 at 4096³, against 104 and 92 for the previous tile:
/// 8 subgroups of 64×32, double-buffered, loads one multiply ahead).
pub const COOP_TILES: CoopTiles = CoopTiles {
    bm: 128,
    bn: 128,
    bk: 32,
    warps_m: 4,
    warps_n: 4,
    stages: 1,
    prefetch: 2,
};

/// The tensor-core tile of split-K partial products of at most 64 rows (favicon-s batch 1,
/// where the 128-row tile multiplies half zeros): 64×128 per workgroup of 8 subgroups (2×4,
/// 32×32 each), K-step 32, double-buffered. On an H100 MLP in and out at 64 rows took 7.5
/// and 9.6 µs instead of 9.7 and 12.5; at 256 rows (favicon-b batch 1) it is slower than
/// 128×128 (26.7 against 17.5 µs), which keeps those.
pub const COOP_TILES_SPLIT: CoopTiles = CoopTiles {
    bm: 64,
    bn: 128,
    bk: 32,
    warps_m: 2,
    warps_n: 4,
    stages: 2,
    prefetch: 1,
};

/// The tensor-core tile for large products: 256×128 per workgroup of 16 subgroups (4×4,
/// 64×32 each, 512 invocations), K-step 32, single-buffered to fit 48 KiB, each K-step's
/// global loads issued two multiplies ahead (`bench --coop-sweep` on an H200: 198.8
/// TFLOP/s at 4096³ and 178.8 at 4096×3072×768; 144.4 and 149.3 with loads one multiply
/// ahead; 182.8 with 8×2 subgroups of 32×64).
pub const COOP_TILES_LARGE: CoopTiles = CoopTiles {
    bm: 256,
    bn: 128,
    bk: 32,
    warps_m: 4,
    warps_n: 4,
    stages: 1,
    prefetch: 2,
};

/// The tensor-core tile for large products that [`COOP_TILES_LARGE`] leaves short of one
/// wave of workgroups: 192×128 per workgroup of 12 subgroups (6×2, 32×64 each), K-step 32,
/// single-buffered. `bench --coop-sweep` on an H100 (132 SMs): favicon-b batch 16's MLP out
/// (4096×768×3072) 149.4 TFLOP/s on 132 workgroups against 106.8 on the 256-row tile's 96;
/// at 4096³ (704 workgroups, 5.3 waves) it loses, 136.0 against 145.7.
pub const COOP_TILES_FILL: CoopTiles = CoopTiles {
    bm: 192,
    bn: 128,
    bk: 32,
    warps_m: 6,
    warps_n: 2,
    stages: 1,
    prefetch: 1,
};

/// `C[m, n] = A[m, k] · W[n, k]ᵀ` (then `epilogue`) with A and W in f16 and the products
/// accumulated in f32 on tensor cores; C in `C`. K must be a multiple of 4 (A and W are read
/// as `Vec4`s); M and N are any size (the edges are padded with zeros in workgroup memory
/// and masked on store). Batched over `workgroup_id().z` as [`crate::matmul::matmul`].
///
/// With `a_parts = s > 0`, `a` holds the `s` f32 partial products of the split-K that makes
/// A (`[s][m][k_stride]`), not yet reduced: A is `silu` of their sum, rounded to f16 as it
/// is loaded, the same bits [`crate::matmul::splitk_reduce`] with [`Epilogue::Silu`] would
/// have stored (an MLP's hidden layer, with one dispatch less).
#[kernel(workgroup_size = [t.threads(), 1, 1])]
pub fn matmul_coop<A: ScalarTy, C: ScalarTy>(
    #[comptime] t: CoopTiles,
    #[comptime] epilogue: Epilogue,
    #[comptime] a_parts: u32,
    a: &Array<Vec4<A>>,
    w: &Array<Vec4<f16>>,
    c: &mut Array<C>,
    extra: &Array<C>,
    p: &Uniform<MatmulParams>,
) {
    #[comptime]
    let fm = t.frags().0;
    #[comptime]
    let fn_ = t.frags().1;
    #[comptime]
    let threads = t.threads();
    #[comptime]
    let stride = t.stride();
    #[comptime]
    let quads = t.bk / 4;
    #[comptime]
    let a_size = t.bm * stride;
    #[comptime]
    let w_size = t.bn * stride;
    #[comptime]
    let a_loads = (t.bm * quads).div_ceil(threads);
    #[comptime]
    let w_loads = (t.bn * quads).div_ceil(threads);
    let a_tile = Shared::<f16>::new(t.stages * a_size);
    let w_tile = Shared::<f16>::new(t.stages * w_size);
    let out = Shared::<f32>::new(t.warps_m * t.warps_n * FRAG * FRAG);
    let tid = local_index();
    let warp = subgroup_id();
    let lane = subgroup_invocation_id();
    let warp_row = (warp / t.warps_n) * (t.bm / t.warps_m);
    let warp_col = (warp % t.warps_n) * (t.bn / t.warps_n);
    let row0 = workgroup_id().y * t.bm;
    let col0 = workgroup_id().x * t.bn;
    let c_base = workgroup_id().z * p.c_batch_stride;
    let mut acc = [coop_zero::<CoopMat<f32, MatC, 16>>(); fm * fn_];
    let mut fa = [coop_zero::<CoopMat<f16, MatA, 16>>(); fm];
    let mut fb = [coop_zero::<CoopMat<f16, MatB, 16>>(); fn_];
    let mut regs = [vec4(f16(0.0), f16(0.0), f16(0.0), f16(0.0)); a_loads + w_loads];
    // A's partial products as loaded, summed and put through SiLU only when staged, so
    // that their loads stay in flight during the multiply.
    let mut parts = [vec4(0.0, 0.0, 0.0, 0.0); (a_loads * a_parts).max(1)];
    let at = operands(p, row0, col0);
    let k_steps = (at.k + t.bk - 1) / t.bk;
    fetch_step(&a, &w, &regs, &parts, t, a_parts, tid, at, 0);
    // Iteration `i` stages K-step `i` (fetched into registers by the iteration before, or
    // above), loads K-step `i + 1` into registers, and multiplies K-step `i` while those
    // loads are in flight: one call site each, so the WGSL holds each once. With two
    // stages the next iteration stages into the other copy, which every subgroup finished
    // multiplying before this iteration's barrier. The multiply is outside any `if`:
    // cooperative-matrix operations need control flow that is uniform for naga's
    // analysis, which does not follow loop counters.
    if t.prefetch == 1 {
        for i in 0..k_steps {
            let a_off = (i % t.stages) * a_size;
            let w_off = (i % t.stages) * w_size;
            stage_step(
                &regs, &parts, &a_tile, &w_tile, t, a_parts, tid, a_off, w_off,
            );
            workgroup_barrier();
            if i + 1 < k_steps {
                fetch_step(&a, &w, &regs, &parts, t, a_parts, tid, at, (i + 1) * t.bk);
            }
            multiply_step(
                &a_tile, &w_tile, &fa, &fb, &acc, t, a_off, w_off, warp_row, warp_col,
            );
            if t.stages == 1 {
                // Everyone has read the tiles before the next iteration overwrites them.
                workgroup_barrier();
            }
        }
    }
    // The same with two register sets: K-step `i` is staged from set `i % 2`, which is
    // then refilled with K-step `i + 2`, so each K-step's loads have two multiplies to
    // arrive. Steps past K load as zeros (an odd count multiplies one step of zeros: the
    // multiply cannot sit in an `if`).
    // Each set has its own branch, not a `select`: reading the other set would wait for
    // the loads still in flight into it.
    if t.prefetch == 2 {
        let mut regs2 = [vec4(f16(0.0), f16(0.0), f16(0.0), f16(0.0)); a_loads + w_loads];
        let mut parts2 = [vec4(0.0, 0.0, 0.0, 0.0); (a_loads * a_parts).max(1)];
        fetch_step(&a, &w, &regs2, &parts2, t, a_parts, tid, at, t.bk);
        for i in (0..k_steps).step_by(2) {
            for s in 0..2u32 {
                let step = i + s;
                let a_off = (step % t.stages) * a_size;
                let w_off = (step % t.stages) * w_size;
                if s == 0 {
                    stage_step(
                        &regs, &parts, &a_tile, &w_tile, t, a_parts, tid, a_off, w_off,
                    );
                } else {
                    stage_step(
                        &regs2, &parts2, &a_tile, &w_tile, t, a_parts, tid, a_off, w_off,
                    );
                }
                workgroup_barrier();
                let next = (step + 2) * t.bk;
                if s == 0 {
                    fetch_step(&a, &w, &regs, &parts, t, a_parts, tid, at, next);
                } else {
                    fetch_step(&a, &w, &regs2, &parts2, t, a_parts, tid, at, next);
                }
                multiply_step(
                    &a_tile, &w_tile, &fa, &fb, &acc, t, a_off, w_off, warp_row, warp_col,
                );
                if t.stages == 1 {
                    workgroup_barrier();
                }
            }
        }
    }
    // Each fragment goes through this subgroup's 16×16 slot of workgroup memory, from
    // which its lanes store (masked at the edges, with the epilogue) eight values each.
    let slot = warp * FRAG * FRAG;
    #[unroll]
    for f in 0..fm * fn_ {
        coop_store(acc[f], out, slot, FRAG, true);
        workgroup_barrier();
        // A GPU loop: the WGSL holds one masked store per fragment, not one per value.
        for e in 0..FRAG * FRAG / LANES {
            let idx = lane + e * LANES;
            let r = row0 + warp_row + (f / fn_) * FRAG + idx / FRAG;
            let col = col0 + warp_col + (f % fn_) * FRAG + idx % FRAG;
            store_inside(&c, &extra, epilogue, p, c_base, r, col, out[slot + idx]);
        }
        workgroup_barrier();
    }
}

/// One K-step's products from the staged tiles at `a_off`, `w_off`: `acc += A · B` for
/// this subgroup's fragments (B = Wᵀ: column n of B is row n of the W tile, so it loads
/// column-major).
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn multiply_step(
    a_tile: &Shared<f16>,
    w_tile: &Shared<f16>,
    fa: &mut LocalArray<CoopMat<f16, MatA, 16>>,
    fb: &mut LocalArray<CoopMat<f16, MatB, 16>>,
    acc: &mut LocalArray<CoopMat<f32, MatC, 16>>,
    #[comptime] t: CoopTiles,
    a_off: u32,
    w_off: u32,
    warp_row: u32,
    warp_col: u32,
) {
    #[comptime]
    let fm = t.frags().0;
    #[comptime]
    let fn_ = t.frags().1;
    #[comptime]
    let stride = t.stride();
    #[unroll]
    for kk in 0..t.bk / FRAG {
        #[unroll]
        for f in 0..fm {
            fa[f] = coop_load::<CoopMat<f16, MatA, 16>>(
                a_tile,
                a_off + (warp_row + f * FRAG) * stride + kk * FRAG,
                stride,
                true,
            );
        }
        #[unroll]
        for f in 0..fn_ {
            fb[f] = coop_load::<CoopMat<f16, MatB, 16>>(
                w_tile,
                w_off + (warp_col + f * FRAG) * stride + kk * FRAG,
                stride,
                false,
            );
        }
        #[unroll]
        for x in 0..fm {
            #[unroll]
            for y in 0..fn_ {
                acc[x * fn_ + y] = coop_mul_add(fa[x], fb[y], acc[x * fn_ + y]);
            }
        }
    }
}

/// Loads K-step `k0` of A's and W's tiles into registers, four halves per load, zeros past
/// the edges (A as its `a_parts` partial products in `parts`, if any).
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn fetch_step<A: ScalarTy>(
    a: &Array<Vec4<A>>,
    w: &Array<Vec4<f16>>,
    regs: &mut LocalArray<Vec4<f16>>,
    parts: &mut LocalArray<Vec4<f32>>,
    #[comptime] t: CoopTiles,
    #[comptime] a_parts: u32,
    tid: u32,
    at: Operands,
    k0: u32,
) {
    #[comptime]
    let a_regs = (t.bm * t.bk / 4).div_ceil(t.threads());
    fetch_tile(
        &a, &regs, &parts, 0, t.bm, t, a_parts, tid, at.row0, at.m, at.a_at, at.stride, k0, at.k,
    );
    fetch_tile(
        &w, &regs, &parts, a_regs, t.bn, t, 0, tid, at.col0, at.n, at.w_at, at.stride, k0, at.k,
    );
}

/// Rows `row0..row0 + rows` (of `limit`) of one operand's K-step `k0`, from quad `base`, into
/// `regs[first..]`, zeros past the edges; with `n_parts > 0`, into `parts` instead: each
/// quad of each of `n_parts` partial products (`limit` rows of `stride` quads each), for
/// [`stage_tile`] to sum.
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn fetch_tile<S: ScalarTy>(
    src: &Array<Vec4<S>>,
    regs: &mut LocalArray<Vec4<f16>>,
    parts: &mut LocalArray<Vec4<f32>>,
    #[comptime] first: u32,
    #[comptime] rows: u32,
    #[comptime] t: CoopTiles,
    #[comptime] n_parts: u32,
    tid: u32,
    row0: u32,
    limit: u32,
    base: u32,
    stride: u32,
    k0: u32,
    k: u32,
) {
    #[comptime]
    let quads = t.bk / 4;
    #[comptime]
    let threads = t.threads();
    #[unroll]
    for l in 0..(rows * quads).div_ceil(threads) {
        let q = tid + l * threads;
        let gr = row0 + q / quads;
        let gk = k0 + 4 * (q % quads);
        if n_parts == 0 {
            regs[first + l] = if q < rows * quads && gr < limit && gk < k {
                src[base + gr * stride + gk / 4] as Vec4<f16>
            } else {
                vec4(f16(0.0), f16(0.0), f16(0.0), f16(0.0))
            };
        }
        if n_parts > 0 {
            let inside = q < rows * quads && gr < limit && gk < k;
            #[unroll]
            for z in 0..n_parts {
                parts[l * n_parts + z] = if inside {
                    src[z * limit * stride + base + gr * stride + gk / 4] as Vec4<f32>
                } else {
                    vec4(0.0, 0.0, 0.0, 0.0)
                };
            }
        }
    }
}

/// Writes the registers [`fetch_step`] filled into the staged tiles at `a_off`, `w_off`
/// (rows `stride` halves apart).
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn stage_step(
    regs: &mut LocalArray<Vec4<f16>>,
    parts: &mut LocalArray<Vec4<f32>>,
    a_tile: &Shared<f16>,
    w_tile: &Shared<f16>,
    #[comptime] t: CoopTiles,
    #[comptime] a_parts: u32,
    tid: u32,
    a_off: u32,
    w_off: u32,
) {
    #[comptime]
    let a_regs = (t.bm * t.bk / 4).div_ceil(t.threads());
    stage_tile(&regs, &parts, &a_tile, 0, t.bm, t, a_parts, tid, a_off);
    stage_tile(&regs, &parts, &w_tile, a_regs, t.bn, t, 0, tid, w_off);
}

/// Writes `regs[first..]` ([`fetch_tile`]'s `rows` rows) into `tile` at `off`; with
/// `n_parts > 0`, `silu` of the sum of each quad's partial products in `parts` (summed in
/// the reduction's order, from zero, and rounded to f16 as the reduction stores it).
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn stage_tile(
    regs: &mut LocalArray<Vec4<f16>>,
    parts: &mut LocalArray<Vec4<f32>>,
    tile: &Shared<f16>,
    #[comptime] first: u32,
    #[comptime] rows: u32,
    #[comptime] t: CoopTiles,
    #[comptime] n_parts: u32,
    tid: u32,
    off: u32,
) {
    #[comptime]
    let quads = t.bk / 4;
    #[comptime]
    let threads = t.threads();
    #[unroll]
    for l in 0..(rows * quads).div_ceil(threads) {
        let q = tid + l * threads;
        if q < rows * quads {
            let at = off + (q / quads) * t.stride() + 4 * (q % quads);
            if n_parts == 0 {
                store_quad(&tile, at, regs[first + l]);
            }
            if n_parts > 0 {
                let mut s = vec4(0.0, 0.0, 0.0, 0.0);
                #[unroll]
                for z in 0..n_parts {
                    s += parts[l * n_parts + z];
                }
                let v = vec4(silu(s.x), silu(s.y), silu(s.z), silu(s.w));
                store_quad(&tile, at, v as Vec4<f16>);
            }
        }
    }
}

/// Writes quad `v` to `tile[at..at + 4]`, a half at a time (cooperative loads need the
/// tile's elements to be scalars).
#[kernel_fn]
fn store_quad(tile: &Shared<f16>, at: u32, v: Vec4<f16>) {
    tile[at] = v.x;
    tile[at + 1] = v.y;
    tile[at + 2] = v.z;
    tile[at + 3] = v.w;
}
