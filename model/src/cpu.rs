//! The DiT forward pass on the CPU in plain f32 (matrix products by `matrixmultiply`,
//! reductions in f64): the test oracle for the GPU path and the fallback when no GPU adapter
//! exists (the slow path).

use crate::checkpoint::Checkpoint;
use crate::config::{sinus, Config};
use crate::noise;
use crate::sampler::Step;
use std::collections::HashMap;
use std::ops::Range;

/// A checkpoint ready for CPU inference.
pub struct CpuModel {
    pub config: Config,
    /// Every weight matrix by its checkpoint name (every worker holds all of them).
    mats: HashMap<String, Matrix>,
    proj_fin_bias: Vec<f32>,
    pos: Vec<f32>,
    shard: Shard,
}

/// One worker's part of a generation that several workers without shared memory (the
/// browser's Web Workers, each with its own wasm instance) run together: worker `rank` of
/// `world` computes its rows (a contiguous range of the batch's tokens) of every token-wise
/// op: the products, AdaLNs and MLPs, and attention for its query rows. Each block's keys and
/// values and, at the end, the predicted noise are gathered through an [`Exchange`]. So a
/// worker does a `world`-th of the work, every row is computed as the whole model computes
/// it, and all workers end with the same image, bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    /// The whole model in one worker.
    pub const ALL: Shard = Shard { rank: 0, world: 1 };

    /// How many of `rows` a worker computes (the last ones may have fewer, or none).
    pub fn chunk(self, rows: usize) -> usize {
        rows.div_ceil(self.world)
    }

    /// This worker's range of `rows`.
    pub fn rows(self, rows: usize) -> std::ops::Range<usize> {
        let chunk = self.chunk(rows);
        (self.rank * chunk).min(rows)..((self.rank + 1) * chunk).min(rows)
    }
}

/// How the workers of a sharded model see each other's partial results.
pub trait Exchange {
    /// Hands this worker's `part` to the others and fills `all` (`world × part.len()`
    /// values) with every worker's part, in rank order.
    fn gather(&mut self, part: &[f32], all: &mut [f32]) -> Result<(), String>;
}

/// The exchange of a model in one worker: never called.
struct Alone;

impl Exchange for Alone {
    fn gather(&mut self, _: &[f32], _: &mut [f32]) -> Result<(), String> {
        unreachable!("a model in one worker exchanges nothing")
    }
}

/// A weight `w[out, in]` (PyTorch's layout) ready for `y = x · wᵀ`: natively as stored
/// (`matrixmultiply` takes strides); in wasm with SIMD128 packed into panels of
/// [`simd128::NR`] output columns (`[⌈out/NR⌉][in][NR]`, the last panel zero-padded), which
/// the kernel streams while rows of `x` pass.
pub struct Matrix {
    data: Vec<f32>,
    inp: usize,
    out: usize,
}

impl Matrix {
    /// From `w`: `out × inp` values, row-major.
    pub fn new(w: Vec<f32>, out: usize, inp: usize) -> Matrix {
        assert_eq!(w.len(), out * inp, "a {out}×{inp} matrix");
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let w = simd128::pack(&w, out, inp);
        Matrix { data: w, inp, out }
    }

    /// `x[rows, in] · wᵀ`, `[rows, out]`. Natively, large products are cut into blocks of
    /// output columns computed on all cores (each block is an independent product, so the
    /// result does not depend on the number of threads).
    pub fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * self.out];
        self.apply_into(x, rows, &mut y);
        y
    }

    /// [`Matrix::apply`] into `y` (`rows × out` values, every one overwritten).
    pub fn apply_into(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        let (inp, out) = (self.inp, self.out);
        assert_eq!(x.len(), rows * inp, "{rows} rows of {inp}");
        assert_eq!(y.len(), rows * out, "{rows} rows of {out}");
        let w = &self.data;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        simd128::linear(x, w, rows, inp, out, y);
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
                return;
            }
        }
        // SAFETY: the slices hold exactly rows×inp, out×inp and rows×out elements (checked
        // above and in `new`), matching the dimensions and strides passed.
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        unsafe {
            sgemm(rows, inp, out, x.as_ptr(), w.as_ptr(), y.as_mut_ptr(), out)
        };
    }
}

