//! Flash attention: `softmax(q kᵀ · scale) v` per (batch, head), in one pass over K/V tiles
//! with the online softmax (running max and sum), so the N×N scores never exist in memory.
//!
//! A workgroup owns `BQ` query rows of one head. Per tile of `BKV` keys it stages K in
//! workgroup memory (rows padded by one word against bank conflicts), computes the BQ×BKV
//! scores (one per invocation), updates each row's running max/sum, then stages V in the
//! same memory and accumulates `P·V` into per-invocation registers (`DH / (4·BKV)` quads of
//! a row's outputs each). `DH` is the largest head width the variant serves; the run-time width may
//! be smaller. Q, K and V are read from the fused `qkv` projection `[tokens, 3·heads·dh]`.

use webdit_dsl::prelude::*;

#[derive(Uniform)]
pub struct AttentionParams {
    /// Tokens per batch item.
    pub n: u32,
    /// Head width (≤ the variant's DH).
    pub dh: u32,
    pub heads: u32,
    /// `dh^-0.5`
    pub scale: f32,
}

/// Query rows per workgroup.
pub const BQ: u32 = 16;
/// Keys per tile.
pub const BKV: u32 = 16;
/// The most negative finite f32: the softmax's "minus infinity".
const NEG: f32 = -3.0e38;

/// Stages `BKV` rows of `dh` values (row `j` at quad `base + j·stride`) into `kv` as f32
/// quads, rows padded to `DH/4 + 1` quads (conflict-free `vec4` reads down a column); rows
/// at or past `valid` become zeros, so that masked probabilities (exactly 0) never meet
/// stale memory.
#[kernel_fn]
fn stage_rows<E: ScalarTy, const DH: u32>(
    src: &Array<Vec4<E>>,
    kv: &Shared<Vec4<f32>>,
    t: u32,
    base: u32,
    stride: u32,
    valid: u32,
    dh: u32,
) {
    #[comptime]
    let threads = BQ * BKV;
    #[comptime]
    let quads = DH / 4;
    #[unroll]
    for l in 0..(BKV * quads).div_ceil(threads) {
        let idx = t + l * threads;
        let j = idx / quads;
        let d = idx % quads;
        if (l + 1) * threads <= BKV * quads || j < BKV {
            if j < valid && 4 * d < dh {
                let v = src[base + j * stride + d];
                kv[j * (quads + 1) + d] = vec4(v.x as f32, v.y as f32, v.z as f32, v.w as f32);
            } else {
                kv[j * (quads + 1) + d] = vec4(0.0, 0.0, 0.0, 0.0);
            }
        }
    }
}

/// Attention over one head per `workgroup_id().y`, one batch item per `.z`, `BQ` query rows
/// per `.x`. Everything is read and written as `vec4`s, so the run-time head width `dh`
/// must be a multiple of 4 (and at most `DH`, a multiple of 64).
#[kernel(workgroup_size = [BQ * BKV, 1, 1])]
pub fn attention<E: ScalarTy, const DH: u32>(
    qkv: &Array<Vec4<E>>,
    out: &mut Array<Vec4<E>>,
    p: &Uniform<AttentionParams>,
) {
    #[comptime]
    let quads = DH / 4;
    #[comptime]
    let pad = quads + 1;
    let kv = Shared::<Vec4<f32>>::new(BKV * pad);
    let probs = Shared::<f32>::new(BQ * BKV);
    let row_max = Shared::<f32>::new(BQ);
    let row_sum = Shared::<f32>::new(BQ);
    let row_alpha = Shared::<f32>::new(BQ);

    let t = local_id().x;
    let head = workgroup_id().y;
    let batch = workgroup_id().z;
    let q0 = workgroup_id().x * BQ;
    // In quads: a token's row of the fused projection, and where Q, K, V of this head start.
    let inner = p.heads * p.dh / 4;
    let stride = 3 * inner;
    let tok0 = batch * p.n;
    let q_col = head * p.dh / 4;
    let k_col = inner + q_col;
    let v_col = 2 * inner + q_col;

    if t < BQ {
        row_max[t] = NEG;
        row_sum[t] = 0.0;
    }
    // This invocation's score: query row qi, key kj of the tile.
    let qi = t / BKV;
    let kj = t % BKV;
    let q_at = (tok0 + min(q0 + qi, p.n - 1)) * stride + q_col;
    // This invocation's outputs: row `orow`, quads ocol + BKV·i.
    let orow = t / BKV;
    let ocol = t % BKV;
    let mut o = [vec4(0.0, 0.0, 0.0, 0.0); quads / BKV];

    for j0 in (0..p.n).step_by(BKV) {
        workgroup_barrier();
        stage_rows::<E, DH>(
            &qkv,
            &kv,
            t,
            (tok0 + j0) * stride + k_col,
            stride,
            p.n - j0,
            p.dh,
        );
        workgroup_barrier();
        let mut s = NEG;
        if j0 + kj < p.n {
            let mut dot4 = vec4(0.0, 0.0, 0.0, 0.0);
            #[unroll]
            for d in 0..quads {
                if 4 * d < p.dh {
                    let q = qkv[q_at + d];
                    let q = vec4(q.x as f32, q.y as f32, q.z as f32, q.w as f32);
                    dot4 = fma(q, kv[kj * pad + d], dot4);
                }
            }
            s = (dot4.x + dot4.y + dot4.z + dot4.w) * p.scale;
        }
        probs[qi * BKV + kj] = s;
        workgroup_barrier();
        if t < BQ {
            let old = row_max[t];
            let mut m = old;
            #[unroll]
            for j in 0..BKV {
                m = max(m, probs[t * BKV + j]);
            }
            let mut sum = 0.0;
            #[unroll]
            for j in 0..BKV {
                let e = select(j0 + j < p.n, exp(probs[t * BKV + j] - m), 0.0);
                probs[t * BKV + j] = e;
                sum += e;
            }
            let alpha = exp(old - m);
            row_alpha[t] = alpha;
            row_sum[t] = row_sum[t] * alpha + sum;
            row_max[t] = m;
        }
        stage_rows::<E, DH>(
            &qkv,
            &kv,
            t,
            (tok0 + j0) * stride + v_col,
            stride,
            p.n - j0,
            p.dh,
        );
        workgroup_barrier();
        let alpha = row_alpha[orow];
        #[unroll]
        for i in 0..quads / BKV {
            let d = ocol + i * BKV;
            let mut acc = o[i] * alpha;
            if 4 * d < p.dh {
                #[unroll]
                for j in 0..BKV {
                    acc = fma(splat(probs[orow * BKV + j]), kv[j * pad + d], acc);
                }
            }
            o[i] = acc;
        }
    }
    let row = q0 + orow;
    if row < p.n {
        let inv = 1.0 / row_sum[orow];
        #[unroll]
        for i in 0..quads / BKV {
            let d = ocol + i * BKV;
            if 4 * d < p.dh {
                let v = o[i] * inv;
                out[(tok0 + row) * inner + q_col + d] =
                    vec4(v.x as E, v.y as E, v.z as E, v.w as E);
            }
        }
    }
}
