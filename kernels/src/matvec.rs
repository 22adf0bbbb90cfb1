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
