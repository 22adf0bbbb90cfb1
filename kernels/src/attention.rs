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
    /// [`attention_split`]: slices of the keys, and keys per slice (a multiple of `BKV`).
    pub chunks: u32,
    pub chunk: u32,
}

impl AttentionParams {
    /// Unsplit attention over `n` tokens.
    pub fn new(n: u32, dh: u32, heads: u32) -> Self {
        AttentionParams {
            n,
            dh,
            heads,
            scale: (dh as f32).powf(-0.5),
            chunks: 1,
            chunk: n.next_multiple_of(BKV),
        }
    }

    /// The same attention with its keys cut into `chunks` slices (for [`attention_split`]).
    pub fn split(self, chunks: u32) -> Self {
        let chunk = self.n.div_ceil(chunks).next_multiple_of(BKV);
        AttentionParams {
            chunks: self.n.div_ceil(chunk),
            chunk,
            ..self
        }
    }
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

/// The online softmax of this workgroup's `BQ` query rows over keys `j_start..j_end`:
/// leaves this invocation's outputs `o` unnormalized and its row's max and sum (divide by
/// it) in `row_stats`. `q_at`, `k_at`, `v_at` (the first key's row) and `stride` count quads.
#[kernel_fn]
fn attend<E: ScalarTy, const DH: u32>(
    qkv: &Array<Vec4<E>>,
    o: &mut LocalArray<Vec4<f32>>,
    row_stats: &mut LocalArray<f32>,
    q0: u32,
    j_start: u32,
    j_end: u32,
    n: u32,
    dh: u32,
    heads: u32,
    scale: f32,
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
    let tok0 = workgroup_id().z * n;
    // In quads: a token's row of the fused projection, and where Q, K, V of this head start.
    let inner = heads * dh / 4;
    let stride = 3 * inner;
    let q_col = head * dh / 4;
    let q_at = (tok0 + min(q0 + t / BKV, n - 1)) * stride + q_col;
    let k_at = tok0 * stride + inner + q_col;
    let v_at = tok0 * stride + 2 * inner + q_col;
    if t < BQ {
        row_max[t] = NEG;
        row_sum[t] = 0.0;
    }
    // This invocation's score: query row qi, key kj of the tile; its outputs: row `qi`,
    // quads kj + BKV·i.
    let qi = t / BKV;
    let kj = t % BKV;
    #[unroll]
    for i in 0..quads / BKV {
        o[i] = vec4(0.0, 0.0, 0.0, 0.0);
    }
    for j0 in (j_start..j_end).step_by(BKV) {
        let valid = j_end - j0;
        workgroup_barrier();
        stage_rows::<E, DH>(&qkv, &kv, t, k_at + j0 * stride, stride, valid, dh);
        workgroup_barrier();
        let mut s = NEG;
        if kj < valid {
            let mut dot4 = vec4(0.0, 0.0, 0.0, 0.0);
            #[unroll]
            for d in 0..quads {
                if 4 * d < dh {
                    let q = qkv[q_at + d];
                    let q = vec4(q.x as f32, q.y as f32, q.z as f32, q.w as f32);
                    dot4 = fma(q, kv[kj * pad + d], dot4);
                }
            }
            s = (dot4.x + dot4.y + dot4.z + dot4.w) * scale;
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
                let e = select(j < valid, exp(probs[t * BKV + j] - m), 0.0);
                probs[t * BKV + j] = e;
                sum += e;
            }
            let alpha = exp(old - m);
            row_alpha[t] = alpha;
            row_sum[t] = row_sum[t] * alpha + sum;
            row_max[t] = m;
        }
        stage_rows::<E, DH>(&qkv, &kv, t, v_at + j0 * stride, stride, valid, dh);
        workgroup_barrier();
        let alpha = row_alpha[qi];
        #[unroll]
        for i in 0..quads / BKV {
            let d = kj + i * BKV;
            let mut acc = o[i] * alpha;
            if 4 * d < dh {
                #[unroll]
                for j in 0..BKV {
                    acc = fma(splat(probs[qi * BKV + j]), kv[j * pad + d], acc);
                }
            }
            o[i] = acc;
        }
    }
    row_stats[0] = row_max[qi];
    row_stats[1] = row_sum[qi];
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
    let t = local_id().x;
    let q0 = workgroup_id().x * BQ;
    let mut o = [vec4(0.0, 0.0, 0.0, 0.0); quads / BKV];
    let mut row_stats = [0.0; 2];
    attend::<E, DH>(
        &qkv, &o, &row_stats, q0, 0u32, p.n, p.n, p.dh, p.heads, p.scale,
    );
    // Output row `q0 + t / BKV`, quads t % BKV + BKV·i of this head.
    let inner = p.heads * p.dh / 4;
    let at = (workgroup_id().z * p.n + q0 + t / BKV) * inner + workgroup_id().y * p.dh / 4;
    let orow = t / BKV;
    let row = q0 + orow;
    if row < p.n {
        let inv = 1.0 / row_stats[1];
        #[unroll]
        for i in 0..quads / BKV {
            let d = t % BKV + i * BKV;
            if 4 * d < p.dh {
                let v = o[i] * inv;
                out[at + d] = vec4(v.x as E, v.y as E, v.z as E, v.w as E);
            }
        }
    }
}

