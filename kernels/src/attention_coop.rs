//! Attention on tensor cores: `softmax(q kᵀ · scale) v` for sequences of at most
//! [`COOP_MAX_N`] tokens, f16 data, with both products on the DSL's cooperative matrices
//! (f16 operands, f32 accumulation). Native only, as [`crate::matmul_coop`].
//!
//! A workgroup of [`CW`] subgroups owns 16 query rows of one head (one fragment) and every
//! key, in one pass without slices. K and V reach the tensor cores through workgroup memory,
//! staged as quads (each round's loads issued while the round before is multiplied): on an
//! H100 a cooperative load straight from the storage buffer took two thirds of the kernel's
//! time.
//! 1. Q's 16 rows are staged in workgroup memory (zeros past the sequence). In rounds of
//!    `CW` key fragments × 48 (or 32) of the head's columns, each subgroup multiplies them by its key
//!    fragment (K's rows are the B operand's columns) into the scores, kept whole in
//!    workgroup memory.
//! 2. The exact softmax of each row (`RT` invocations a row) writes the probabilities in f16.
//! 3. In rounds of [`KH`] key fragments × the whole head of V, each subgroup multiplies the
//!    probabilities of one of them by a quarter of the head; the key fragments' sums are
//!    added as the output is stored, divided by the row's sum.
//!
//! Every row read from `qkv` lies inside the sequence: where `n` is not a multiple of 16, the
//! last key fragment starts at `n - 16`, and the keys it shares with the fragment before it
//! are masked (their probabilities are 0), so no read reaches past a batch item.

use webdit_dsl::coop::*;
use webdit_dsl::ir::Limits;
use webdit_dsl::prelude::*;

pub use crate::attention::AttentionParams;

/// Query rows per workgroup (one fragment).
pub const COOP_BQ: u32 = 16;
/// The longest sequence served (every row's scores stay in workgroup memory).
pub const COOP_MAX_N: u32 = 256;
/// The shortest: one whole key fragment.
pub const COOP_MIN_N: u32 = 16;
/// Subgroups (of 32 lanes) per workgroup.
const CW: u32 = 8;
/// Invocations per workgroup.
const THREADS: u32 = CW * 32;
/// Groups of the head's fragments in the output product.
const CG: u32 = 4;
/// Key fragments per round of the output product: subgroup `w` takes fragment `w / CG`.
const KH: u32 = CW / CG;
/// Invocations per row in the softmax.
const RT: u32 = THREADS / COOP_BQ;
/// The most negative finite f32: the softmax's "minus infinity".
const NEG: f32 = -3.0e38;
const _: () = assert!(RT * COOP_BQ == THREADS && CW * 256 <= COOP_BQ * COOP_MAX_N);
const _: () = assert!(COOP_MAX_N.is_multiple_of(16 * CW) && COOP_MAX_N.is_multiple_of(16 * KH));

/// Where [`attention_coop`] at one head width keeps what in workgroup memory, and its rounds.
/// Strides are in elements, padded so that a fragment's rows fall in different banks.
#[derive(Clone, Copy)]
struct Layout {
    /// The head's columns per score round: 48 where they divide the width (fewer rounds, and
    /// the staged keys still fit 48 KiB beside the scores), else 32.
    kd: u32,
    /// Staged Q rows (f16).
    q: u32,
    /// Scores (f32; a spare fragment at the end takes the products of subgroups without a
    /// key fragment).
    scores: u32,
    /// Probabilities (f16).
    probs: u32,
    /// Staged keys of a score round (`16·CW` of them, `kd` columns) and values of an output
    /// round (`16·KH`, the whole head), f16.
    keys: u32,
    values: u32,
    /// Elements of the staging region that K and V share.
    staged: u32,
    /// Quads each invocation loads of a round of K and of V, and the registers for either.
    k_quads: u32,
    v_quads: u32,
    regs: u32,
}

const fn larger(a: u32, b: u32) -> u32 {
    if a > b {
        a
    } else {
        b
    }
}

impl Layout {
    const fn new(dh: u32) -> Self {
        let kd = if dh.is_multiple_of(48) { 48 } else { 32 };
        let (keys, values) = (kd + 8, dh + 8);
        let k_quads = 16 * CW * kd / 4 / THREADS;
        let v_quads = 16 * KH * dh / 4 / THREADS;
        Layout {
            kd,
            q: dh + 8,
            scores: COOP_MAX_N + 16 + 4,
            probs: COOP_MAX_N + 8,
            keys,
            values,
            staged: larger(16 * CW * keys, 16 * KH * values),
            k_quads,
            v_quads,
            regs: larger(k_quads, v_quads),
        }
    }

    /// Bytes of workgroup memory: Q, scores, probabilities, staging, reductions.
    const fn bytes(&self) -> u32 {
        COOP_BQ * (self.q * 2 + self.scores * 4 + self.probs * 2)
            + self.staged * 2
            + COOP_BQ * (RT + 1) * 4
    }
}

