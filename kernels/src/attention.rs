//! Flash attention: `softmax(q kᵀ · scale) v` per (batch, head), in one pass over K/V tiles
//! with the online softmax (running max and sum), so the N×N scores never exist in memory.
//!
//! A workgroup of 16×16 invocations owns `BQ` = 32 query rows of one head and walks the keys
//! in tiles of `BKV` = 32. Per tile, the 32×32 scores are a small matmul: Q and K are staged
//! through workgroup memory `DC` quads of the head width at a time, and each invocation
//! accumulates a 2×2 block of scores in registers (two query rows × two keys). The scores
//! go to workgroup memory, one invocation per row updates its running max and sum, then
//! `O += P·V` runs as a second register-blocked product (V staged `VC` keys at a time):
//! each invocation keeps two rows × `DH/64` quads of the output. Workgroup memory stays
//! under 16 KiB (WebGPU's guaranteed minimum) even at `DH` = 192. `DH` is the largest head
//! width the variant serves; the run-time width may be smaller. Q, K and V are read from
//! the fused `qkv` projection `[tokens, 3·heads·dh]`. One kernel serves the whole key range
//! (writing the output) and flash-decoding's slices (partial outputs for
//! [`attention_combine`]).
//!
//! Short sequences (a 64-token image) leave 32-row blocks with too few workgroups even in
//! slices: [`attention_rows`] gives each workgroup 4 query rows and keeps every score in
//! workgroup memory.

use webdit_dsl::prelude::*;

#[derive(Uniform, Clone, Copy)]
pub struct AttentionParams {
    /// Tokens per batch item.
    pub n: u32,
    /// Head width (≤ the variant's DH).
    pub dh: u32,
    pub heads: u32,
    /// `dh^-0.5`
    pub scale: f32,
    /// [`attention`]: slices of the keys, and keys per slice.
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

    /// The same attention with its keys cut into `chunks` slices (for [`attention`]),
    /// each a multiple of 8 keys long.
    pub fn split(self, chunks: u32) -> Self {
        let chunk = self.n.div_ceil(chunks).next_multiple_of(VC);
        AttentionParams {
            chunks: self.n.div_ceil(chunk),
            chunk,
            ..self
        }
    }
}

/// Query rows per workgroup.
pub const BQ: u32 = 32;
/// Keys per tile.
pub const BKV: u32 = 32;
/// Quads of the head width staged per step of the score product.
const DC: u32 = 8;
/// Keys of V staged per step of the output product.
const VC: u32 = 8;
/// The most negative finite f32: the softmax's "minus infinity".
const NEG: f32 = -3.0e38;
// [`attend`]'s layout assumes these: 16×16 invocations own 2×2 scores each, and each stages
// one quad of Q and one of K per chunk.
const _: () = assert!(BQ == 32 && BKV == 32 && BQ * DC == 256 && BKV * DC == 256);

/// Quad `d` of row `row` (of `len` valid rows) of Q, K or V starting at quad `at`, rows
/// `stride` quads apart, as f32; zeros past the valid rows or the head width `dh`.
#[kernel_fn]
fn load_quad<E: ScalarTy>(
    qkv: &Array<Vec4<E>>,
    at: u32,
    stride: u32,
    row: u32,
    len: u32,
    d: u32,
    dh: u32,
) -> Vec4<f32> {
    let mut v = vec4(0.0, 0.0, 0.0, 0.0);
    if row < len && 4 * d < dh {
        let q = qkv[at + row * stride + d];
        v = vec4(q.x as f32, q.y as f32, q.z as f32, q.w as f32);
    }
    v
}

/// A score from its four partial sums; masked keys get the softmax's minus infinity.
#[kernel_fn]
fn score(v: Vec4<f32>, scale: f32, valid: bool) -> f32 {
    select(valid, (v.x + v.y + v.z + v.w) * scale, NEG)
}