/// Where partial results of (batch, head, chunk, row) start in [`attention_split`]'s
/// outputs, in rows.
#[kernel_fn]
fn part_row(batch: u32, head: u32, chunk: u32, row: u32, heads: u32, chunks: u32, n: u32) -> u32 {
    ((batch * heads + head) * chunks + chunk) * n + row
}

/// [`attention`] with the keys cut into `p.chunks` slices (flash-decoding), for grids too
/// small to fill the GPU: `workgroup_id().x` is `query block · chunks + chunk`. Writes each
/// slice's unnormalized outputs (`parts`, f32 quads) and each row's max and sum (`stats`);
/// [`attention_combine`] merges them.
#[kernel(workgroup_size = [BQ * BKV, 1, 1])]
pub fn attention_split<E: ScalarTy, const DH: u32>(
    qkv: &Array<Vec4<E>>,
    parts: &mut Array<Vec4<f32>>,
    stats: &mut Array<f32>,
    p: &Uniform<AttentionParams>,
) {
    #[comptime]
    let quads = DH / 4;
    let t = local_id().x;
    let chunk = workgroup_id().x % p.chunks;
    let q0 = (workgroup_id().x / p.chunks) * BQ;
    let j_start = chunk * p.chunk;
    let j_end = min(j_start + p.chunk, p.n);
    let mut o = [vec4(0.0, 0.0, 0.0, 0.0); quads / BKV];
    let mut row_stats = [0.0; 2];
    attend::<E, DH>(
        &qkv, &o, &row_stats, q0, j_start, j_end, p.n, p.dh, p.heads, p.scale,
    );
    let orow = t / BKV;
    let row = q0 + orow;
    if row < p.n {
        let at = part_row(
            workgroup_id().z,
            workgroup_id().y,
            chunk,
            row,
            p.heads,
            p.chunks,
            p.n,
        );
        #[unroll]
        for i in 0..quads / BKV {
            let d = t % BKV + i * BKV;
            if 4 * d < p.dh {
                parts[at * (p.dh / 4) + d] = o[i];
            }
        }
        if t % BKV == 0 {
            stats[2 * at] = row_stats[0];
            stats[2 * at + 1] = row_stats[1];
        }
    }
}

/// Merges [`attention_split`]'s slices: one invocation per output quad of batch item
/// `workgroup_id().y` (`global_id().x` over tokens × heads × dh/4), rescaling each slice
/// by `exp(max_c − max)`.
#[kernel(workgroup_size = [256, 1, 1])]
pub fn attention_combine<E: ScalarTy>(
    parts: &Array<Vec4<f32>>,
    stats: &Array<f32>,
    out: &mut Array<Vec4<E>>,
    p: &Uniform<AttentionParams>,
) {
    let i = global_id().x;
    let batch = workgroup_id().y;
    let dq = p.dh / 4;
    let row = i / (p.heads * dq);
    if row < p.n {
        let head = (i / dq) % p.heads;
        let d = i % dq;
        let mut m = NEG;
        for c in 0..p.chunks {
            m = max(
                m,
                stats[2 * part_row(batch, head, c, row, p.heads, p.chunks, p.n)],
            );
        }
        let mut sum = 0.0;
        let mut acc = vec4(0.0, 0.0, 0.0, 0.0);
        for c in 0..p.chunks {
            let at = part_row(batch, head, c, row, p.heads, p.chunks, p.n);
            let w = exp(stats[2 * at] - m);
            sum += stats[2 * at + 1] * w;
            acc = fma(parts[at * dq + d], splat(w), acc);
        }
        let v = acc / sum;
        out[batch * p.n * p.heads * dq + i] = vec4(v.x as E, v.y as E, v.z as E, v.w as E);
    }
}
