//! Row-wise normalization with workgroup reductions.

use crate::matmul::{store, sum_parts, Epilogue};
use crate::matvec::{row_times_weights, MAX_K};
use webdit_dsl::prelude::*;

/// Shape of an AdaLN: rows of width `d`; the `rows_per_batch` rows of batch item b share
/// the modulation `scale = mods[b·mod_stride + scale_at ..][..d]` (likewise `shift`): all
/// AdaLNs of a model read their modulations from one `[batch, mod_stride]` buffer.
#[derive(Uniform)]
pub struct AdaLnParams {
    pub d: u32,
    pub rows_per_batch: u32,
    pub mod_stride: u32,
    pub scale_at: u32,
    pub shift_at: u32,
}

/// Tree-sums the `width` values (a power of two) that invocations `lane = 0..width` of one
/// group store at `buf[at]` (`at - lane` the group's first slot): afterwards the total is in
/// `buf[at - lane]`. Every invocation of the workgroup must call it (it has barriers).
#[kernel_fn]
pub fn tree_sum(buf: &Shared<f32>, #[comptime] width: u32, at: u32, lane: u32, v: f32) {
    buf[at] = v;
    workgroup_barrier();
    #[unroll]
    for stride in halvings(width) {
        if lane < stride {
            buf[at] += buf[at + stride];
        }
        workgroup_barrier();
    }
}

/// The sum of `v` over the workgroup's `WG` invocations (a power of two). Every invocation
/// gets the total (with `WG = 1`, `v` itself). With `subgroups`, each subgroup adds its lanes in registers
/// (`subgroup_add`) and the workgroup adds one value per subgroup (any subgroup size: 8 on
/// lavapipe, 32 on NVIDIA); without, a tree through workgroup memory (every adapter).
#[kernel_fn]
pub fn block_sum<const WG: u32>(buf: &Shared<f32>, v: f32, #[comptime] subgroups: bool) -> f32 {
    if WG == 1 {
        // One invocation per workgroup (software adapters): nothing to add, no barriers.
        v
    } else if subgroups {
        let part = subgroup_add(v);
        if subgroup_invocation_id() == 0 {
            buf[subgroup_id()] = part;
        }
        workgroup_barrier();
        let mut total = 0.0;
        for s in 0..num_subgroups() {
            total += buf[s];
        }
        workgroup_barrier();
        total
    } else {
        let lane = local_id().x;
        tree_sum(&buf, WG, lane, lane, v);
        let total = buf[0];
        workgroup_barrier();
        total
    }
}

/// `1 / (std + 1e-5)` of a row of `n` values whose squared deviations from the mean sum,
/// over the workgroup's invocations, to `v`: the *unbiased* std, the epsilon added to the
/// std (not inside the square root), as the original model's AdaLN. Every invocation must
/// call it (see [`block_sum`]).
#[kernel_fn]
fn inv_std<const WG: u32>(buf: &Shared<f32>, v: f32, n: u32, #[comptime] subgroups: bool) -> f32 {
    1.0 / (sqrt(block_sum::<WG>(&buf, v, subgroups) / ((n - 1) as f32)) + 1e-5)
}

/// The original model's AdaLN, one workgroup per row:
/// `y = (x - mean) / (std + 1e-5) * (1 + scale) + shift` with the *unbiased* std and the
/// epsilon added to the std (not inside the square root), as checkpoints expect. Its sums
/// use subgroup operations when `subgroups` (native-only variants the runtime picks where
/// the adapter has them) and workgroup memory otherwise.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn adaln<A: ScalarTy, const WG: u32>(
    #[comptime] subgroups: bool,
    x: &Array<A>,
    mods: &Array<f32>,
    y: &mut Array<A>,
    p: &Uniform<AdaLnParams>,
) {
    let partial = Shared::<f32>::new(WG);
    let row = workgroup_id().x;
    let lane = local_id().x;
    let base = row * p.d;

    let mut s = 0.0;
    for i in (lane..p.d).step_by(WG) {
        s += x[base + i] as f32;
    }
    let mean = block_sum::<WG>(&partial, s, subgroups) / (p.d as f32);

    let mut v = 0.0;
    for i in (lane..p.d).step_by(WG) {
        let c = x[base + i] as f32 - mean;
        v += c * c;
    }
    let inv = inv_std::<WG>(&partial, v, p.d, subgroups);

    let m = (row / p.rows_per_batch) * p.mod_stride;
    for i in (lane..p.d).step_by(WG) {
        let scale = mods[m + p.scale_at + i];
        let shift = mods[m + p.shift_at + i];
        y[base + i] = ((x[base + i] as f32 - mean) * inv * (1.0 + scale) + shift) as A;
    }
}

