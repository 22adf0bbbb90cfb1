//! The sampler's update of the whole image on the GPU, with its Gaussian noise generated in
//! the shader from (seed, step, element) by Philox 4x32-10 and Box-Muller, so a seed
//! reproduces an image exactly and nothing is read back between steps. The definition is
//! shared bit for bit with `model/train/noise.py` (fixtures) and the CPU reference.

use crate::layout::token_index;
use crate::matmul::sum_parts;
use webdit_dsl::prelude::*;

/// One update `x = a·x + b·eps + c·z` over `n` elements (DDPM's form, with per-step
/// coefficients; `a = b = 0, c = 1` draws the initial noise). With `clip = 1` (DDIM), `b`
/// multiplies the clipped image estimate `clamp(u·x + v·eps, -1, 1)` instead of `eps`.
#[derive(Uniform)]
pub struct StepParams {
    pub n: u32,
    /// The image's geometry, for the token layout of `eps` and `tokens`.
    pub channels: u32,
    pub size: u32,
    pub patch: u32,
    /// The noise stream: the step index t (T for the initial noise).
    pub stream: u32,
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub clip: u32,
    pub u: f32,
    pub v: f32,
    /// `eps` as a split-K's partial products: how many, `part_len` values apart (1: eps
    /// itself).
    pub splits: u32,
    pub part_len: u32,
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The high and low words of the 64-bit product `a·b`, from 16-bit halves (WGSL has no
/// 64-bit integers).
#[kernel_fn]
pub fn mul_hi_lo(a: u32, b: u32) -> Vec2<u32> {
    let al = a & 0xffff;
    let ah = a >> 16;
    let bl = b & 0xffff;
    let bh = b >> 16;
    let lh = al * bh;
    let hl = ah * bl;
    let mid = ((al * bl) >> 16) + (lh & 0xffff) + (hl & 0xffff);
    vec2(ah * bh + (lh >> 16) + (hl >> 16) + (mid >> 16), a * b)
}

/// Philox 4x32 with 10 rounds (Salmon et al., SC'11): 4 random words from a counter and key.
#[kernel_fn]
pub fn philox(ctr: Vec4<u32>, key: Vec2<u32>) -> Vec4<u32> {
    let mut c0 = ctr.x;
    let mut c1 = ctr.y;
    let mut c2 = ctr.z;
    let mut c3 = ctr.w;
    let mut k0 = key.x;
    let mut k1 = key.y;
    // A GPU loop (unrolled, the ten rounds were 17 KB of each sampler variant's WGSL, for
    // a kernel that runs once per step); the key is bumped after each round.
    for _round in 0..10u32 {
        let p0 = mul_hi_lo(M0, c0);
        let p1 = mul_hi_lo(M1, c2);
        let n0 = p1.x ^ c1 ^ k0;
        let n2 = p0.x ^ c3 ^ k1;
        c0 = n0;
        c1 = p1.y;
        c2 = n2;
        c3 = p0.y;
        k0 += W0;
        k1 += W1;
    }
    vec4(c0, c1, c2, c3)
}

/// A word as a uniform sample in (0, 1): 24 bits, centred in its interval.
#[kernel_fn]
fn unit(r: u32) -> f32 {
    ((r >> 8) as f32) * 5.9604645e-8 + 2.9802322e-8
}

/// Standard normal number `i` of noise stream `stream` under the seed.
#[kernel_fn]
pub fn gaussian(seed: Vec2<u32>, stream: u32, i: u32) -> f32 {
    let r = philox(vec4(i / 4, stream, 0u32, 0u32), seed);
    let j = i % 4;
    let first = j < 2;
    let u_rad = unit(select(first, r.x, r.z));
    let u_ang = unit(select(first, r.y, r.w));
    let rad = sqrt(-2.0 * log(u_rad));
    let ang = 6.2831855 * u_ang;
    select(j % 2 == 0, rad * cos(ang), rad * sin(ang))
}

/// `x = a·x + b·eps + c·z` (or, with `clip`, `b` times the clipped image estimate), one
/// invocation per image element (a = 0 ignores whatever x held). `x` is the image
/// (`[batch, c, s, s]`, f32); `eps` is the model's output as it leaves the last product, in
/// token layout (`[batch, tokens, c·p·p]`): stored as `A`, or as f32 (`E`), then possibly
/// the sum of the last product's `splits` partial products (in its reduction's order, so
/// the reduction's dispatch can go). The new `x` is also written to `tokens` in token
/// layout for the next step's patch embedding, so a step needs neither a patchify nor an
/// unpatchify dispatch. The 64-bit seed is two words of `seed` (low first), so one write
/// reseeds every step of a recorded generation. Noise is drawn per image element, as on the
/// CPU.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn sampler_step<A: ScalarTy, E: ScalarTy, const WG: u32>(
    x: &mut Array<f32>,
    eps: &Array<E>,
    tokens: &mut Array<A>,
    seed: &Array<u32>,
    p: &Uniform<StepParams>,
) {
    let i = global_id().x + global_id().y * (num_workgroups().x * WG);
    if i < p.n {
        let t = token_index(i, p.channels, p.size, p.patch);
        let mut e = sum_parts(&eps, p.splits, p.part_len, t);
        if p.clip != 0 {
            e = clamp(p.u * x[i] + p.v * e, -1.0, 1.0);
        }
        let mut v = p.b * e;
        if p.a != 0.0 {
            v += p.a * x[i];
        }
        if p.c != 0.0 {
            v += p.c * gaussian(vec2(seed[0], seed[1]), p.stream, i);
        }
        x[i] = v;
        tokens[t] = v as A;
    }
}
