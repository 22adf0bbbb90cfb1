//! The kernel table: every kernel at the model's shapes, run the way the runtime runs it.

use crate::timing::{buffer, source, Bench};
use webdit_dsl::UniformStruct;
use webdit_kernels::attention::{AttentionParams, BQ, ROWS, ROWS_MAX_N};
use webdit_kernels::matmul::MatmulParams;
use webdit_kernels::matvec::{MatvecParams, OUTPUTS};
use webdit_kernels::norm::AdaLnParams;
use webdit_kernels::sampler::StepParams;
use webdit_kernels::Tiles;
use webdit_model::tiers::{
    attention_by_rows, attention_chunks, plan_matmul, MatmulPlan, SCRATCH_FLOATS,
};
use webdit_model::Config;

/// The kernel table for the large square matmul `big` and each model.
pub fn table(b: &Bench, models: &[(String, Config)], big: (usize, usize, usize)) {
    let gpu = b.gpu;
    println!(
        "| kernel | variant | shape | time | achieved | % of floor |\n|---|---|---|---|---|---|"
    );
    bench_matmul(b, false, "matmul", big);
    if gpu.f16 {
        bench_matmul(b, true, "matmul", big);
    }
    // The cost of a dispatch itself: a one-workgroup kernel on one element.
    {
        let kernel = gpu.kernel(source("sampler_step")).unwrap();
        let (x, eps, seed) = (buffer(gpu, 4), buffer(gpu, 4), buffer(gpu, 8));
        let tokens = buffer(gpu, 4);
        let p = gpu.uniform("p", &step_params(1, 1, 1, 1).to_bytes());
        let bind = kernel.bind(gpu, &[&x, &eps, &tokens, &seed, &p]).unwrap();
        let secs = b.time(&kernel, &bind, [1, 1, 1]);
        b.row("one dispatch", "sampler_step", "1", secs, 0.0, 12.0);
    }
    for (name, c) in models.iter().cloned() {
        for batch in [1usize, 16] {
            let m = batch * c.tokens();
            let (d, inner) = (c.dim, c.inner());
            for (what, shape) in model_products(&c, batch) {
                let what = format!("{name} b{batch} {what}");
                bench_matmul(b, false, &what, shape);
            }
            // Attention.
            let n = c.tokens();
            // As the runtime runs it: a few rows per workgroup, or keys in slices, where the
            // grid is small.
            let (secs, label) = if attention_by_rows(n, c.dim_head) {
                time_attention_rows(b, &c, batch)
            } else {
                time_attention(b, &c, batch, attention_chunks(n, c.heads, batch))
            };
            let flops = 4.0 * (batch * c.heads * n * n * c.dim_head) as f64;
            b.row(
                &format!("{name} b{batch} attention"),
                &label,
                &format!("{batch}×{n}×{}", c.dim_head),
                secs,
                flops,
                (m * 4 * inner * 4) as f64,
            );
            // AdaLN.
            let kernel = gpu.kernel(source("adaln")).unwrap();
            let (x, y, mods) = (
                buffer(gpu, m * d * 4),
                buffer(gpu, m * d * 4),
                buffer(gpu, batch * 2 * d * 4),
            );
            let p = gpu.uniform(
                "p",
                &AdaLnParams {
                    d: d as u32,
                    rows_per_batch: n as u32,
                    mod_stride: 2 * d as u32,
                    scale_at: 0,
                    shift_at: d as u32,
                }
                .to_bytes(),
            );
            let bind = kernel.bind(gpu, &[&x, &mods, &y, &p]).unwrap();
            let secs = b.time(&kernel, &bind, [m as u32, 1, 1]);
            b.row(
                &format!("{name} b{batch} adaln"),
                "adaln",
                &format!("{m}×{d}"),
                secs,
                (8 * m * d) as f64,
                (2 * m * d * 4) as f64,
            );
            // Sampler step.
            let kernel = gpu.kernel(source("sampler_step")).unwrap();
            let len = batch * c.image_len();
            let (x, eps, seed) = (buffer(gpu, len * 4), buffer(gpu, len * 4), buffer(gpu, 8));
            let tokens = buffer(gpu, len * 4);
            let sp = step_params(
                len as u32,
                c.channels as u32,
                c.input as u32,
                c.patch as u32,
            );
            let p = gpu.uniform("p", &sp.to_bytes());
            let bind = kernel.bind(gpu, &[&x, &eps, &tokens, &seed, &p]).unwrap();
            let secs = b.time(&kernel, &bind, [(len as u32).div_ceil(256), 1, 1]);
            b.row(
                &format!("{name} b{batch} sampler step"),
                "sampler_step",
                &format!("{len}"),
                secs,
                0.0,
                (4 * len * 4) as f64,
            );
        }
        // All modulations of one step: a matrix-vector product.
        let mw = (2 * c.depth + 1) * 2 * c.dim;
        let kernel = gpu.kernel(source("matvec")).unwrap();
        let (x, w, y) = (
            buffer(gpu, c.time_emb_dim * 4),
            buffer(gpu, mw * c.time_emb_dim * 4),
            buffer(gpu, mw * 4),
        );
        let p = gpu.uniform(
            "p",
            &MatvecParams {
                n: mw as u32,
                k: c.time_emb_dim as u32,
            }
            .to_bytes(),
        );
        let bind = kernel.bind(gpu, &[&x, &w, &y, &p]).unwrap();
        let secs = b.time(&kernel, &bind, [(mw as u32).div_ceil(OUTPUTS), 1, 1]);
        b.row(
            &format!("{name} modulations"),
            "matvec",
            &format!("1×{mw}×{}", c.time_emb_dim),
            secs,
            (2 * mw * c.time_emb_dim) as f64,
            (mw * c.time_emb_dim * 4) as f64,
        );
    }
}