/// The online softmax of this workgroup's `BQ` query rows (from `q0`) over keys
/// `j_start..j_end`: leaves this invocation's outputs `o` (rows `ty` and `ty + 16`, quads
/// `tx + 16·i`; row `ty + 16` at `o[DH/64..]`) unnormalized, and its rows' max and sum
/// (divide by it) in `row_stats` (`[max, sum]` of row `ty`, then of row `ty + 16`).
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
    let oq = DH / 64;
    #[comptime]
    let k_off = BQ * DC;
    #[comptime]
    let buf_len = (k_off + BKV * (DC + 1)).max(VC * quads);
    // Q and K chunks of the score product, or V chunks of the output product.
    let buf = Shared::<Vec4<f32>>::new(buf_len);
    let probs = Shared::<f32>::new(BQ * (BKV + 1));
    let row_max = Shared::<f32>::new(BQ);
    let row_sum = Shared::<f32>::new(BQ);
    let row_alpha = Shared::<f32>::new(BQ);
    let t = local_id().x;
    let tx = t % 16;
    let ty = t / 16;
    let head = workgroup_id().y;
    let tok0 = workgroup_id().z * n;
    // In quads: a token's row of the fused projection, and where Q, K, V of this head start.
    let inner = heads * dh / 4;
    let stride = 3 * inner;
    let q_at = (tok0 + q0) * stride + head * dh / 4;
    let k_at = q_at - q0 * stride + inner;
    let v_at = k_at + inner;
    if t < BQ {
        row_max[t] = NEG;
        row_sum[t] = 0.0;
    }
    #[unroll]
    for i in 0..2 * oq {
        o[i] = vec4(0.0, 0.0, 0.0, 0.0);
    }
    // The invocation that stages quad `t % DC` of row `t / DC` of each Q and K chunk.
    let sr = t / DC;
    let sd = t % DC;
    for j0 in (j_start..j_end).step_by(BKV) {
        let valid = j_end - j0;
        let mut s00 = vec4(0.0, 0.0, 0.0, 0.0);
        let mut s01 = vec4(0.0, 0.0, 0.0, 0.0);
        let mut s10 = vec4(0.0, 0.0, 0.0, 0.0);
        let mut s11 = vec4(0.0, 0.0, 0.0, 0.0);
        // GPU loops where the body indexes no registers (the driver unrolls what pays); the
        // loops over this invocation's output quads stay unrolled so `o` stays in registers.
        for dc in 0..quads / DC {
            // Everyone is done with the previous contents of `buf` (and of `probs`).
            workgroup_barrier();
            buf[sr * DC + sd] = load_quad(&qkv, q_at, stride, sr, n - q0, dc * DC + sd, dh);
            buf[k_off + sr * (DC + 1) + sd] = load_quad(
                &qkv,
                k_at + j0 * stride,
                stride,
                sr,
                valid,
                dc * DC + sd,
                dh,
            );
            workgroup_barrier();
            #[unroll]
            for d in 0..DC {
                let qa = buf[ty * DC + d];
                let qb = buf[(ty + 16) * DC + d];
                let ka = buf[k_off + tx * (DC + 1) + d];
                let kb = buf[k_off + (tx + 16) * (DC + 1) + d];
                s00 = fma(qa, ka, s00);
                s01 = fma(qa, kb, s01);
                s10 = fma(qb, ka, s10);
                s11 = fma(qb, kb, s11);
            }
        }
        probs[ty * (BKV + 1) + tx] = score(s00, scale, tx < valid);
        probs[ty * (BKV + 1) + tx + 16] = score(s01, scale, tx + 16 < valid);
        probs[(ty + 16) * (BKV + 1) + tx] = score(s10, scale, tx < valid);
        probs[(ty + 16) * (BKV + 1) + tx + 16] = score(s11, scale, tx + 16 < valid);
        workgroup_barrier();
        if t < BQ {
            let old = row_max[t];
            let mut m = old;
            for j in 0..BKV {
                m = max(m, probs[t * (BKV + 1) + j]);
            }
            let mut sum = 0.0;
            for j in 0..BKV {
                let e = select(j < valid, exp(probs[t * (BKV + 1) + j] - m), 0.0);
                probs[t * (BKV + 1) + j] = e;
                sum += e;
            }
            let alpha = exp(old - m);
            row_alpha[t] = alpha;
            row_sum[t] = row_sum[t] * alpha + sum;
            row_max[t] = m;
        }
        workgroup_barrier();
        let a0 = row_alpha[ty];
        let a1 = row_alpha[ty + 16];
        #[unroll]
        for i in 0..oq {
            o[i] = o[i] * a0;
            o[oq + i] = o[oq + i] * a1;
        }
        for vc in 0..BKV / VC {
            if vc > 0 {
                workgroup_barrier();
            }
            #[unroll]
            for l in 0..(VC * quads).div_ceil(256) {
                let idx = t + l * 256;
                // Only the last pass can run past the chunk, and only when 256 does not divide it.
                if (l + 1) * 256 <= VC * quads || idx < VC * quads {
                    let r = idx / quads;
                    buf[idx] = load_quad(
                        &qkv,
                        v_at + j0 * stride,
                        stride,
                        vc * VC + r,
                        valid,
                        idx % quads,
                        dh,
                    );
                }
            }
            workgroup_barrier();
            for j in 0..VC {
                let p0 = splat(probs[ty * (BKV + 1) + vc * VC + j]);
                let p1 = splat(probs[(ty + 16) * (BKV + 1) + vc * VC + j]);
                #[unroll]
                for i in 0..oq {
                    let v = buf[j * quads + tx + 16 * i];
                    o[i] = fma(p0, v, o[i]);
                    o[oq + i] = fma(p1, v, o[oq + i]);
                }
            }
        }
    }
    row_stats[0] = row_max[ty];
    row_stats[1] = row_sum[ty];
    row_stats[2] = row_max[ty + 16];
    row_stats[3] = row_sum[ty + 16];
}

