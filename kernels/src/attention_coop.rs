//! Attention on tensor cores: `softmax(q kᵀ · scale) v` for sequences of at most
//! [`COOP_MAX_N`] tokens, f16 data, with both products on the DSL's cooperative matrices
//! (f16 operands, f32 accumulation). Native only, as [`crate::matmul_coop`].
//!
//! A workgroup of [`CW`] subgroups owns 16 query rows of one head (one fragment) and every
//! key, in one pass without slices:
//! 1. Q's 16 rows are staged in workgroup memory (zeros past the sequence); each subgroup
//!    multiplies them by its key fragments (K read straight from the `qkv` projection as the
//!    B operand) into the scores, kept whole in workgroup memory.
//! 2. The exact softmax of each row (8 invocations a row) writes the probabilities in f16.
//! 3. Each subgroup multiplies them by V (again straight from `qkv`) for a quarter of the
//!    head and half of the keys; the halves are summed as the output is stored, divided by
//!    the row's sum.
//!
//! Every fragment read from `qkv` lies inside the sequence: where `n` is not a multiple of
//! 16, the last key fragment starts at `n - 16`, and the keys it shares with the fragment
//! before it are masked (their probabilities are 0), so no read reaches past a batch item.

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
/// Groups of the head's fragments in the output product; each is split over `CW / CG`
/// subgroups taking every `CW / CG`-th key fragment.
const CG: u32 = 4;
/// Subgroups per group of the head's fragments (key fragments interleaved between them).
const KH: u32 = CW / CG;
/// Key fragments per subgroup in the score product.
const KW: u32 = COOP_MAX_N / 16 / CW;
/// Invocations per row in the softmax.
const RT: u32 = CW * 32 / COOP_BQ;
/// The most negative finite f32: the softmax's "minus infinity".
const NEG: f32 = -3.0e38;
/// Key fragments per step (per subgroup) of the output product.
const PV: u32 = 4;
const _: () = assert!(KW * CW * 16 == COOP_MAX_N && RT * COOP_BQ == CW * 32);
const _: () = assert!(KH * PV * 16 * 2 == COOP_MAX_N && CW * 256 <= COOP_BQ * COOP_MAX_N);

/// Strides (elements) of the staged Q rows (f16), the scores (f32; a spare fragment at the
/// end takes the products of subgroups without a key fragment) and the probabilities (f16),
/// padded so that a fragment's rows fall in different banks.
const fn strides(dh: u32) -> (u32, u32, u32) {
    (dh + 8, COOP_MAX_N + 16 + 4, COOP_MAX_N + 8)
}

/// What [`attention_coop`] at head width `dh` needs of the adapter beyond WebGPU's defaults.
pub const fn coop_attention_limits(dh: u32) -> Limits {
    let (qs, ss, ps) = strides(dh);
    let bytes = COOP_BQ * (qs * 2 + ss * 4 + ps * 2) + COOP_BQ * (RT + 1) * 4;
    Limits {
        max_workgroup_storage_bytes: bytes,
        ..Limits::WEBGPU
    }
}