/// Shape of [`splitk_reduce_adaln`]: a split-K reduction of `splits` partial products of
/// `rows × n` outputs, then an AdaLN of each output row (as [`AdaLnParams`], `d = n`).
#[derive(Uniform)]
pub struct ReduceNormParams {
    pub mn: u32,
    pub n: u32,
    pub splits: u32,
    pub rows_period: u32,
    pub rows_per_batch: u32,
    pub mod_stride: u32,
    pub scale_at: u32,
    pub shift_at: u32,
}

/// A split-K reduction whose outputs (through the epilogue: the residual accumulated, or a
/// row table added) are normalized at once: one workgroup per row sums its partial
/// products, stores the row, and writes the AdaLN of the stored (storage-rounded) values to
/// `y`, so the reduction and the next AdaLN take one dispatch. The same sums in the same
/// order as [`crate::matmul::splitk_reduce`] followed by [`adaln`], so the same bits.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn splitk_reduce_adaln<A: ScalarTy, const WG: u32>(
    #[comptime] epilogue: Epilogue,
    #[comptime] subgroups: bool,
    parts: &Array<f32>,
    c: &mut Array<A>,
    extra: &Array<A>,
    mods: &Array<f32>,
    y: &mut Array<A>,
    p: &Uniform<ReduceNormParams>,
) {
    let partial = Shared::<f32>::new(WG);
    let row = workgroup_id().x;
    let lane = local_id().x;
    let base = row * p.n;

    let mut s = 0.0;
    for i in (lane..p.n).step_by(WG) {
        let v = sum_parts(&parts, p.splits, p.mn, base + i);
        store(
            &c,
            &extra,
            epilogue,
            base + i,
            row,
            i,
            p.rows_period,
            p.n,
            v,
        );
        s += c[base + i] as f32;
    }
    let mean = block_sum::<WG>(&partial, s, subgroups) / (p.n as f32);

    let mut v = 0.0;
    for i in (lane..p.n).step_by(WG) {
        let c = c[base + i] as f32 - mean;
        v += c * c;
    }
    let inv = inv_std::<WG>(&partial, v, p.n, subgroups);

    let m = (row / p.rows_per_batch) * p.mod_stride;
    for i in (lane..p.n).step_by(WG) {
        let scale = mods[m + p.scale_at + i];
        let shift = mods[m + p.shift_at + i];
        y[base + i] = ((c[base + i] as f32 - mean) * inv * (1.0 + scale) + shift) as A;
    }
}

/// Shape of [`splitk_reduce_adaln_linear`]: [`ReduceNormParams`]'s reduction and AdaLN,
/// then each normalized row (`n` ≤ [`MAX_K`] values) times `n_out` weight rows.
#[derive(Uniform)]
pub struct ReduceNormLinearParams {
    pub mn: u32,
    pub n: u32,
    pub splits: u32,
    pub rows_period: u32,
    pub rows_per_batch: u32,
    pub mod_stride: u32,
    pub scale_at: u32,
    pub shift_at: u32,
    pub n_out: u32,
}