/// Where partial results of (batch, head, chunk, row) start in [`attention`]'s
/// outputs, in rows.
#[kernel_fn]
fn part_row(batch: u32, head: u32, chunk: u32, row: u32, heads: u32, chunks: u32, n: u32) -> u32 {
    ((batch * heads + head) * chunks + chunk) * n + row
}

/// Attention over one head per `workgroup_id().y`, one batch item per `.z`, `BQ` query rows
/// and one slice of the keys per `.x` (`query block · chunks + chunk`). Everything is read
/// and written as `vec4`s, so the run-time head width `dh` must be a multiple of 4 (and at
/// most `DH`, a multiple of 64). With one slice (`p.chunks == 1`) it writes the output
/// (`out`); with several (flash-decoding, for grids too small to fill the GPU) each slice's
/// unnormalized outputs (`parts`, f32 quads) and each row's max and sum (`stats`), which
/// [`attention_combine`] merges.
#[kernel(workgroup_size = [256, 1, 1])]
pub fn attention<E: ScalarTy, const DH: u32>(
    qkv: &Array<Vec4<E>>,
    out: &mut Array<Vec4<E>>,
    parts: &mut Array<Vec4<f32>>,
    stats: &mut Array<f32>,
    p: &Uniform<AttentionParams>,
) {
    let t = local_id().x;
    let chunk = workgroup_id().x % p.chunks;
    let q0 = (workgroup_id().x / p.chunks) * BQ;
    let j_start = chunk * p.chunk;
    let j_end = min(j_start + p.chunk, p.n);
    let mut o = [vec4(0.0, 0.0, 0.0, 0.0); 2 * (DH / 64)];
    let mut row_stats = [0.0; 4];
    attend::<E, DH>(
        &qkv, &o, &row_stats, q0, j_start, j_end, p.n, p.dh, p.heads, p.scale,
    );
    let tx = t % 16;
    let dq = p.dh / 4;
    #[unroll]
    for h in 0..2u32 {
        let row = q0 + t / 16 + 16 * h;
        if row < p.n {
            if p.chunks == 1 {
                let at = (workgroup_id().z * p.n + row) * p.heads * dq + workgroup_id().y * dq;
                let inv = 1.0 / row_stats[2 * h + 1];
                #[unroll]
                for i in 0..DH / 64 {
                    let d = tx + 16 * i;
                    if d < dq {
                        let v = o[h * (DH / 64) + i] * inv;
                        out[at + d] = vec4(v.x as E, v.y as E, v.z as E, v.w as E);
                    }
                }
            } else {
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
                for i in 0..DH / 64 {
                    let d = tx + 16 * i;
                    if d < dq {
                        parts[at * dq + d] = o[h * (DH / 64) + i];
                    }
                }
                if tx == 0 {
                    stats[2 * at] = row_stats[2 * h];
                    stats[2 * at + 1] = row_stats[2 * h + 1];
                }
            }
        }
    }
}