/// What [`attention_coop`] at head width `dh` needs of the adapter beyond WebGPU's defaults.
pub const fn coop_attention_limits(dh: u32) -> Limits {
    Limits {
        max_workgroup_storage_bytes: Layout::new(dh).bytes(),
        ..Limits::WEBGPU
    }
}

/// Attention of one head per `workgroup_id().y` and one batch item per `.z`, 16 query rows
/// per `.x`, for `16 ≤ p.n ≤ COOP_MAX_N` and `p.dh == DH` (a multiple of 64), on tensor
/// cores. Reads `qkv` `[tokens, 3·heads·dh]` as quads, writes `out` `[tokens, heads·dh]`.
#[kernel(workgroup_size = [THREADS, 1, 1])]
pub fn attention_coop<const DH: u32>(
    qkv: &Array<Vec4<f16>>,
    out: &mut Array<f16>,
    p: &Uniform<AttentionParams>,
) {
    #[comptime]
    let fw = DH / 16 / CG;
    #[comptime]
    let s = Layout::new(DH);
    #[comptime]
    let d_rounds = DH / s.kd;
    let q_tile = Shared::<f16>::new(COOP_BQ * s.q);
    let kv = Shared::<f16>::new(s.staged);
    let scores = Shared::<f32>::new(COOP_BQ * s.scores);
    let probs = Shared::<f16>::new(COOP_BQ * s.probs);
    let red = Shared::<f32>::new(COOP_BQ * RT);
    let inv = Shared::<f32>::new(COOP_BQ);
    let t = local_index();
    let warp = subgroup_id();
    let lane = subgroup_invocation_id();
    let n = p.n;
    let q0 = workgroup_id().x * COOP_BQ;
    let tok0 = workgroup_id().z * n;
    let inner = p.heads * DH;
    let stride = 3 * inner;
    let head = workgroup_id().y * DH;
    let k_at = tok0 * stride + inner + head;
    let v_at = k_at + inner;
    // Key fragments; the last starts at `n - 16`.
    let nk = (n + 15) / 16;
    let mut regs = [vec4(f16(0.0), f16(0.0), f16(0.0), f16(0.0)); s.regs];
    fetch_keys(&qkv, &regs, s.k_quads, s.kd / 4, t, k_at, 0, nk, n, stride);
    #[unroll]
    for l in 0..COOP_BQ * DH / 4 / THREADS {
        let idx = t + l * THREADS;
        let r = idx / (DH / 4);
        let d = 4 * (idx % (DH / 4));
        let mut v = vec4(f16(0.0), f16(0.0), f16(0.0), f16(0.0));
        if q0 + r < n {
            v = qkv[((tok0 + q0 + r) * stride + head + d) / 4];
        }
        let at = r * s.q + d;
        q_tile[at] = v.x;
        q_tile[at + 1] = v.y;
        q_tile[at + 2] = v.z;
        q_tile[at + 3] = v.w;
    }
    // 1. Scores: round (kr, dr) stages key fragments CW·kr.. (subgroup w multiplies the
    // w-th) and the head's columns kd·dr..; K's rows are B's columns.
    let key_rounds = (nk + CW - 1) / CW;
    for kr in 0..key_rounds {
        let mut acc = coop_zero::<CoopMat<f32, MatC, 16>>();
        for dr in 0..d_rounds {
            workgroup_barrier();
            stage_keys(&regs, &kv, s.k_quads, s.kd / 4, s.keys, t);
            workgroup_barrier();
            let next = kr * d_rounds + dr + 1;
            if next < key_rounds * d_rounds {
                let at = k_at + (next % d_rounds) * s.kd;
                fetch_keys(
                    &qkv,
                    &regs,
                    s.k_quads,
                    s.kd / 4,
                    t,
                    at,
                    CW * (next / d_rounds),
                    nk,
                    n,
                    stride,
                );
            }
            #[unroll]
            for kk in 0..s.kd / 16 {
                let qa =
                    coop_load::<CoopMat<f16, MatA, 16>>(q_tile, dr * s.kd + kk * 16, s.q, true);
                let kb = coop_load::<CoopMat<f16, MatB, 16>>(
                    kv,
                    warp * 16 * s.keys + kk * 16,
                    s.keys,
                    false,
                );
                acc = coop_mul_add(qa, kb, acc);
            }
        }
        let kf = warp + CW * kr;
        let s_off = select(kf < nk, kf, COOP_MAX_N / 16) * 16;
        coop_store(acc, scores, s_off, s.scores, true);
    }
    // V's first round loads while the softmax runs.
    fetch_keys(&qkv, &regs, s.v_quads, DH / 4, t, v_at, 0, nk, n, stride);
    workgroup_barrier();
    // 2. The exact softmax of row r: invocations c = 0..RT over columns c, c + RT, ...
    // (column j of fragment f is key min(16f, n - 16) + j, valid from 16f on). The
    // probabilities are zero past the keys, up to the output product's last round.
    let r = t / RT;
    let c = t % RT;
    let v_rounds = (nk + KH - 1) / KH;
    let mut m = NEG;
    for j in (c..16 * nk).step_by(RT) {
        let f = j / 16;
        if min(16 * f, n - 16) + j % 16 >= 16 * f {
            m = max(m, scores[r * s.scores + j]);
        }
    }
    red[r * RT + c] = m;
    workgroup_barrier();
    #[unroll]
    for l in 0..RT {
        m = max(m, red[r * RT + l]);
    }
    let mut z = 0.0;
    for j in (c..16 * KH * v_rounds).step_by(RT) {
        let f = j / 16;
        let mut e = 0.0;
        if f < nk && min(16 * f, n - 16) + j % 16 >= 16 * f {
            e = exp((scores[r * s.scores + j] - m) * p.scale);
        }
        probs[r * s.probs + j] = e as f16;
        z += e;
    }
    workgroup_barrier();
    red[r * RT + c] = z;
    workgroup_barrier();
    if c == 0 {
        let mut total = 0.0;
        #[unroll]
        for l in 0..RT {
            total += red[r * RT + l];
        }
        inv[r] = 1.0 / total;
    }
    // 3. P·V: round g stages V's key fragments KH·g..; subgroup w multiplies the (w / CG)-th
    // by the head's fragments of group w % CG (the zero probabilities past the keys meet
    // V's last rows, staged again).
    let cols = (warp % CG) * fw * 16;
    let half = warp / CG;
    let mut o = [coop_zero::<CoopMat<f32, MatC, 16>>(); fw];
    for g in 0..v_rounds {
        workgroup_barrier();
        stage_keys(&regs, &kv, s.v_quads, DH / 4, s.values, t);
        workgroup_barrier();
        if g + 1 < v_rounds {
            fetch_keys(
                &qkv,
                &regs,
                s.v_quads,
                DH / 4,
                t,
                v_at,
                KH * (g + 1),
                nk,
                n,
                stride,
            );
        }
        let pa = coop_load::<CoopMat<f16, MatA, 16>>(probs, (KH * g + half) * 16, s.probs, true);
        #[unroll]
        for x in 0..fw {
            let vb = coop_load::<CoopMat<f16, MatB, 16>>(
                kv,
                half * 16 * s.values + cols + x * 16,
                s.values,
                true,
            );
            o[x] = coop_mul_add(pa, vb, o[x]);
        }
    }
    // Each fragment through this subgroup's 16×16 slot of the (spent) scores; the lanes of
    // the first subgroup of each group store eight sums of the group's slots each, divided
    // by the row's sum.
    let slot = warp * 256;
    #[unroll]
    for x in 0..fw {
        coop_store(o[x], scores, slot, 16, true);
        workgroup_barrier();
        if half == 0 {
            for e in 0..8u32 {
                let idx = lane + e * 32;
                let row = idx / 16;
                if q0 + row < n {
                    let mut v = 0.0;
                    #[unroll]
                    for h in 0..KH {
                        v += scores[slot + h * CG * 256 + idx];
                    }
                    let col = head + cols + x * 16 + idx % 16;
                    out[(tok0 + q0 + row) * inner + col] = (v * inv[row]) as f16;
                }
            }
        }
        workgroup_barrier();
    }
}