/// Times an `m × n × k` product as the runtime runs it (tier and split-K from
/// [`plan_matmul`]) and prints its row.
pub fn bench_matmul(b: &Bench, f16: bool, what: &str, shape: (usize, usize, usize)) {
    let tiles = Tiles::named(webdit_model::kernels::TILES).unwrap();
    let plan = plan_matmul(&tiles, shape, SCRATCH_FLOATS);
    let (secs, label) = time_plan(b, f16, &plan);
    let (m, n, k) = shape;
    let bytes = ((m * k + n * k + m * n) * if f16 { 2 } else { 4 }) as f64;
    let flops = 2.0 * (m * n * k) as f64;
    b.row(what, &label, &format!("{m}×{n}×{k}"), secs, flops, bytes);
}

/// Seconds per run of a matmul plan (the split-K's reduction included), and its label.
pub fn time_plan(b: &Bench, f16: bool, plan: &MatmulPlan) -> (f64, String) {
    let gpu = b.gpu;
    let (m, n, k) = plan.shape;
    let sfx = if f16 { "_f16" } else { "" };
    let store = if f16 {
        webdit_kernels::Store::F16
    } else {
        webdit_kernels::Store::F32
    };
    let e = if f16 { 2 } else { 4 };
    let (a, w, c) = (
        buffer(gpu, m * k * e),
        buffer(gpu, n * k * e),
        buffer(gpu, m * n * e),
    );
    let extra = buffer(gpu, n * e);
    if plan.splits == 1 {
        let kernel = gpu
            .kernel(source(&format!("{}{sfx}", plan.tier)))
            .expect("pipeline");
        let p = gpu.uniform(
            "p",
            &MatmulParams::new(m as u32, n as u32, k as u32).to_bytes(),
        );
        let bind = kernel.bind(gpu, &[&a, &w, &c, &extra, &p]).expect("bind");
        return (
            b.time(&kernel, &bind, plan.groups),
            kernel.src.name.to_string(),
        );
    }
    // Split-K: partial products over K slices, then the reduction (as in the runtime).
    let partial = gpu
        .kernel(source(
            &webdit_kernels::Key::partial(plan.tier_key().expect("a registered tier"), store)
                .name(),
        ))
        .expect("pipeline");
    let reduce = gpu
        .kernel(source(&format!("splitk_reduce{sfx}")))
        .expect("pipeline");
    let [(pk, pb, pg), (rk, rb, rg)] =
        split_ops(b, [&partial, &reduce], plan, [&a, &w, &c, &extra]);
    let secs = b.time_ops(&[(pk, &pb, pg), (rk, &rb, rg)]);
    let splits = plan.splits;
    (secs, format!("{} + reduce, K/{splits}", partial.src.name))
}