/// Merges [`attention`]'s slices: one invocation per output quad of batch item
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

/// Query rows per workgroup of [`attention_rows`].
pub const ROWS: u32 = 4;
/// The most tokens [`attention_rows`] serves (it keeps a row's scores in workgroup memory).
pub const ROWS_MAX_N: u32 = 256;
/// [`attention_rows`]'s invocations: `ROWS` groups of 32.
const RW: u32 = 128;
/// Keys per step of [`attention_rows`]'s score product.
const RK: u32 = 32;
// Four rows and four slices of the score product: invocation `t` is row / slice `t / RK`.
const _: () = assert!(RW == ROWS * RK && ROWS == 4);

/// Attention for short sequences (`n` ≤ [`ROWS_MAX_N`]) in one pass without slices: a
/// workgroup of 128 invocations owns `ROWS` query rows of one head (`workgroup_id()` as in
/// [`attention`]), so a 64-token image runs on 16 workgroups instead of 2 (or 4 slices and a
/// combine). Q's rows are staged in workgroup memory; each score is four partial dot products
/// over interleaved quads of the head, summed through workgroup memory; every row's scores
/// stay there for an exact softmax (max and sum over 32 invocations per row); then `P·V`
/// with `128 / (DH/4)` slices of the keys, each V quad read once for all `ROWS` rows. `DH`
/// is the largest head width served (loops over it have constant trip counts: with the
/// run-time width as their bound the kernel took 10.4 µs instead of 5.8 on an H200).
#[kernel(workgroup_size = [RW, 1, 1])]
pub fn attention_rows<E: ScalarTy, const DH: u32>(
    qkv: &Array<Vec4<E>>,
    out: &mut Array<Vec4<E>>,
    p: &Uniform<AttentionParams>,
) {
    #[comptime]
    let quads = DH / 4;
    // Q's rows, then the output product's partial sums.
    let buf = Shared::<Vec4<f32>>::new(RW / quads * ROWS * quads);
    let part = Shared::<f32>::new(ROWS * 4 * RK);
    let scores = Shared::<f32>::new(ROWS * ROWS_MAX_N);
    let red = Shared::<f32>::new(ROWS * RK);
    let inv = Shared::<f32>::new(ROWS);
    attend_rows::<E, DH>(
        &qkv, &buf, &part, &scores, &red, &inv, p.n, p.dh, p.heads, p.scale,
    );
    let t = local_id().x;
    let n = p.n;
    let q0 = workgroup_id().x * ROWS;
    let tok0 = workgroup_id().z * n;
    let inner = p.heads * p.dh / 4;
    #[unroll]
    for l in 0..(ROWS * quads).div_ceil(RW) {
        let idx = t + l * RW;
        let row = idx / quads;
        let dq = idx % quads;
        if idx < ROWS * quads && q0 + row < n && 4 * dq < p.dh {
            let v = head_output::<DH>(&buf, &inv, row, dq);
            out[(tok0 + q0 + row) * inner + workgroup_id().y * p.dh / 4 + dq] =
                vec4(v.x as E, v.y as E, v.z as E, v.w as E);
        }
    }
}