/// Attention of one head per `workgroup_id().y` and one batch item per `.z`, 16 query rows
/// per `.x`, for `16 ≤ p.n ≤ COOP_MAX_N` and `p.dh == DH` (a multiple of `16·CG`), on
/// tensor cores. Reads `qkv` `[tokens, 3·heads·dh]` (`qkv4` is the same tensor, read as
/// quads to stage Q), writes `out` `[tokens, heads·dh]`.
#[kernel(workgroup_size = [CW * 32, 1, 1])]
pub fn attention_coop<const DH: u32>(
    qkv: &Array<f16>,
    qkv4: &Array<Vec4<f16>>,
    out: &mut Array<f16>,
    p: &Uniform<AttentionParams>,
) {
    #[comptime]
    let fw = DH / 16 / CG;
    #[comptime]
    let qs = strides(DH).0;
    #[comptime]
    let ss = strides(DH).1;
    #[comptime]
    let ps = strides(DH).2;
    let q_tile = Shared::<f16>::new(COOP_BQ * qs);
    let scores = Shared::<f32>::new(COOP_BQ * ss);
    let probs = Shared::<f16>::new(COOP_BQ * ps);
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
    #[unroll]
    for l in 0..COOP_BQ * DH / 4 / (CW * 32) {
        let idx = t + l * CW * 32;
        let r = idx / (DH / 4);
        let d = 4 * (idx % (DH / 4));
        let mut v = vec4(f16(0.0), f16(0.0), f16(0.0), f16(0.0));
        if q0 + r < n {
            v = qkv4[((tok0 + q0 + r) * stride + head + d) / 4];
        }
        let at = r * qs + d;
        q_tile[at] = v.x;
        q_tile[at + 1] = v.y;
        q_tile[at + 2] = v.z;
        q_tile[at + 3] = v.w;
    }
    workgroup_barrier();
    // 1. Scores: subgroup w takes key fragments w, w + CW, ...; K's rows are B's columns.
    let mut acc = [coop_zero::<CoopMat<f32, MatC, 16>>(); KW];
    #[unroll]
    for d in 0..DH / 16 {
        let qa = coop_load::<CoopMat<f16, MatA, 16>>(q_tile, d * 16, qs, true);
        #[unroll]
        for i in 0..KW {
            let kf = min(warp + CW * i, nk - 1);
            let k_off = k_at + min(16 * kf, n - 16) * stride + d * 16;
            let kb = coop_load::<CoopMat<f16, MatB, 16>>(qkv, k_off, stride, false);
            acc[i] = coop_mul_add(qa, kb, acc[i]);
        }
    }
    #[unroll]
    for i in 0..KW {
        let kf = warp + CW * i;
        let s_off = select(kf < nk, kf, COOP_MAX_N / 16) * 16;
        coop_store(acc[i], scores, s_off, ss, true);
    }
    workgroup_barrier();
    // 2. The exact softmax of row r: invocations c = 0..RT over columns c, c + RT, ...
    // (column j of fragment f is key min(16f, n - 16) + j, valid from 16f on). The
    // probabilities are zero past the keys, up to the output product's last step.
    let r = t / RT;
    let c = t % RT;
    let steps = (nk + KH * PV - 1) / (KH * PV);
    let mut m = NEG;
    for j in (c..16 * nk).step_by(RT) {
        let f = j / 16;
        if min(16 * f, n - 16) + j % 16 >= 16 * f {
            m = max(m, scores[r * ss + j]);
        }
    }
    red[r * RT + c] = m;
    workgroup_barrier();
    #[unroll]
    for l in 0..RT {
        m = max(m, red[r * RT + l]);
    }
    let mut z = 0.0;
    for j in (c..16 * KH * PV * steps).step_by(RT) {
        let f = j / 16;
        let mut e = 0.0;
        if f < nk && min(16 * f, n - 16) + j % 16 >= 16 * f {
            e = exp((scores[r * ss + j] - m) * p.scale);
        }
        probs[r * ps + j] = e as f16;
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
    // 3. P·V: subgroup w owns the head's fragments of group w % CG and the key fragments
    // w / CG, w / CG + KH, ... (the zero probabilities past the keys meet V's last rows).
    let cols = (warp % CG) * fw * 16;
    let half = warp / CG;
    let mut o = [coop_zero::<CoopMat<f32, MatC, 16>>(); fw];
    for g in 0..steps {
        #[unroll]
        for u in 0..PV {
            let kf = KH * (PV * g + u) + half;
            let pa = coop_load::<CoopMat<f16, MatA, 16>>(probs, kf * 16, ps, true);
            let v_row = v_at + min(16 * kf, n - 16) * stride + cols;
            #[unroll]
            for x in 0..fw {
                let v_off = v_row + x * 16;
                let vb = coop_load::<CoopMat<f16, MatB, 16>>(qkv, v_off, stride, true);
                o[x] = coop_mul_add(pa, vb, o[x]);
            }
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
