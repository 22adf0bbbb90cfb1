//! The DiT forward pass on the CPU in plain f32 (matrix products by `matrixmultiply`,
//! reductions in f64): the test oracle for the GPU path and the fallback when no GPU adapter
//! exists (the slow path).

use crate::checkpoint::Checkpoint;
use crate::config::{sinus, Config};
use crate::noise;
use crate::sampler::Step;

/// A checkpoint ready for CPU inference.
pub struct CpuModel {
    pub config: Config,
    ckpt: Checkpoint,
    pos: Vec<f32>,
}

/// `y[rows, out] = x[rows, in] · w[out, in]ᵀ`. Natively, large products are cut into
/// blocks of output columns computed on all cores (each block is an independent product, so
/// the result does not depend on the number of threads).
pub fn linear(x: &[f32], w: &[f32], rows: usize, inp: usize, out: usize) -> Vec<f32> {
    assert_eq!(x.len(), rows * inp);
    assert_eq!(w.len(), out * inp);
    let mut y = vec![0.0f32; rows * out];
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        /// The output, shared by tasks that write disjoint columns of it.
        #[derive(Clone, Copy)]
        struct Out(*mut f32);
        // SAFETY: every task writes only its own columns `c0..c1` of `y`.
        unsafe impl Send for Out {}
        unsafe impl Sync for Out {}
        impl Out {
            /// Column `c` of row 0 (a method, so closures capture the `Send` wrapper).
            fn at(self, c: usize) -> *mut f32 {
                self.0.wrapping_add(c)
            }
        }
        let threads = rayon::current_num_threads();
        if threads > 1 && rows * inp * out >= 1 << 21 {
            let chunk = out.div_ceil(threads).next_multiple_of(16);
            let y_ptr = Out(y.as_mut_ptr());
            (0..out.div_ceil(chunk)).into_par_iter().for_each(|i| {
                let (c0, c1) = (i * chunk, ((i + 1) * chunk).min(out));
                // SAFETY: rows `c0..c1` of `w` and columns `c0..c1` of `y` are in bounds
                // (c1 ≤ out); tasks' column ranges are disjoint.
                unsafe {
                    sgemm(
                        rows,
                        inp,
                        c1 - c0,
                        x.as_ptr(),
                        w.as_ptr().add(c0 * inp),
                        y_ptr.at(c0),
                        out,
                    )
                };
            });
            return y;
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::linear(x, w, rows, inp, out, &mut y);
    // SAFETY: the slices hold exactly rows×inp, out×inp and rows×out elements (checked
    // above), matching the dimensions and strides passed.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    unsafe {
        sgemm(rows, inp, out, x.as_ptr(), w.as_ptr(), y.as_mut_ptr(), out)
    };
    y
}

/// The products of the CPU path in wasm with SIMD128: `matrixmultiply` has no wasm kernel
/// (its portable one ran 6× slower than natively), while `x · wᵀ` with `w` in PyTorch's
/// `[out, in]` layout is a grid of dot products along contiguous rows, which 4×4 blocks of
/// `f32x4` accumulators cover directly.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::dot;
    use core::arch::wasm32::*;

    /// `a·b + c`, fused where the bundle's relaxed-SIMD build runs (browsers that have it).
    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        return f32x4_relaxed_madd(a, b, c);
        #[cfg(not(target_feature = "relaxed-simd"))]
        return f32x4_add(f32x4_mul(a, b), c);
    }

    fn hsum(v: v128) -> f32 {
        f32x4_extract_lane::<0>(v)
            + f32x4_extract_lane::<1>(v)
            + f32x4_extract_lane::<2>(v)
            + f32x4_extract_lane::<3>(v)
    }

    /// `y[rows, n] = x[rows, k] · w[n, k]ᵀ`.
    pub fn linear(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize, y: &mut [f32]) {
        let k4 = k / 4 * 4;
        // Four rows of `w` stay in cache while every row of `x` passes them.
        for o0 in (0..n).step_by(4) {
            let on = (n - o0).min(4);
            for r0 in (0..rows).step_by(4) {
                let rn = (rows - r0).min(4);
                if rn < 4 || on < 4 {
                    for r in r0..r0 + rn {
                        for o in o0..o0 + on {
                            y[r * n + o] = dot(&x[r * k..(r + 1) * k], &w[o * k..(o + 1) * k]);
                        }
                    }
                    continue;
                }
                let mut acc = [[f32x4_splat(0.0); 4]; 4];
                for kk in (0..k4).step_by(4) {
                    // SAFETY: rows r0..r0+4 of x and o0..o0+4 of w exist (rn = on = 4) and
                    // kk + 4 ≤ k; v128_load takes unaligned addresses.
                    let (xv, wv) = unsafe {
                        let at = |m: &[f32], row: usize| {
                            v128_load(m.as_ptr().add(row * k + kk) as *const v128)
                        };
                        (
                            [at(x, r0), at(x, r0 + 1), at(x, r0 + 2), at(x, r0 + 3)],
                            [at(w, o0), at(w, o0 + 1), at(w, o0 + 2), at(w, o0 + 3)],
                        )
                    };
                    for (row, xv) in acc.iter_mut().zip(xv) {
                        for (a, wv) in row.iter_mut().zip(wv) {
                            *a = madd(xv, wv, *a);
                        }
                    }
                }
                for (i, row) in acc.iter().enumerate() {
                    for (j, a) in row.iter().enumerate() {
                        let (r, o) = (r0 + i, o0 + j);
                        let tail = dot(&x[r * k + k4..(r + 1) * k], &w[o * k + k4..(o + 1) * k]);
                        y[r * n + o] = hsum(*a) + tail;
                    }
                }
            }
        }
    }
}