/// The body of [`attention_rows`] up to its output: this workgroup's `ROWS` query rows of
/// head `workgroup_id().y` attended, leaving the output product's slices in `buf` (quad `d`
/// of row `r`, key slice `s` at `(s·ROWS + r)·DH/4 + d`) and each row's `1 / Σ exp` in
/// `inv`, for [`head_output`]; `scores` and `part` are free again afterwards.
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn attend_rows<E: ScalarTy, const DH: u32>(
    qkv: &Array<Vec4<E>>,
    buf: &Shared<Vec4<f32>>,
    part: &Shared<f32>,
    scores: &Shared<f32>,
    red: &Shared<f32>,
    inv: &Shared<f32>,
    n: u32,
    dh: u32,
    heads: u32,
    scale: f32,
) {
    #[comptime]
    let quads = DH / 4;
    // Key slices of the output product.
    #[comptime]
    let ks = RW / quads;
    let t = local_id().x;
    let q0 = workgroup_id().x * ROWS;
    let tok0 = workgroup_id().z * n;
    let inner = heads * dh / 4;
    let stride = 3 * inner;
    let q_at = (tok0 + q0) * stride + workgroup_id().y * dh / 4;
    let k_at = q_at - q0 * stride + inner;
    let v_at = k_at + inner;
    #[unroll]
    for l in 0..(ROWS * quads).div_ceil(RW) {
        let idx = t + l * RW;
        if (l + 1) * RW <= ROWS * quads || idx < ROWS * quads {
            buf[idx] = load_quad(&qkv, q_at, stride, idx / quads, n - q0, idx % quads, dh);
        }
    }
    // Scores: invocation (slice s, key j) sums quads s, s + 4, ... of q_r · k_j for every
    // row (past the run-time width, quads load as zeros); then invocation (row r = s, key j)
    // sums the four slices.
    let s = t / RK;
    let j = t % RK;
    for j0 in (0u32..n).step_by(RK) {
        workgroup_barrier();
        let mut acc = [vec4(0.0, 0.0, 0.0, 0.0); ROWS];
        for i in 0..quads / 4 {
            let d = s + 4 * i;
            let k = load_quad(&qkv, k_at + j0 * stride, stride, j, n - j0, d, dh);
            #[unroll]
            for row in 0..ROWS {
                acc[row] = fma(buf[row * quads + d], k, acc[row]);
            }
        }
        #[unroll]
        for row in 0..ROWS {
            let a = acc[row];
            part[(row * 4 + s) * RK + j] = a.x + a.y + a.z + a.w;
        }
        workgroup_barrier();
        let sum = part[(s * 4) * RK + j]
            + part[(s * 4 + 1) * RK + j]
            + part[(s * 4 + 2) * RK + j]
            + part[(s * 4 + 3) * RK + j];
        scores[s * ROWS_MAX_N + j0 + j] = select(j0 + j < n, sum * scale, NEG);
    }
    let r = s;
    // The exact softmax of row r: 32 invocations, each over keys j, j + 32, ...
    workgroup_barrier();
    let mut m = NEG;
    for jj in (j..n).step_by(RK) {
        m = max(m, scores[r * ROWS_MAX_N + jj]);
    }
    red[r * RK + j] = m;
    workgroup_barrier();
    for l in 0..RK {
        m = max(m, red[r * RK + l]);
    }
    let mut z = 0.0;
    for jj in (j..n).step_by(RK) {
        let e = exp(scores[r * ROWS_MAX_N + jj] - m);
        scores[r * ROWS_MAX_N + jj] = e;
        z += e;
    }
    workgroup_barrier();
    red[r * RK + j] = z;
    workgroup_barrier();
    if j == 0 {
        let mut total = 0.0;
        for l in 0..RK {
            total += red[r * RK + l];
        }
        inv[r] = 1.0 / total;
    }
    // P·V: invocation (key slice, quad d) for every row at once.
    let d = t % quads;
    let slice = t / quads;
    if slice < ks {
        let mut o = [vec4(0.0, 0.0, 0.0, 0.0); ROWS];
        for jj in (slice..n).step_by(ks) {
            let v = load_quad(&qkv, v_at, stride, jj, n, d, dh);
            #[unroll]
            for row in 0..ROWS {
                o[row] = fma(splat(scores[row * ROWS_MAX_N + jj]), v, o[row]);
            }
        }
        #[unroll]
        for row in 0..ROWS {
            buf[(slice * ROWS + row) * quads + d] = o[row];
        }
    }
    workgroup_barrier();
}

/// Quad `dq` of query row `row`'s head output from what [`attend_rows`] left: the sum of
/// its key slices, normalized.
#[kernel_fn]
fn head_output<const DH: u32>(
    buf: &Shared<Vec4<f32>>,
    inv: &Shared<f32>,
    row: u32,
    dq: u32,
) -> Vec4<f32> {
    #[comptime]
    let quads = DH / 4;
    let mut v = vec4(0.0, 0.0, 0.0, 0.0);
    for sl in 0..RW / quads {
        v += buf[(sl * ROWS + row) * quads + dq];
    }
    v * inv[row]
}