/// Loads one round of keys (K's or V's rows) into `regs`: `quads` per row of `16·CW·kd/4`
/// or `16·KH·DH/4` quads, `loads` per invocation, rows from key fragment `kf0` on (the last
/// fragment starting at `n - 16`, fragments past it repeating it) and columns from `at`.
#[kernel_fn]
#[allow(clippy::too_many_arguments)]
fn fetch_keys(
    qkv: &Array<Vec4<f16>>,
    regs: &mut LocalArray<Vec4<f16>>,
    #[comptime] loads: u32,
    #[comptime] quads: u32,
    t: u32,
    at: u32,
    kf0: u32,
    nk: u32,
    n: u32,
    stride: u32,
) {
    #[unroll]
    for l in 0..loads {
        let q = t + l * THREADS;
        let i = q / quads;
        let kf = min(kf0 + i / 16, nk - 1);
        let key = min(16 * kf, n - 16) + i % 16;
        regs[l] = qkv[(at + key * stride + 4 * (q % quads)) / 4];
    }
}

/// Writes the round [`fetch_keys`] loaded into `kv`, rows `stride` halves apart.
#[kernel_fn]
fn stage_keys(
    regs: &mut LocalArray<Vec4<f16>>,
    kv: &Shared<f16>,
    #[comptime] loads: u32,
    #[comptime] quads: u32,
    #[comptime] stride: u32,
    t: u32,
) {
    #[unroll]
    for l in 0..loads {
        let q = t + l * THREADS;
        let v = regs[l];
        let at = (q / quads) * stride + 4 * (q % quads);
        kv[at] = v.x;
        kv[at + 1] = v.y;
        kv[at + 2] = v.z;
        kv[at + 3] = v.w;
    }
}