/// `y[rows, n] = x[rows, k] · w[n, k]ᵀ` with `y`'s rows `y_stride` apart.
///
/// # Safety
/// `x` must point to `rows × k` values, `w` to `n × k`, `y` to `rows` rows of `y_stride ≥ n`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
unsafe fn sgemm(
    rows: usize,
    k: usize,
    n: usize,
    x: *const f32,
    w: *const f32,
    y: *mut f32,
    y_stride: usize,
) {
    unsafe {
        matrixmultiply::sgemm(
            rows,
            k,
            n,
            1.0,
            x,
            k as isize,
            1,
            w,
            1,
            k as isize,
            0.0,
            y,
            y_stride as isize,
            1,
        );
    }
}

/// `a · b` with four independent partial sums, which compilers turn into SIMD (a single
/// running sum is a chain of dependent additions that cannot be vectorized).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 4];
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

/// The original's AdaLN over rows of `x` (unbiased std, eps added to the std); item b's
/// rows (`per` of them) use `scale[b]`, `shift[b]`.
pub fn adaln(x: &[f32], d: usize, per: usize, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for (r, row) in x.chunks(d).enumerate() {
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (d - 1) as f64;
        let inv = 1.0 / (var.sqrt() + 1e-5);
        let b = r / per;
        for i in 0..d {
            let v = (row[i] as f64 - mean) * inv;
            y[r * d + i] = (v * (1.0 + scale[b * d + i] as f64) + shift[b * d + i] as f64) as f32;
        }
    }
    y
}

/// Calls `f(image index, token index)` for every element of a batch of `len` values: image
/// `[b, c, s, s]` against tokens `[b, (s/p)², c·p·p]` (token `gy·g + gx`, inside a patch the
/// order (channel, py, px)).
fn patch_pairs(c: &Config, len: usize, mut f: impl FnMut(usize, usize)) {
    let (p, s, ch, g) = (c.patch, c.input, c.channels, c.input / c.patch);
    for b in 0..len / c.image_len() {
        for k in 0..ch {
            for y in 0..s {
                for xx in 0..s {
                    let n = (y / p) * g + xx / p;
                    let e = (k * p + y % p) * p + xx % p;
                    f(
                        ((b * ch + k) * s + y) * s + xx,
                        (b * g * g + n) * ch * p * p + e,
                    );
                }
            }
        }
    }
}

/// Image batch `[b, c, s, s]` → tokens `[b, (s/p)², c·p·p]`.
pub fn patchify(c: &Config, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    patch_pairs(c, x.len(), |img, tok| out[tok] = x[img]);
    out
}

/// Tokens `[b, (s/p)², c·p·p]` → image batch `[b, c, s, s]`.
pub fn unpatchify(c: &Config, t: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; t.len()];
    patch_pairs(c, t.len(), |img, tok| out[img] = t[tok]);
    out
}

impl CpuModel {
    pub fn new(ckpt: Checkpoint) -> CpuModel {
        CpuModel {
            pos: ckpt.config.pos_embedding(),
            config: ckpt.config.clone(),
            ckpt,
        }
    }

    fn w(&self, name: &str) -> &[f32] {
        self.ckpt.get(name)
    }

    fn attention(&self, qkv: (&[f32], &[f32], &[f32]), batch: usize) -> Vec<f32> {
        let c = &self.config;
        let (n, dh, inner) = (c.tokens(), c.dim_head, c.inner());
        let scale = (dh as f32).powf(-0.5);
        let (q, k, v) = qkv;
        let mut out = vec![0.0f32; batch * n * inner];
        let mut s = vec![0.0f32; n];
        for b in 0..batch {
            for h in 0..c.heads {
                let at = |i: usize| (b * n + i) * inner + h * dh;
                for i in 0..n {
                    let qi = &q[at(i)..at(i) + dh];
                    for (j, sj) in s.iter_mut().enumerate() {
                        let kj = &k[at(j)..at(j) + dh];
                        *sj = dot(qi, kj) * scale;
                    }
                    let mx = s.iter().cloned().fold(f32::MIN, f32::max);
                    let mut z = 0.0f64;
                    for sj in s.iter_mut() {
                        *sj = (*sj - mx).exp();
                        z += *sj as f64;
                    }
                    let o = &mut out[at(i)..at(i) + dh];
                    for (j, sj) in s.iter().enumerate() {
                        let vj = &v[at(j)..at(j) + dh];
                        for (od, vd) in o.iter_mut().zip(vj) {
                            *od += sj * vd;
                        }
                    }
                    for od in o.iter_mut() {
                        *od = (*od as f64 / z) as f32;
                    }
                }
            }
        }
        out
    }

