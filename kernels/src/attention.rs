//! Flash attention: `softmax(q kᵀ · scale) v` per (batch, head), in one pass over K/V tiles
//! with the online softmax (running max and sum), so the N×N scores never exist in memory.
//!
//! A workgroup owns `BQ` query rows of one head. Per tile of `BKV` keys it stages K in
//! workgroup memory (rows padded by one word against bank conflicts), computes the BQ×BKV
//! scores (one per invocation), updates each row's running max/sum, then stages V in the
//! same memory and accumulates `P·V` into per-invocation registers (`DH / BKV` of a row's
//! outputs each). `DH` is the largest head width the variant serves; the run-time width may
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

/// Stages `BKV` rows of `dh` values (row `j` at `base + j·stride`) into `kv` as f32, rows
/// padded to `DH + 1`; rows at or past `valid` become zeros, so that masked probabilities
/// (exactly 0) never meet stale memory.
#[kernel_fn]
fn stage_rows<E: ScalarTy, const DH: u32>(
    src: &Array<E>,
    kv: &Shared<f32>,
    t: u32,
    base: u32,
    stride: u32,
    valid: u32,
    dh: u32,
) {
    #[comptime]
    let threads = BQ * BKV;
    #[unroll]
    for l in 0..(BKV * DH).div_ceil(threads) {
        let idx = t + l * threads;
        let j = idx / DH;
        let d = idx % DH;
        if (l + 1) * threads <= BKV * DH || j < BKV {
            if j < valid && d < dh {
                kv[j * (DH + 1) + d] = src[base + j * stride + d] as f32;
            } else {
                kv[j * (DH + 1) + d] = 0.0;
            }
        }
    }
}

#[kernel(workgroup_size = [BQ * BKV, 1, 1])]
pub fn attention<E: ScalarTy, const DH: u32>(
    qkv: &Array<E>,
    out: &mut Array<E>,
    p: &Uniform<AttentionParams>,
) {
    #[comptime]
    let pad = DH + 1;
    let kv = Shared::<f32>::new(BKV * pad);
    let probs = Shared::<f32>::new(BQ * BKV);
    let row_max = Shared::<f32>::new(BQ);
    let row_sum = Shared::<f32>::new(BQ);
    let row_alpha = Shared::<f32>::new(BQ);

    let t = local_id().x;
    let head = workgroup_id().y;
    let batch = workgroup_id().z;
    let q0 = workgroup_id().x * BQ;
    let inner = p.heads * p.dh;
    let stride = 3 * inner;
    let tok0 = batch * p.n;
    let q_col = head * p.dh;
    let k_col = inner + head * p.dh;
    let v_col = 2 * inner + head * p.dh;

    if t < BQ {
        row_max[t] = NEG;
        row_sum[t] = 0.0;
    }
    // This invocation's score: query row qi, key kj of the tile.
    let qi = t / BKV;
    let kj = t % BKV;
    let q_row = min(q0 + qi, p.n - 1);
    // This invocation's outputs: row `orow`, columns ocol + BKV·i.
    let orow = t / BKV;
    let ocol = t % BKV;
    let mut o = [0.0; DH / BKV];

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
            let mut dot = 0.0;
            for d in 0..p.dh {
                dot = fma(
                    qkv[(tok0 + q_row) * stride + q_col + d] as f32,
                    kv[kj * pad + d],
                    dot,
                );
            }
            s = dot * p.scale;
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
        for i in 0..DH / BKV {
            let d = ocol + i * BKV;
            let mut acc = o[i] * alpha;
            if d < p.dh {
                #[unroll]
                for j in 0..BKV {
                    acc = fma(probs[orow * BKV + j], kv[j * pad + d], acc);
                }
            }
            o[i] = acc;
        }
    }
    let row = q0 + orow;
    if row < p.n {
        let inv = 1.0 / row_sum[orow];
        #[unroll]
        for i in 0..DH / BKV {
            let d = ocol + i * BKV;
            if d < p.dh {
                out[(tok0 + row) * inner + head * p.dh + d] = (o[i] * inv) as E;
            }
        }
    }
}