/// The products of the CPU path in wasm with SIMD128 (`matrixmultiply` has no wasm kernel;
/// its portable one ran 6× slower than natively). Blocks of 4 rows × 8 output columns: per
/// step along `in`, two `f32x4` loads of the packed panel, one broadcast of each row's value
/// and 8 multiply-adds into 8 accumulators, all in registers (a 4×4 grid of dot products,
/// the kernel before this one, needs 24 registers and spilled: 20–26 GFLOP/s against 36–41
/// in V8, relaxed SIMD, this 2-core machine).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    /// Output columns per panel.
    pub const NR: usize = 8;

    /// `a·b + c`, fused where the bundle's relaxed-SIMD build runs (browsers that have it).
    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        return f32x4_relaxed_madd(a, b, c);
        #[cfg(not(target_feature = "relaxed-simd"))]
        return f32x4_add(f32x4_mul(a, b), c);
    }

    /// `w[out, inp]` as panels `[⌈out/NR⌉][inp][NR]`, zero-padded.
    pub fn pack(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
        let mut p = vec![0.0f32; out.div_ceil(NR) * inp * NR];
        // A product without inputs (an empty matrix): zeros.
        if inp == 0 {
            return p;
        }
        for (o, row) in w.chunks_exact(inp).enumerate() {
            let (panel, j) = (o / NR, o % NR);
            for (k, v) in row.iter().enumerate() {
                p[(panel * inp + k) * NR + j] = *v;
            }
        }
        p
    }

    /// `y[rows, n] = x[rows, k] · wᵀ` with `w` packed by [`pack`].
    pub fn linear(x: &[f32], packed: &[f32], rows: usize, k: usize, n: usize, y: &mut [f32]) {
        if k == 0 {
            y.fill(0.0);
            return;
        }
        for (p, panel) in packed.chunks_exact(k * NR).enumerate() {
            let cols = p * NR..(p * NR + NR).min(n);
            let mut r0 = 0;
            while r0 + 4 <= rows {
                block::<4>(x, panel, r0, k, cols.clone(), n, y);
                r0 += 4;
            }
            match rows - r0 {
                3 => block::<3>(x, panel, r0, k, cols, n, y),
                2 => block::<2>(x, panel, r0, k, cols, n, y),
                1 => block::<1>(x, panel, r0, k, cols, n, y),
                _ => {}
            }
        }
    }

    /// Rows `r0..r0 + MR` of `y` in columns `cols` (one panel).
    #[inline(always)]
    fn block<const MR: usize>(
        x: &[f32],
        panel: &[f32],
        r0: usize,
        k: usize,
        cols: std::ops::Range<usize>,
        n: usize,
        y: &mut [f32],
    ) {
        assert!(x.len() >= (r0 + MR) * k && panel.len() == k * NR);
        let mut acc = [[f32x4_splat(0.0); 2]; MR];
        for kk in 0..k {
            // SAFETY: kk < k, so the panel's 8 values at kk·NR and x[(r0 + i)·k + kk] for
            // i < MR are in bounds (asserted above); v128 loads take unaligned addresses.
            unsafe {
                let b = panel.as_ptr().add(kk * NR);
                let (b0, b1) = (
                    v128_load(b as *const v128),
                    v128_load(b.add(4) as *const v128),
                );
                for (i, acc) in acc.iter_mut().enumerate() {
                    let a = v128_load32_splat(x.as_ptr().add((r0 + i) * k + kk) as *const u32);
                    acc[0] = madd(a, b0, acc[0]);
                    acc[1] = madd(a, b1, acc[1]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let mut out = [0.0f32; NR];
            // SAFETY: `out` holds 8 f32s, two v128s.
            unsafe {
                v128_store(out.as_mut_ptr() as *mut v128, acc[0]);
                v128_store(out.as_mut_ptr().add(4) as *mut v128, acc[1]);
            }
            let at = (r0 + i) * n;
            y[at + cols.start..at + cols.end].copy_from_slice(&out[..cols.len()]);
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
    v / (1.0 + exp(-v))
}

/// `e^x` in f32 without libm, whose software `expf` took 10% of a step of the CPU path in
/// wasm (the SiLUs): `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (ln 2 in two parts, so `r` is
/// exact to f32 rounding), `e^r` by its Taylor polynomial to degree 6 (truncation below
/// 1.3e-7), times `2^n` through the exponent bits. Relative error below 4e-7 (tested);
/// `x` is clamped to [-87, 88], where `2^n` stays a normal f32.
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    // `round_ties_even` is one wasm instruction (`f32.nearest`); `round` calls libm.
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The original's AdaLN over rows of `x` (unbiased std, eps added to the std), which are
/// the batch's rows from `first` on; item b's rows (`per` of them) use `scale[b]`,
/// `shift[b]`.
pub fn adaln(
    x: &[f32],
    d: usize,
    per: usize,
    first: usize,
    scale: &[f32],
    shift: &[f32],
) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for (r, row) in x.chunks(d).enumerate() {
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (d - 1) as f64;
        let inv = 1.0 / (var.sqrt() + 1e-5);
        let b = (first + r) / per;
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
        CpuModel::sharded(ckpt, Shard::ALL)
    }

    /// Worker `shard.rank`'s part of the model (see [`Shard`]). Panics unless
    /// `rank < world`.
    pub fn sharded(ckpt: Checkpoint, shard: Shard) -> CpuModel {
        assert!(shard.rank < shard.world, "worker {shard:?} does not exist");
        let Checkpoint {
            config,
            mut tensors,
        } = ckpt;
        let proj_fin_bias = tensors.remove("proj_fin.bias").expect("checked").data;
        let mats = tensors
            .into_iter()
            .map(|(name, t)| (name, Matrix::new(t.data, t.shape[0], t.shape[1])))
            .collect();
        CpuModel {
            pos: config.pos_embedding(),
            config,
            mats,
            proj_fin_bias,
            shard,
        }
    }

    /// `x · wᵀ` for the weight `name` (`x`: `rows` rows).
    fn linear(&self, x: &[f32], name: &str, rows: usize) -> Vec<f32> {
        self.mats[name].apply(x, rows)
    }

    /// How many values one worker hands over in an [`Exchange::gather`] for a batch of
    /// `batch` images, at most: its rows of a block's keys and values, or of the output.
    pub fn exchange_len(&self, batch: usize) -> usize {
        let c = &self.config;
        self.shard.chunk(batch * c.tokens()) * 2 * c.inner().max(c.patch_dim())
    }

    /// `tensors` (this worker's rows of each, `width` values a row) with every worker's
    /// rows: `rows` rows each, in order.
    fn gather_rows(
        &self,
        tensors: Vec<Vec<f32>>,
        width: usize,
        rows: usize,
        ex: &mut dyn Exchange,
    ) -> Result<Vec<Vec<f32>>, String> {
        if self.shard.world == 1 {
            return Ok(tensors);
        }
        // Each worker's part: its rows of every tensor, each padded to a whole chunk (only
        // the last workers have fewer rows, so the padding falls past row `rows`).
        let chunk = self.shard.chunk(rows) * width;
        let mut part = vec![0.0f32; tensors.len() * chunk];
        for (p, t) in part.chunks_mut(chunk).zip(&tensors) {
            p[..t.len()].copy_from_slice(t);
        }
        let mut all = vec![0.0f32; part.len() * self.shard.world];
        ex.gather(&part, &mut all)?;
        Ok((0..tensors.len())
            .map(|j| {
                let mut t: Vec<f32> = all
                    .chunks(part.len())
                    .flat_map(|p| &p[j * chunk..(j + 1) * chunk])
                    .copied()
                    .collect();
                t.truncate(rows * width);
                t
            })
            .collect())
    }

    /// Block `i`'s MLP on `rows` rows.
    fn mlp(&self, i: usize, y: &[f32], rows: usize) -> Vec<f32> {
        let b = format!("blocks.{i}.ff.net");
        let f: Vec<f32> = self.linear(y, &format!("{b}.0.weight"), rows);
        let f: Vec<f32> = f.into_iter().map(silu).collect();
        self.linear(&f, &format!("{b}.2.weight"), rows)
    }

    /// Attention for the query rows `q` (the batch's tokens `own`) against the keys and
    /// values `k`, `v` of every token of the batch.
    fn attention(&self, q: &[f32], (k, v): (&[f32], &[f32]), own: Range<usize>) -> Vec<f32> {
        let c = &self.config;
        let (n, dh, inner) = (c.tokens(), c.dim_head, c.inner());
        let scale = (dh as f32).powf(-0.5);
        let mut out = vec![0.0f32; own.len() * inner];
        let mut s = vec![0.0f32; n];
        for (local, row) in own.enumerate() {
            let image = row / n * n;
            for h in 0..c.heads {
                let at = |i: usize| i * inner + h * dh;
                let qi = &q[at(local)..at(local) + dh];
                for (j, sj) in s.iter_mut().enumerate() {
                    let kj = &k[at(image + j)..at(image + j) + dh];
                    *sj = dot(qi, kj) * scale;
                }
                let mx = s.iter().cloned().fold(f32::MIN, f32::max);
                let mut z = 0.0f64;
                for sj in s.iter_mut() {
                    *sj = (*sj - mx).exp();
                    z += *sj as f64;
                }
                let o = &mut out[at(local)..at(local) + dh];
                for (j, sj) in s.iter().enumerate() {
                    let vj = &v[at(image + j)..at(image + j) + dh];
                    for (od, vd) in o.iter_mut().zip(vj) {
                        *od += sj * vd;
                    }
                }
                for od in o.iter_mut() {
                    *od = (*od as f64 / z) as f32;
                }
            }
        }
        out
    }

    /// `(eps, x0)` for images `x` `[b, c, s, s]` at timesteps `t` (one per image). Panics
    /// on a sharded model (use [`CpuModel::step_sharded`]).
    pub fn forward(&self, x: &[f32], t: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (eps, x0) = self
            .forward_with(x, t, true, &mut Alone)
            .expect("one worker");
        (eps, x0.expect("x0 asked for"))
    }

    /// `eps` and, with `want_x0`, `x0`; a sharded model's workers exchange through `ex`.
    fn forward_with(
        &self,
        x: &[f32],
        t: &[f32],
        want_x0: bool,
        ex: &mut dyn Exchange,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), String> {
        let c = &self.config;
        let batch = t.len();
        assert_eq!(x.len(), batch * c.image_len(), "x holds {} images", batch);
        let (n, d, pd, inner) = (c.tokens(), c.dim, c.patch_dim(), c.inner());
        let rows = batch * n;
        let own = self.shard.rows(rows);
        let m = own.len();
        let tokens = patchify(c, x);
        let mut h = self.linear(
            &tokens[own.start * pd..own.end * pd],
            "patch_embed.weight",
            m,
        );
        for (i, v) in h.iter_mut().enumerate() {
            *v += self.pos[(own.start * d + i) % (n * d)];
        }
        let temb: Vec<f32> = t.iter().flat_map(|t| sinus(*t as f64, d / 2)).collect();
        let te1: Vec<f32> = self.linear(&temb, "time_mlp.1.weight", batch);
        let te1: Vec<f32> = te1.into_iter().map(silu).collect();
        let te = self.linear(&te1, "time_mlp.3.weight", batch);
        let norm = |x: &[f32], prefix: &str| {
            let scale = self.linear(&te, &format!("{prefix}.scale_proj.weight"), batch);
            let shift = self.linear(&te, &format!("{prefix}.shift_proj.weight"), batch);
            adaln(x, d, n, own.start, &scale, &shift)
        };
        for i in 0..c.depth {
            let b = format!("blocks.{i}");
            let y = norm(&h, &format!("{b}.norm1"));
            let [q, k, v] =
                ["q", "k", "v"].map(|w| self.linear(&y, &format!("{b}.attn.to_{w}.weight"), m));
            let kv = self.gather_rows(vec![k, v], inner, rows, ex)?;
            let a = self.attention(&q, (&kv[0], &kv[1]), own.clone());
            let o = self.linear(&a, &format!("{b}.attn.to_out.weight"), m);
            h.iter_mut().zip(&o).for_each(|(h, o)| *h += o);
            let y = norm(&h, &format!("{b}.norm2"));
            let o = self.mlp(i, &y, m);
            h.iter_mut().zip(&o).for_each(|(h, o)| *h += o);
        }
        let latent = norm(&h, "final_norm");
        let mut out = vec![self.linear(&latent, "to_pixels.weight", m)];
        if want_x0 {
            let mut x0 = self.linear(&latent, "proj_fin.weight", m);
            for (i, v) in x0.iter_mut().enumerate() {
                *v += self.proj_fin_bias[i % pd];
            }
            out.push(x0);
        }
        let mut out = self.gather_rows(out, pd, rows, ex)?.into_iter();
        let eps = unpatchify(c, &out.next().expect("eps"));
        Ok((eps, out.next().map(|x0| unpatchify(c, &x0))))
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
    /// Panics on a sharded model (use [`CpuModel::step_sharded`]).
    pub fn step(&self, x: &mut [f32], seed: u64, s: &Step) {
        self.step_sharded(x, seed, s, &mut Alone)
            .expect("one worker");
    }

    /// [`CpuModel::step`] on a model shared by several workers: every worker calls it with
    /// the same arguments and ends with the same `x`. Fails where the exchange fails.
    pub fn step_sharded(
        &self,
        x: &mut [f32],
        seed: u64,
        s: &Step,
        ex: &mut dyn Exchange,
    ) -> Result<(), String> {
        let batch = x.len() / self.config.image_len();
        let (eps, _) = self.forward_with(x, &vec![s.t as f32; batch], false, ex)?;
        for (i, (xv, e)) in x.iter_mut().zip(&eps).enumerate() {
            let z = if s.c != 0.0 {
                noise::gaussian(seed, s.t as u32, i as u32)
            } else {
                0.0
            };
            *xv = s.apply(*xv, *e, z);
        }
        Ok(())
    }
}

/// The products against a plain f64 reference on fresh random inputs, sizes that are not
/// multiples of the kernels' blocks included. Natively `cargo test`; the SIMD128 kernel
/// runs them in wasm (`tests/tests/wasm.rs` drives `wasm-bindgen-test-runner`).
#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A small deterministic generator (xorshift), uniform in [-1, 1).
    fn random(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 4e-7, "relative error {worst:e}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite() && silu(-1000.0).abs() < 1e-30 && silu(1000.0) == 1000.0);
    }

    #[test]
    fn products_match_reference() {
        let shapes = [
            (1, 1, 1),
            (1, 128, 512),
            (3, 5, 7),
            (4, 8, 8),
            (5, 17, 9),
            (7, 33, 23),
            (64, 512, 192),
            (65, 100, 130),
            // No inputs (an empty matrix): zeros.
            (3, 0, 5),
            // No rows (a worker of more than the batch has tokens for).
            (0, 8, 8),
        ];
        for (seed, (rows, inp, out)) in shapes.into_iter().enumerate() {
            let x = random(2 * seed as u64, rows * inp);
            let w = random(2 * seed as u64 + 1, out * inp);
            // Poisoned: every value must be written.
            let mut y = vec![f32::NAN; rows * out];
            Matrix::new(w.clone(), out, inp).apply_into(&x, rows, &mut y);
            for r in 0..rows {
                for o in 0..out {
                    let (mut want, mut scale) = (0.0f64, 0.0f64);
                    for k in 0..inp {
                        let p = x[r * inp + k] as f64 * w[o * inp + k] as f64;
                        want += p;
                        scale += p.abs();
                    }
                    let got = y[r * out + o] as f64;
                    assert!(
                        got.is_finite(),
                        "{rows}×{inp}×{out}: y[{r}][{o}] not written"
                    );
                    assert!(
                        (got - want).abs() <= 1e-5 * scale.max(1e-30),
                        "{rows}×{inp}×{out}: y[{r}][{o}] = {got}, want {want}"
                    );
                }
            }
        }
    }
}