/// Groups of four k per iteration of [`attention_rows_out`]'s projection loop in the build
/// (16 loads in flight per invocation; `bench --compile-times` times the others).
pub const ROWS_OUT_GROUPS: u32 = 4;

/// Shape of [`attention_rows_out`]: one head of `dh` ≤ `DH` over `n` tokens per batch item,
/// projected to `d` columns, then the AdaLN of the residual rows with the modulations at
/// `scale_at`, `shift_at` of batch item b's `mods[b·mod_stride ..]` (`d` and the offsets
/// multiples of 4).
#[derive(Uniform, Clone, Copy)]
pub struct AttentionOutParams {
    pub n: u32,
    pub dh: u32,
    pub scale: f32,
    pub d: u32,
    pub mod_stride: u32,
    pub scale_at: u32,
    pub shift_at: u32,
}

/// [`attention_rows`] for one head (`heads = 1`, `dh` a multiple of `4 · groups`), its output
/// projection, the residual and the AdaLN after them in one dispatch: a workgroup owns
/// `ROWS` whole rows, so it projects its head outputs (kept in workgroup memory, f32)
/// through `w` (the projection's weight transposed, `[dh, d]`, so that consecutive
/// invocations read consecutive quads), adds them to the residual `h` (stored, then re-read
/// as stored), and writes the AdaLN of each new residual row to `y` (unbiased std, `1e-5`
/// added to it, as [`crate::norm::adaln`]).
#[kernel(workgroup_size = [RW, 1, 1])]
pub fn attention_rows_out<E: ScalarTy, const DH: u32>(
    #[comptime] groups: u32,
    qkv: &Array<Vec4<E>>,
    w: &Array<Vec4<E>>,
    h: &mut Array<Vec4<E>>,
    mods: &Array<Vec4<f32>>,
    y: &mut Array<Vec4<E>>,
    p: &Uniform<AttentionOutParams>,
) {
    #[comptime]
    let quads = DH / 4;
    let buf = Shared::<Vec4<f32>>::new(RW / quads * ROWS * quads);
    let part = Shared::<f32>::new(ROWS * 4 * RK);
    let scores = Shared::<f32>::new(ROWS * ROWS_MAX_N);
    let red = Shared::<f32>::new(ROWS * RK);
    let inv = Shared::<f32>::new(ROWS);
    attend_rows::<E, DH>(
        &qkv, &buf, &part, &scores, &red, &inv, p.n, p.dh, 1, p.scale,
    );
    let t = local_id().x;
    let n = p.n;
    let q0 = workgroup_id().x * ROWS;
    let tok0 = workgroup_id().z * n;
    // The head outputs transposed, `buf[k]` = the four rows' values at k (zeros past `dh`,
    // where V loaded as zeros): one load of workgroup memory per k in the projection.
    let mut rows_out = [vec4(0.0, 0.0, 0.0, 0.0); ROWS];
    if t < quads {
        for row in 0..ROWS {
            rows_out[row] = head_output::<DH>(&buf, &inv, row, t);
        }
    }
    workgroup_barrier();
    if t < quads {
        let r0 = rows_out[0];
        let r1 = rows_out[1];
        let r2 = rows_out[2];
        let r3 = rows_out[3];
        buf[4 * t] = vec4(r0.x, r1.x, r2.x, r3.x);
        buf[4 * t + 1] = vec4(r0.y, r1.y, r2.y, r3.y);
        buf[4 * t + 2] = vec4(r0.z, r1.z, r2.z, r3.z);
        buf[4 * t + 3] = vec4(r0.w, r1.w, r2.w, r3.w);
    }
    workgroup_barrier();
    // Invocation t owns column quads t, t + RW, ... of the four rows. Pass 0 projects them,
    // adds them to the residual and stores it; pass 1 re-reads what was stored for the
    // squared deviations; each pass ends with the workgroup's totals per row.
    let dq4 = p.d / 4;
    let mut mean = [0.0; ROWS];
    let mut inv_std = [0.0; ROWS];
    for pass in 0..2u32 {
        let mut sums = [0.0; ROWS];
        for cq in (t..dq4).step_by(RW) {
            let mut acc = [vec4(0.0, 0.0, 0.0, 0.0); ROWS];
            if pass == 0 {
                // `4 · groups` loads in flight per invocation (the registry's
                // [`ROWS_OUT_GROUPS`]): with one workgroup per 4 rows (16 for a 64-token
                // image), their latency bounds this loop. (Four k at a time in one
                // expression per row: the same order of operations in less WGSL.)
                for k0 in (0..p.dh).step_by(4 * groups) {
                    #[unroll]
                    for g in 0..groups {
                        let k = k0 + 4 * g;
                        let w0 = w[k * dq4 + cq] as Vec4<f32>;
                        let w1 = w[(k + 1) * dq4 + cq] as Vec4<f32>;
                        let w2 = w[(k + 2) * dq4 + cq] as Vec4<f32>;
                        let w3 = w[(k + 3) * dq4 + cq] as Vec4<f32>;
                        let a0 = buf[k];
                        let a1 = buf[k + 1];
                        let a2 = buf[k + 2];
                        let a3 = buf[k + 3];
                        let x = fma(splat(a0.x), w0, acc[0]);
                        acc[0] = fma(
                            splat(a3.x),
                            w3,
                            fma(splat(a2.x), w2, fma(splat(a1.x), w1, x)),
                        );
                        let x = fma(splat(a0.y), w0, acc[1]);
                        acc[1] = fma(
                            splat(a3.y),
                            w3,
                            fma(splat(a2.y), w2, fma(splat(a1.y), w1, x)),
                        );
                        let x = fma(splat(a0.z), w0, acc[2]);
                        acc[2] = fma(
                            splat(a3.z),
                            w3,
                            fma(splat(a2.z), w2, fma(splat(a1.z), w1, x)),
                        );
                        let x = fma(splat(a0.w), w0, acc[3]);
                        acc[3] = fma(
                            splat(a3.w),
                            w3,
                            fma(splat(a2.w), w2, fma(splat(a1.w), w1, x)),
                        );
                    }
                }
            }
            for row in 0..ROWS {
                if q0 + row < n {
                    let at = (tok0 + q0 + row) * dq4 + cq;
                    let v = h[at] as Vec4<f32>;
                    if pass == 0 {
                        let s = (v + acc[row]) as Vec4<E>;
                        h[at] = s;
                        sums[row] += dot(s as Vec4<f32>, vec4(1.0, 1.0, 1.0, 1.0));
                    } else {
                        let c = v - splat(mean[row]);
                        sums[row] += dot(c, c);
                    }
                }
            }
        }
        row_totals(&part, &sums, t);
        for row in 0..ROWS {
            if pass == 0 {
                mean[row] = sums[row] / (p.d as f32);
            } else {
                inv_std[row] = 1.0 / (sqrt(sums[row] / ((p.d - 1) as f32)) + 1e-5);
            }
        }
    }
    // `mods` as quads: the offsets and the width are multiples of 4.
    let m = workgroup_id().z * p.mod_stride / 4;
    for cq in (t..dq4).step_by(RW) {
        let sc = mods[p.scale_at / 4 + m + cq] + vec4(1.0, 1.0, 1.0, 1.0);
        let sh = mods[p.shift_at / 4 + m + cq];
        for row in 0..ROWS {
            if q0 + row < n {
                let o = (tok0 + q0 + row) * dq4 + cq;
                let x = h[o] as Vec4<f32>;
                y[o] = ((x - splat(mean[row])) * inv_std[row] * sc + sh) as Vec4<E>;
            }
        }
    }
}

/// Replaces each of this invocation's `ROWS` values in `v` by its total over the
/// workgroup's `RW` invocations (a tree through `buf`, `ROWS · RW` floats).
#[kernel_fn]
fn row_totals(buf: &Shared<f32>, v: &mut LocalArray<f32>, t: u32) {
    workgroup_barrier();
    for row in 0..ROWS {
        buf[row * RW + t] = v[row];
    }
    workgroup_barrier();
    let mut stride = RW / 2;
    while stride > 0 {
        if t < stride {
            for row in 0..ROWS {
                buf[row * RW + t] += buf[row * RW + t + stride];
            }
        }
        workgroup_barrier();
        stride /= 2;
    }
    for row in 0..ROWS {
        v[row] = buf[row * RW];
    }
}
