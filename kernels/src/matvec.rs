//! Matrix-vector products for a few rows (`M` = batch, 1..16): the time MLP and the AdaLN
//! modulation projections. A tiled matmul would leave almost all of a tile idle; here each
//! output is a dot product over K split across `LANES` invocations (coalesced reads of a
//! weight row) and finished by a tree reduction in workgroup memory. The weights are read
//! once per row of X, which is the floor for this shape.

use crate::elementwise::silu;
use crate::norm::tree_sum;
use webdit_dsl::prelude::*;

/// `Y[m, n] = X[m, k] · W[n, k]ᵀ`; `workgroup_id().y` is the row m.
#[derive(Uniform)]
pub struct MatvecParams {
    pub n: u32,
    pub k: u32,
}

/// Invocations per output.
pub const LANES: u32 = 32;
/// Outputs per workgroup.
pub const OUTPUTS: u32 = 8;

#[kernel(workgroup_size = [LANES * OUTPUTS, 1, 1])]
pub fn matvec<A: ScalarTy, W: ScalarTy>(
    #[comptime] silu_after: bool,
    x: &Array<A>,
    w: &Array<W>,
    y: &mut Array<A>,
    p: &Uniform<MatvecParams>,
) {
    let partial = Shared::<f32>::new(LANES * OUTPUTS);
    let lane = local_id().x % LANES;
    let slot = local_id().x / LANES;
    let col = workgroup_id().x * OUTPUTS + slot;
    let row = workgroup_id().y;
    let mut s = 0.0;
    if col < p.n {
        for i in (lane..p.k).step_by(LANES) {
            s += x[row * p.k + i] as f32 * w[col * p.k + i] as f32;
        }
    }
    let at = local_id().x;
    tree_sum(&partial, LANES, at, lane, s);
    if lane == 0 && col < p.n {
        let v = partial[at];
        if silu_after {
            y[row * p.n + col] = silu(v) as A;
        } else {
            y[row * p.n + col] = v as A;
        }
    }
}

/// `out[at + j] = Σ_i xs[i] · w[j, i]` for `j` in `j_begin..j_end`: one row (`k` values,
/// a multiple of 4, staged in workgroup memory) times weight rows (read as `vec4`s), by one
/// workgroup. Each subgroup takes `cols` outputs at a time, its lanes striding over K with
/// `qu` strides unrolled (coalesced reads of `cols` weight rows, `cols · qu` loads in
/// flight) and `subgroup_add` finishing each sum, so any subgroup size works. Every
/// invocation must call it.
#[kernel_fn]
pub(crate) fn row_times_weights<A: ScalarTy, W: ScalarTy>(
    xs: &Shared<f32>,
    w: &Array<Vec4<W>>,
    out: &mut Array<A>,
    #[comptime] cols: u32,
    #[comptime] qu: u32,
    at: u32,
    j_begin: u32,
    j_end: u32,
    k: u32,
) {
    let lanes = subgroup_size();
    let lane = subgroup_invocation_id();
    let kq = k / 4;
    for j0 in (j_begin + subgroup_id() * cols..j_end).step_by(num_subgroups() * cols) {
        let mut s = [0.0; cols];
        for q0 in (lane..kq).step_by(lanes * qu) {
            #[unroll]
            for u in 0..qu {
                // Unrolled strides past K read the last quad and count zero.
                let q = if qu == 1 {
                    q0
                } else {
                    min(q0 + u * lanes, kq - 1)
                };
                let x4 = vec4(xs[4 * q], xs[4 * q + 1], xs[4 * q + 2], xs[4 * q + 3]);
                let xv = if qu == 1 {
                    x4
                } else {
                    select(q0 + u * lanes < kq, x4, vec4(0.0, 0.0, 0.0, 0.0))
                };
                #[unroll]
                for c in 0..cols {
                    let wq = w[min(j0 + c, j_end - 1) * kq + q];
                    let wv = vec4(wq.x as f32, wq.y as f32, wq.z as f32, wq.w as f32);
                    s[c] += dot(xv, wv);
                }
            }
        }
        #[unroll]
        for c in 0..cols {
            let total = subgroup_add(s[c]);
            if lane == 0 && j0 + c < j_end {
                out[at + j0 + c] = total as A;
            }
        }
    }
}

/// `Y = X · Wᵀ` one row of X per workgroup column (`workgroup_id().x`), its outputs cut
/// into `num_workgroups().y` ranges, for products whose M is too small to tile:
/// [`row_times_weights`] on each row. `K` ≤ [`MAX_K`].
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn matvec_rows<A: ScalarTy, W: ScalarTy, const WG: u32>(
    #[comptime] cols: u32,
    #[comptime] qu: u32,
    x: &Array<A>,
    w: &Array<Vec4<W>>,
    y: &mut Array<A>,
    p: &Uniform<MatvecParams>,
) {
    let xs = Shared::<f32>::new(MAX_K);
    let row = workgroup_id().x;
    for i in (local_id().x..p.k).step_by(WG) {
        xs[i] = x[row * p.k + i] as f32;
    }
    workgroup_barrier();
    let per = (p.n + num_workgroups().y - 1) / num_workgroups().y;
    let j_begin = workgroup_id().y * per;
    let j_end = min(j_begin + per, p.n);
    row_times_weights(&xs, &w, &y, cols, qu, row * p.n, j_begin, j_end, p.k);
}

/// The widest row [`matvec_rows`] takes.
pub const MAX_K: u32 = 1024;