impl ReduceNormParams {
    /// This reduction and AdaLN, then each row times `n_out` weight rows.
    pub fn then_linear(&self, n_out: u32) -> ReduceNormLinearParams {
        ReduceNormLinearParams {
            mn: self.mn,
            n: self.n,
            splits: self.splits,
            rows_period: self.rows_period,
            rows_per_batch: self.rows_per_batch,
            mod_stride: self.mod_stride,
            scale_at: self.scale_at,
            shift_at: self.shift_at,
            n_out,
        }
    }
}

/// Outputs each subgroup of [`splitk_reduce_adaln_linear`] takes at a time, and the strides
/// over K it unrolls (`bench --row-products` on an H200, favicon-s batch 1's qkv alone,
/// 64×384×512 with f16 storage: 6.9 µs, 7.0 with 4 strides unrolled; f32 6.9 unrolled,
/// 7.8 not, but f32 plans do not fuse).
pub const LINEAR_COLS: u32 = 4;
pub const LINEAR_UNROLL: u32 = 1;

/// [`splitk_reduce_adaln`] and the product that reads its AdaLN, in one dispatch, for
/// products of too few rows to tile (favicon-s batch 1's qkv: 64 rows). Workgroup
/// (`row`, `g`) of a `rows × G` grid sums its row's partial products through the epilogue
/// (the residual `c` accumulated, or the row table `extra` added), normalizes the row in
/// workgroup memory and multiplies it by its `1/G` of `w`'s rows into `out`
/// ([`row_times_weights`]), so the product needs neither a tile nor a split of K. Every
/// workgroup of a row computes the row; the first (`g = 0`) stores the new residual in `h`,
/// which must not be `c` (the row's other workgroups may still be reading `c`). The
/// residual and the normalized row are rounded to `A` as the unfused plan stores them, and
/// summed in the same order, so the AdaLN's values are the same bits; the product's sums
/// are in another order than a tiled product's. Needs subgroups.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn splitk_reduce_adaln_linear<A: ScalarTy, const WG: u32>(
    #[comptime] epilogue: Epilogue,
    parts: &Array<f32>,
    c: &Array<A>,
    extra: &Array<A>,
    mods: &Array<f32>,
    w: &Array<Vec4<A>>,
    h: &mut Array<A>,
    out: &mut Array<A>,
    p: &Uniform<ReduceNormLinearParams>,
) {
    let partial = Shared::<f32>::new(WG);
    let xs = Shared::<f32>::new(MAX_K);
    let row = workgroup_id().x;
    let lane = local_id().x;
    let base = row * p.n;
    let first = workgroup_id().y == 0;

    let mut s = 0.0;
    for i in (lane..p.n).step_by(WG) {
        let v = sum_parts(&parts, p.splits, p.mn, base + i);
        let r = if epilogue == Epilogue::Accumulate {
            (c[base + i] as f32 + v) as A
        } else {
            (v + extra[(row % p.rows_period) * p.n + i] as f32) as A
        };
        if first {
            h[base + i] = r;
        }
        xs[i] = r as f32;
        s += r as f32;
    }
    let mean = block_sum::<WG>(&partial, s, true) / (p.n as f32);

    let mut v = 0.0;
    for i in (lane..p.n).step_by(WG) {
        let d = xs[i] - mean;
        v += d * d;
    }
    let inv = inv_std::<WG>(&partial, v, p.n, true);

    let m = (row / p.rows_per_batch) * p.mod_stride;
    for i in (lane..p.n).step_by(WG) {
        let scale = mods[m + p.scale_at + i];
        let shift = mods[m + p.shift_at + i];
        xs[i] = (((xs[i] - mean) * inv * (1.0 + scale) + shift) as A) as f32;
    }
    workgroup_barrier();
    let per = (p.n_out + num_workgroups().y - 1) / num_workgroups().y;
    let j_begin = workgroup_id().y * per;
    let j_end = min(j_begin + per, p.n_out);
    row_times_weights(
        &xs,
        &w,
        &out,
        LINEAR_COLS,
        LINEAR_UNROLL,
        row * p.n_out,
        j_begin,
        j_end,
        p.n,
    );
}