    /// `(eps, x0)` for images `x` `[b, c, s, s]` at timesteps `t` (one per image).
    pub fn forward(&self, x: &[f32], t: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let c = &self.config;
        let batch = t.len();
        assert_eq!(x.len(), batch * c.image_len(), "x holds {} images", batch);
        let (n, d, pd, te_d, inner) = (c.tokens(), c.dim, c.patch_dim(), c.time_emb_dim, c.inner());
        let rows = batch * n;
        let mut h = linear(&patchify(c, x), self.w("patch_embed.weight"), rows, pd, d);
        for (i, v) in h.iter_mut().enumerate() {
            *v += self.pos[i % (n * d)];
        }
        let temb: Vec<f32> = t.iter().flat_map(|t| sinus(*t as f64, d / 2)).collect();
        let te1: Vec<f32> = linear(&temb, self.w("time_mlp.1.weight"), batch, d / 2, te_d)
            .into_iter()
            .map(silu)
            .collect();
        let te = linear(&te1, self.w("time_mlp.3.weight"), batch, te_d, te_d);
        let norm = |x: &[f32], prefix: &str| {
            let scale = linear(
                &te,
                self.w(&format!("{prefix}.scale_proj.weight")),
                batch,
                te_d,
                d,
            );
            let shift = linear(
                &te,
                self.w(&format!("{prefix}.shift_proj.weight")),
                batch,
                te_d,
                d,
            );
            adaln(x, d, n, &scale, &shift)
        };
        for i in 0..c.depth {
            let b = format!("blocks.{i}");
            let y = norm(&h, &format!("{b}.norm1"));
            let q = linear(&y, self.w(&format!("{b}.attn.to_q.weight")), rows, d, inner);
            let k = linear(&y, self.w(&format!("{b}.attn.to_k.weight")), rows, d, inner);
            let v = linear(&y, self.w(&format!("{b}.attn.to_v.weight")), rows, d, inner);
            let a = self.attention((&q, &k, &v), batch);
            let o = linear(
                &a,
                self.w(&format!("{b}.attn.to_out.weight")),
                rows,
                inner,
                d,
            );
            h.iter_mut().zip(&o).for_each(|(h, o)| *h += o);
            let y = norm(&h, &format!("{b}.norm2"));
            let f: Vec<f32> = linear(
                &y,
                self.w(&format!("{b}.ff.net.0.weight")),
                rows,
                d,
                c.hidden(),
            )
            .into_iter()
            .map(silu)
            .collect();
            let o = linear(
                &f,
                self.w(&format!("{b}.ff.net.2.weight")),
                rows,
                c.hidden(),
                d,
            );
            h.iter_mut().zip(&o).for_each(|(h, o)| *h += o);
        }
        let latent = norm(&h, "final_norm");
        let eps = linear(&latent, self.w("to_pixels.weight"), rows, d, pd);
        let mut x0 = linear(&latent, self.w("proj_fin.weight"), rows, d, pd);
        let bias = self.w("proj_fin.bias");
        for (i, v) in x0.iter_mut().enumerate() {
            *v += bias[i % pd];
        }
        (unpatchify(c, &eps), unpatchify(c, &x0))
    }

    /// A whole generation: noise stream T from `seed`, then `plan`'s steps. Returns the
    /// final `x` (images in [-1, 1] before clamping), calling `progress` after each step.
    pub fn generate(
        &self,
        batch: usize,
        seed: u64,
        plan: &[Step],
        mut progress: impl FnMut(usize),
    ) -> Vec<f32> {
        let mut x = self.initial_noise(batch, seed);
        for (k, s) in plan.iter().enumerate() {
            self.step(&mut x, seed, s);
            progress(k + 1);
        }
        x
    }

    /// The starting point of a generation from `seed`: noise stream T.
    pub fn initial_noise(&self, batch: usize, seed: u64) -> Vec<f32> {
        let len = batch * self.config.image_len();
        (0..len as u32)
            .map(|i| noise::gaussian(seed, self.config.steps as u32, i))
            .collect()
    }

    /// One denoising step `s` of the images `x` (a batch) in place, with `seed`'s noise.
    pub fn step(&self, x: &mut [f32], seed: u64, s: &Step) {
        let batch = x.len() / self.config.image_len();
        let (eps, _) = self.forward(x, &vec![s.t as f32; batch]);
        for (i, (xv, e)) in x.iter_mut().zip(&eps).enumerate() {
            let z = if s.c != 0.0 {
                noise::gaussian(seed, s.t as u32, i as u32)
            } else {
                0.0
            };
            *xv = s.apply(*xv, *e, z);
        }
    }
}