/// The two dispatches of `plan`'s split-K as the runtime runs them: `partial` products of
/// `a` and `w` over slices of K into a scratch buffer, then `reduce` into `c` (`extra`: the
/// epilogue's row table).
pub fn split_ops<'k>(
    b: &Bench,
    [partial, reduce]: [&'k webdit_model::Kernel; 2],
    plan: &MatmulPlan,
    [a, w, c, extra]: [&wgpu::Buffer; 4],
) -> [(&'k webdit_model::Kernel, wgpu::BindGroup, [u32; 3]); 2] {
    let gpu = b.gpu;
    let (m, n, _) = plan.shape;
    let scratch = buffer(gpu, plan.splits as usize * m * n * 4);
    let p = gpu.uniform("p", &plan.partial_params().to_bytes());
    let sp = gpu.uniform("sp", &plan.reduce_params(1).to_bytes());
    let pbind = partial
        .bind(gpu, &[a, w, &scratch, extra, &p])
        .expect("bind");
    let rbind = reduce.bind(gpu, &[&scratch, c, extra, &sp]).expect("bind");
    let [gx, gy, _] = plan.groups;
    [
        (partial, pbind, [gx, gy, plan.splits]),
        (reduce, rbind, [((m * n) as u32).div_ceil(256), 1, 1]),
    ]
}

/// The head width of `c`'s attention variants, and buffers for the fused Q/K/V input and
/// the output of `batch` items.
fn attention_io(b: &Bench, c: &Config, batch: usize) -> (u32, wgpu::Buffer, wgpu::Buffer) {
    let width = webdit_kernels::attention_width(c.dim_head).expect("a preset's head width");
    let rows = batch * c.tokens();
    let qkv = buffer(b.gpu, rows * 3 * c.inner() * 4);
    (width, qkv, buffer(b.gpu, rows * c.inner() * 4))
}

/// Seconds per attention of `batch` items with the keys cut into `chunks` slices (1: one
/// pass writing the output; else the slices and their combination), and its label.
pub fn time_attention(b: &Bench, c: &Config, batch: usize, chunks: u32) -> (f64, String) {
    let gpu = b.gpu;
    let (width, qkv, out) = attention_io(b, c, batch);
    let (n, inner) = (c.tokens(), c.inner());
    let att = AttentionParams::new(n as u32, c.dim_head as u32, c.heads as u32).split(chunks);
    let p = gpu.uniform("p", &att.to_bytes());
    let q_blocks = (n as u32).div_ceil(BQ);
    let (heads, nb) = (c.heads as u32, batch as u32);
    let kernel = gpu.kernel(source(&format!("attention_d{width}"))).unwrap();
    let rows = batch * c.heads * att.chunks as usize * n;
    let parts = buffer(gpu, rows * c.dim_head * 4);
    let stats = buffer(gpu, rows * 2 * 4);
    let bind = kernel.bind(gpu, &[&qkv, &out, &parts, &stats, &p]).unwrap();
    let groups = [q_blocks * att.chunks, heads, nb];
    if att.chunks == 1 {
        let secs = b.time(&kernel, &bind, groups);
        return (secs, kernel.src.name.to_string());
    }
    let combine = gpu.kernel(source("attention_combine")).unwrap();
    let cb = combine.bind(gpu, &[&parts, &stats, &out, &p]).unwrap();
    let quads = (n * inner / 4) as u32;
    let secs = b.time_ops(&[
        (&kernel, &bind, groups),
        (&combine, &cb, [quads.div_ceil(256), nb, 1]),
    ]);
    let label = format!("{} + combine, {} slices", kernel.src.name, att.chunks);
    (secs, label)
}

/// Seconds per attention of `batch` items by `attention_rows` (`ROWS` query rows per
/// workgroup), and its label. Panics past the longest sequence it holds.
pub fn time_attention_rows(b: &Bench, c: &Config, batch: usize) -> (f64, String) {
    let gpu = b.gpu;
    let n = c.tokens();
    assert!(
        n <= ROWS_MAX_N as usize,
        "{n} tokens: too many for attention_rows"
    );
    let (width, qkv, out) = attention_io(b, c, batch);
    let att = AttentionParams::new(n as u32, c.dim_head as u32, c.heads as u32);
    let p = gpu.uniform("p", &att.to_bytes());
    let kernel = gpu
        .kernel(source(&format!("attention_rows_d{width}")))
        .unwrap();
    let bind = kernel.bind(gpu, &[&qkv, &out, &p]).unwrap();
    let groups = [(n as u32).div_ceil(ROWS), c.heads as u32, batch as u32];
    let secs = b.time(&kernel, &bind, groups);
    (secs, kernel.src.name.to_string())
}

/// The products of one DiT block (and the patch projections) at `batch` items.
pub fn model_products(c: &Config, batch: usize) -> [(&'static str, (usize, usize, usize)); 6] {
    let m = batch * c.tokens();
    let (d, inner, hid, pd) = (c.dim, c.inner(), c.hidden(), c.patch_dim());
    [
        ("patch embed", (m, d, pd)),
        ("qkv", (m, 3 * inner, d)),
        ("attn out", (m, d, inner)),
        ("mlp up", (m, hid, d)),
        ("mlp down", (m, d, hid)),
        ("to pixels", (m, pd, d)),
    ]
}

/// A DDPM-like sampler step over `n` elements of images of `size`² pixels and `channels`
/// channels in patches of `patch`².
pub fn step_params(n: u32, channels: u32, size: u32, patch: u32) -> StepParams {
    StepParams {
        n,
        channels,
        size,
        patch,
        stream: 3,
        a: 1.0,
        b: 0.1,
        c: 0.2,
        clip: 0,
        u: 0.0,
        v: 0.0,
        splits: 1,
        part_len: n,
    }
}
