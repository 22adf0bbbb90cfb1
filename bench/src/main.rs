//! `bench`: every kernel at the model's real shapes, the matmul tile sweep, and whole 32-step
//! generations, on the first GPU adapter. Prints markdown tables: time (median of GPU
//! timestamps over many repetitions, after warm-up), achieved GFLOP/s or GB/s, and the % of
//! the roofline floor `max(flops / peak FLOP/s, bytes / peak bandwidth)` for the ceilings
//! given on the command line (e.g. cuBLAS SGEMM and copy bandwidth from torch_dit.py).

use clap::Parser;
use web_time::Instant;
use webdit_dsl::UniformStruct;
use webdit_kernels::attention::{AttentionParams, BQ};
use webdit_kernels::matmul::{matmul, matmul_wide, Epilogue, MatmulParams, MatmulTiles};
use webdit_kernels::matvec::{MatvecParams, OUTPUTS};
use webdit_kernels::norm::AdaLnParams;
use webdit_kernels::sampler::StepParams;
use webdit_kernels::Tiles;
use webdit_model::kernels::{by_name, KernelSource};
use webdit_model::tiers::{all_plans, attention_chunks, plan_matmul, MatmulPlan, SCRATCH_FLOATS};
use webdit_model::{plan, Checkpoint, Config, Gpu, GpuModel, Precision, Sampler};

#[derive(Parser)]
#[command(about = "Benchmark Web DiT's kernels and whole generations on the GPU")]
struct Args {
    /// Peak FP32 matmul throughput for the % column, in GFLOP/s (e.g. cuBLAS SGEMM).
    #[arg(long, default_value_t = 49_400.0)]
    peak_gflops: f64,
    /// Peak memory bandwidth for the % column, in GB/s (read + write copy).
    #[arg(long, default_value_t = 4_100.0)]
    peak_gbps: f64,
    /// Also sweep matmul tile configurations.
    #[arg(long)]
    sweep: bool,
    /// Also time every plan (tier, slices of K) of the model's products.
    #[arg(long)]
    plans: bool,
    /// Time whole generations (f32) at these numbers of steps per submit instead.
    #[arg(long, value_delimiter = ',')]
    submit_steps: Vec<usize>,
    /// Skip the whole-model generations.
    #[arg(long)]
    kernels_only: bool,
    /// Side of the large square matmul.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Only these model presets (favicon-s, favicon-b).
    #[arg(long, value_delimiter = ',', default_values_t = ["favicon-s".to_string(), "favicon-b".to_string()])]
    models: Vec<String>,
    /// Large square matmuls run before each timing (keeps the GPU's clock up).
    #[arg(long, default_value_t = 10)]
    burn: u32,
    /// Timed repetitions per sample.
    #[arg(long, default_value_t = 20)]
    reps: u32,
}

struct Bench<'a> {
    gpu: &'a Gpu,
    args: &'a Args,
    query: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    /// The large square matmul (`--size`), run by [`Bench::burn`].
    load: (webdit_model::Kernel, wgpu::BindGroup, [u32; 3]),
}

impl Bench<'_> {
    /// Runs `n` large square matmuls (4096³: about 4 ms each on an H200) and waits: a mostly idle GPU
    /// lowers its clock (measured: small generations ran 2-3x slower), so timings start
    /// from a busy one.
    fn burn(&self, n: u32) {
        let gpu = self.gpu;
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..n {
                self.load.0.dispatch(&mut pass, &self.load.1, self.load.2);
            }
        }
        gpu.queue.submit([enc.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
    }

    /// Seconds per dispatch of `kernel` (median of 7 samples of `reps` dispatches each).
    fn time(&self, kernel: &webdit_model::Kernel, bind: &wgpu::BindGroup, groups: [u32; 3]) -> f64 {
        self.time_ops(&[(kernel, bind, groups)])
    }

    /// Seconds per run of a sequence of dispatches (median of 7 samples of `reps` runs).
    fn time_ops(&self, ops: &[(&webdit_model::Kernel, &wgpu::BindGroup, [u32; 3])]) -> f64 {
        let gpu = self.gpu;
        let reps = self.args.reps;
        let sample = |timed: bool| -> f64 {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            let writes = match (&self.query, timed) {
                (Some((qs, _)), true) => Some(wgpu::ComputePassTimestampWrites {
                    query_set: qs,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
                _ => None,
            };
            let start = Instant::now();
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: writes,
                });
                for _ in 0..reps {
                    for (kernel, bind, groups) in ops {
                        kernel.dispatch(&mut pass, bind, *groups);
                    }
                }
            }
            if let (Some((qs, buf)), true) = (&self.query, timed) {
                enc.resolve_query_set(qs, 0..2, buf, 0);
            }
            gpu.queue.submit([enc.finish()]);
            if let (Some((_, buf)), true) = (&self.query, timed) {
                let t: Vec<u64> = bytemuck::pod_collect_to_vec(
                    &pollster::block_on(gpu.read(buf)).expect("timestamps"),
                );
                return (t[1].saturating_sub(t[0])) as f64
                    * gpu.queue.get_timestamp_period() as f64
                    * 1e-9
                    / reps as f64;
            }
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
            start.elapsed().as_secs_f64() / reps as f64
        };
        self.burn(self.args.burn);
        sample(false);
        let mut v: Vec<f64> = (0..7).map(|_| sample(true)).collect();
        v.sort_by(f64::total_cmp);
        v[3]
    }

    fn row(&self, what: &str, variant: &str, shape: &str, secs: f64, flops: f64, bytes: f64) {
        let floor =
            (flops / (self.args.peak_gflops * 1e9)).max(bytes / (self.args.peak_gbps * 1e9));
        let rate = if flops > 0.0 && flops / bytes > 4.0 {
            format!("{:.0} GFLOP/s", flops / secs / 1e9)
        } else {
            format!("{:.0} GB/s", bytes / secs / 1e9)
        };
        println!(
            "| {what} | {variant} | {shape} | {:.1} µs | {rate} | {:.0}% |",
            secs * 1e6,
            100.0 * floor / secs
        );
    }
}

fn buffer(gpu: &Gpu, bytes: usize) -> wgpu::Buffer {
    let data: Vec<u8> = (0..bytes.max(16))
        .map(|i| ((i * 7919) % 251) as u8 / 4)
        .collect();
    gpu.storage_init("bench", &data)
}

fn source(name: &str) -> &'static KernelSource {
    by_name(name).unwrap_or_else(|| panic!("variant {name} missing"))
}

/// Times an `m × n × k` product as the runtime runs it (tier and split-K from
/// [`plan_matmul`]) and prints its row.
fn bench_matmul(b: &Bench, f16: bool, what: &str, shape: (usize, usize, usize)) {
    let tiles = Tiles::named(webdit_model::kernels::TILES).unwrap();
    let plan = plan_matmul(&tiles, shape, SCRATCH_FLOATS);
    let (secs, label) = time_plan(b, f16, &plan);
    let (m, n, k) = shape;
    let bytes = ((m * k + n * k + m * n) * if f16 { 2 } else { 4 }) as f64;
    let flops = 2.0 * (m * n * k) as f64;
    b.row(what, &label, &format!("{m}×{n}×{k}"), secs, flops, bytes);
}

/// Seconds per run of a matmul plan (the split-K's reduction included), and its label.
fn time_plan(b: &Bench, f16: bool, plan: &MatmulPlan) -> (f64, String) {
    let gpu = b.gpu;
    let (m, n, k) = plan.shape;
    let sfx = if f16 { "_f16" } else { "" };
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
    let splits = plan.splits;
    let partial = gpu
        .kernel(source(&format!("{}_partial{sfx}", plan.tier)))
        .expect("pipeline");
    let reduce = gpu
        .kernel(source(&format!("splitk_reduce{sfx}")))
        .expect("pipeline");
    let scratch = buffer(gpu, splits as usize * m * n * 4);
    let p = gpu.uniform("p", &plan.partial_params().to_bytes());
    let sp = gpu.uniform("sp", &plan.reduce_params(1).to_bytes());
    let pbind = partial
        .bind(gpu, &[&a, &w, &scratch, &extra, &p])
        .expect("bind");
    let rbind = reduce
        .bind(gpu, &[&scratch, &c, &extra, &sp])
        .expect("bind");
    let [gx, gy, _] = plan.groups;
    let secs = b.time_ops(&[
        (&partial, &pbind, [gx, gy, splits]),
        (&reduce, &rbind, [((m * n) as u32).div_ceil(256), 1, 1]),
    ]);
    (secs, format!("{} + reduce, K/{splits}", partial.src.name))
}

/// Seconds per attention of `batch` items with the keys cut into `chunks` slices (1: the
/// unsplit kernel; else the split kernel and the combination), and its label.
fn time_attention(b: &Bench, c: &Config, batch: usize, chunks: u32) -> (f64, String) {
    let gpu = b.gpu;
    let width = webdit_kernels::ATTENTION_WIDTHS
        .iter()
        .find(|w| **w as usize >= c.dim_head)
        .unwrap();
    let (n, inner) = (c.tokens(), c.inner());
    let qkv = buffer(gpu, batch * n * 3 * inner * 4);
    let out = buffer(gpu, batch * n * inner * 4);
    let att = AttentionParams::new(n as u32, c.dim_head as u32, c.heads as u32).split(chunks);
    let p = gpu.uniform("p", &att.to_bytes());
    let q_blocks = (n as u32).div_ceil(BQ);
    let (heads, nb) = (c.heads as u32, batch as u32);
    if att.chunks == 1 {
        let kernel = gpu.kernel(source(&format!("attention_d{width}"))).unwrap();
        let bind = kernel.bind(gpu, &[&qkv, &out, &p]).unwrap();
        let secs = b.time(&kernel, &bind, [q_blocks, heads, nb]);
        return (secs, kernel.src.name.to_string());
    }
    let split = gpu
        .kernel(source(&format!("attention_split_d{width}")))
        .unwrap();
    let combine = gpu.kernel(source("attention_combine")).unwrap();
    let rows = batch * c.heads * att.chunks as usize * n;
    let parts = buffer(gpu, rows * c.dim_head * 4);
    let stats = buffer(gpu, rows * 2 * 4);
    let sb = split.bind(gpu, &[&qkv, &parts, &stats, &p]).unwrap();
    let cb = combine.bind(gpu, &[&parts, &stats, &out, &p]).unwrap();
    let quads = (n * inner / 4) as u32;
    let secs = b.time_ops(&[
        (&split, &sb, [q_blocks * att.chunks, heads, nb]),
        (&combine, &cb, [quads.div_ceil(256), nb, 1]),
    ]);
    let label = format!("{} + combine, {} slices", split.src.name, att.chunks);
    (secs, label)
}

/// The products of one DiT block (and the patch projections) at `batch` items.
fn model_products(c: &Config, batch: usize) -> [(&'static str, (usize, usize, usize)); 6] {
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

/// A DDPM-like sampler step over `n` elements.
fn step_params(n: u32) -> StepParams {
    StepParams {
        n,
        seed_lo: 1,
        seed_hi: 2,
        stream: 3,
        a: 1.0,
        b: 0.1,
        c: 0.2,
        clip: 0,
        u: 0.0,
        v: 0.0,
    }
}

fn random_checkpoint(config: Config) -> Checkpoint {
    let mut s = 0x2545F4914F6CDD1Du64;
    Checkpoint::random(config, 1.0, move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

fn main() {
    let args = Args::parse();
    let gpu = Gpu::new_blocking().unwrap_or_else(|e| panic!("{e}"));
    let query = gpu.timestamps.then(|| {
        let qs = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: None,
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        (qs, buf)
    });
    println!(
        "# {} — tiles {}, timing: {}",
        gpu.describe(),
        webdit_model::kernels::TILES,
        if query.is_some() {
            "GPU timestamps"
        } else {
            "wall clock"
        }
    );
    println!(
        "roofline: {:.1} TFLOP/s, {:.0} GB/s\n",
        args.peak_gflops / 1e3,
        args.peak_gbps
    );
    let load = {
        let kernel = gpu.kernel(source("matmul")).expect("pipeline");
        let n = args.size as u32;
        let side = args.size * args.size * 4;
        let (x, y) = (buffer(&gpu, side), buffer(&gpu, side));
        let p = gpu.uniform("p", &MatmulParams::new(n, n, n).to_bytes());
        let bind = kernel.bind(&gpu, &[&x, &x, &y, &x, &p]).expect("bind");
        let groups = n.div_ceil(
            Tiles::named(webdit_model::kernels::TILES)
                .unwrap()
                .matmul
                .bm,
        );
        (kernel, bind, [groups, groups, 1])
    };
    let b = Bench {
        gpu: &gpu,
        args: &args,
        query,
        load,
    };
    b.burn(25);

    println!(
        "| kernel | variant | shape | time | achieved | % of floor |\n|---|---|---|---|---|---|"
    );
    let big = (args.size, args.size, args.size);
    bench_matmul(&b, false, "matmul", big);
    if gpu.f16 {
        bench_matmul(&b, true, "matmul", big);
    }
    // The cost of a dispatch itself: a one-workgroup kernel on one element.
    {
        let kernel = gpu.kernel(source("sampler_step")).unwrap();
        let (x, eps) = (buffer(&gpu, 4), buffer(&gpu, 4));
        let p = gpu.uniform("p", &step_params(1).to_bytes());
        let bind = kernel.bind(&gpu, &[&x, &eps, &p]).unwrap();
        let secs = b.time(&kernel, &bind, [1, 1, 1]);
        b.row("one dispatch", "sampler_step", "1", secs, 0.0, 12.0);
    }
    let models: Vec<(String, Config)> = args
        .models
        .iter()
        .map(|m| (m.clone(), Config::preset(m).expect("known preset")))
        .collect();
    for (name, c) in models.clone() {
        for batch in [1usize, 16] {
            let m = batch * c.tokens();
            let (d, inner) = (c.dim, c.inner());
            for (what, shape) in model_products(&c, batch) {
                let what = format!("{name} b{batch} {what}");
                bench_matmul(&b, false, &what, shape);
            }
            // Attention.
            let n = c.tokens();
            // As the runtime runs it: keys in slices where the grid is small.
            let (secs, label) = time_attention(&b, &c, batch, attention_chunks(n, c.heads, batch));
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
                buffer(&gpu, m * d * 4),
                buffer(&gpu, m * d * 4),
                buffer(&gpu, batch * 2 * d * 4),
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
            let bind = kernel.bind(&gpu, &[&x, &mods, &y, &p]).unwrap();
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
            let (x, eps) = (buffer(&gpu, len * 4), buffer(&gpu, len * 4));
            let p = gpu.uniform("p", &step_params(len as u32).to_bytes());
            let bind = kernel.bind(&gpu, &[&x, &eps, &p]).unwrap();
            let secs = b.time(&kernel, &bind, [(len as u32).div_ceil(256), 1, 1]);
            b.row(
                &format!("{name} b{batch} sampler step"),
                "sampler_step",
                &format!("{len}"),
                secs,
                0.0,
                (3 * len * 4) as f64,
            );
        }
        // All modulations of one step: a matrix-vector product.
        let mw = (2 * c.depth + 1) * 2 * c.dim;
        let kernel = gpu.kernel(source("matvec")).unwrap();
        let (x, w, y) = (
            buffer(&gpu, c.time_emb_dim * 4),
            buffer(&gpu, mw * c.time_emb_dim * 4),
            buffer(&gpu, mw * 4),
        );
        let p = gpu.uniform(
            "p",
            &MatvecParams {
                n: mw as u32,
                k: c.time_emb_dim as u32,
            }
            .to_bytes(),
        );
        let bind = kernel.bind(&gpu, &[&x, &w, &y, &p]).unwrap();
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

    if args.sweep {
        println!("\n## matmul tile sweep (f32)\n\n| tiles | BM×BN×BK, TM×TN, buffers | 4096³ | favicon-b b16 mlp up 4096×3072×768 | favicon-b b16 mlp down 4096×768×3072 | favicon-b b16 qkv 4096×576×768 | favicon-s b1 qkv 64×384×512 | the same, K/8 partials | favicon-s b1 mlp down 64×512×2048, K/8 partials | 4096³, f16 storage |\n|---|---|---|---|---|---|---|---|---|---|");
        let mut cands: Vec<(String, MatmulTiles, bool)> = Tiles::CHOICES
            .iter()
            .map(|(n, t)| (format!("wide {n}"), t.matmul, true))
            .collect();
        for (bm, bn, bk, stages, tm, tn) in [
            (128, 64, 16, 1, 8, 8),
            (64, 64, 16, 1, 8, 8),
            (64, 64, 16, 1, 4, 8),
            (64, 64, 16, 1, 4, 4),
            (32, 64, 16, 1, 4, 8),
            (32, 64, 16, 1, 4, 4),
            (32, 32, 16, 1, 4, 4),
            (32, 32, 8, 1, 4, 4),
            (32, 32, 32, 1, 4, 4),
        ] {
            cands.push((
                format!("wide {bm}x{bn}k{bk}s{stages} {tm}x{tn}"),
                MatmulTiles::wide(bm, bn, bk, stages).per_thread(tm, tn),
                true,
            ));
        }
        cands.push((
            "scalar 32x32k16".into(),
            MatmulTiles::scalar(32, 32, 16, 2, 2),
            false,
        ));
        // One matmul kernel on one shape (elements of `e` bytes): "time, TFLOP/s".
        // `splits` > 1: the partial products of a split-K over that many slices of K.
        let time_kernel = |k: &webdit_dsl::ir::Kernel,
                           name: &str,
                           t: MatmulTiles,
                           e: usize,
                           (m, n, kk): (usize, usize, usize),
                           splits: usize| {
            let wgsl = webdit_codegen::compile(k)
                .unwrap_or_else(|e| panic!("{e}"))
                .wgsl;
            let kernel = gpu.kernel(KernelSource::leak(name, k, wgsl)).unwrap();
            let (a, w, c) = (
                buffer(&gpu, m * kk * e),
                buffer(&gpu, n * kk * e),
                buffer(&gpu, m * n * e * splits),
            );
            let plan = MatmulPlan {
                tier: "sweep",
                tiles: t,
                groups: [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm), 1],
                splits: splits as u32,
                shape: (m, n, kk),
            };
            let p = gpu.uniform("p", &plan.partial_params().to_bytes());
            let extra = buffer(&gpu, n * e);
            let bind = kernel.bind(&gpu, &[&a, &w, &c, &extra, &p]).unwrap();
            let [gx, gy, _] = plan.groups;
            let secs = b.time(&kernel, &bind, [gx, gy, plan.splits]);
            let rate = 2.0 * (m * n * kk) as f64 / secs / 1e12;
            if secs < 1e-4 {
                format!("{:.1} µs, {rate:.1} TFLOP/s", secs * 1e6)
            } else {
                format!("{:.2} ms, {rate:.1} TFLOP/s", secs * 1e3)
            }
        };
        for (name, t, wide) in cands {
            let k = if wide {
                matmul_wide::<f32, f32, f32>(t, Epilogue::None)
            } else {
                matmul::<f32, f32, f32>(t, Epilogue::None)
            };
            let mut cells: Vec<String> = [
                (big, 1),
                ((4096, 3072, 768), 1),
                ((4096, 768, 3072), 1),
                ((4096, 576, 768), 1),
                ((64, 384, 512), 1),
                ((64, 384, 512), 8),
                ((64, 512, 2048), 8),
            ]
            .into_iter()
            .map(|(shape, s)| time_kernel(&k, &format!("matmul_{name}"), t, 4, shape, s))
            .collect();
            if wide && gpu.f16 {
                let k16 = matmul_wide::<webdit_dsl::f16, webdit_dsl::f16, webdit_dsl::f16>(
                    t,
                    Epilogue::None,
                );
                cells.push(time_kernel(
                    &k16,
                    &format!("matmul_{name}_f16"),
                    t,
                    2,
                    big,
                    1,
                ));
            } else {
                cells.push(String::new());
            }
            println!(
                "| {name} | {}×{}×{}, {}×{}, {} stage(s) | {} |",
                t.bm,
                t.bn,
                t.bk,
                t.tm,
                t.tn,
                t.stages,
                cells.join(" | ")
            );
        }
    }
    if args.plans {
        println!("\n## every plan of the model's products (f32)\n\n| product | shape | planned | time | fastest | time | all plans (µs) |\n|---|---|---|---|---|---|---|");
        let tiles = Tiles::named(webdit_model::kernels::TILES).unwrap();
        for (name, c) in &models {
            for batch in [1usize, 16] {
                for (what, shape) in model_products(c, batch) {
                    let chosen = plan_matmul(&tiles, shape, SCRATCH_FLOATS);
                    let mut all: Vec<(f64, MatmulPlan)> = all_plans(&tiles, shape, SCRATCH_FLOATS)
                        .into_iter()
                        .map(|p| (time_plan(&b, false, &p).0, p))
                        .collect();
                    let cell = |p: &MatmulPlan| format!("{}/{}", p.tier, p.splits);
                    let t_chosen = all.iter().find(|(_, p)| *p == chosen).unwrap().0;
                    let list: Vec<String> = all
                        .iter()
                        .map(|(t, p)| format!("{} {:.1}", cell(p), t * 1e6))
                        .collect();
                    all.sort_by(|x, y| x.0.total_cmp(&y.0));
                    let (t_best, best) = &all[0];
                    let (m, n, k) = shape;
                    println!(
                        "| {name} b{batch} {what} | {m}×{n}×{k} | {} | {:.1} µs | {} | {:.1} µs | {} |",
                        cell(&chosen),
                        t_chosen * 1e6,
                        cell(best),
                        t_best * 1e6,
                        list.join(", ")
                    );
                }
                let n = c.tokens();
                let chosen = attention_chunks(n, c.heads, batch);
                let all: Vec<String> = [1, 2, 4, 8, 16]
                    .into_iter()
                    .filter(|s| (n as u32).div_ceil(*s) >= 8)
                    .map(|s| format!("{s} {:.1}", time_attention(&b, c, batch, s).0 * 1e6))
                    .collect();
                println!(
                    "| {name} b{batch} attention | {batch}×{n}×{} | {chosen} slices | | | | {} |",
                    c.dim_head,
                    all.join(", ")
                );
            }
        }
    }
    if args.kernels_only {
        return;
    }
    println!("\n## whole generation: 32 DDPM steps, recording to image read back (median of 11)\n");
    println!("| model | batch | precision | median time | best | per step | GFLOP/s | one command buffer (median) |\n|---|---|---|---|---|---|---|---|");
    for (name, c) in models {
        let ckpt = random_checkpoint(c.clone());
        let steps = plan(&c, Sampler::Ddpm, c.steps).unwrap();
        let flops_per_step = |batch: usize| {
            let (n, d, inner, hid, pd) = (
                c.tokens() as f64,
                c.dim as f64,
                c.inner() as f64,
                c.hidden() as f64,
                c.patch_dim() as f64,
            );
            let m = batch as f64 * n;
            let per_block = 2.0 * m * (3.0 * inner * d + inner * d + 2.0 * hid * d)
                + 4.0 * batch as f64 * n * n * inner;
            per_block * c.depth as f64 + 2.0 * m * (pd * d * 2.0)
        };
        for precision in [Precision::F32, Precision::F16] {
            if precision == Precision::F16 && !gpu.f16 {
                continue;
            }
            let model = GpuModel::new(&gpu, &ckpt, Some(precision)).unwrap();
            for batch in [1usize, 16] {
                let g = model.generator(&gpu, batch, &steps).unwrap();
                pollster::block_on(g.generate(&gpu, 0)).unwrap();
                // The runtime's way (submits every few steps), and all steps in one
                // command buffer submitted once recorded.
                let chunked = || pollster::block_on(g.generate(&gpu, 1)).map(|_| ());
                let single = || {
                    g.set_seed(&gpu, 1);
                    let mut enc = gpu.device.create_command_encoder(&Default::default());
                    g.encode(&mut enc, 0..g.len());
                    gpu.queue.submit([enc.finish()]);
                    pollster::block_on(g.read_image(&gpu)).map(|_| ())
                };
                let median = |run: &dyn Fn() -> Result<(), webdit_model::RuntimeError>| {
                    let mut times: Vec<f64> = (0..11)
                        .map(|_| {
                            b.burn(10);
                            let t = Instant::now();
                            run().unwrap();
                            t.elapsed().as_secs_f64()
                        })
                        .collect();
                    times.sort_by(f64::total_cmp);
                    (times[5], times[0])
                };
                if !args.submit_steps.is_empty() {
                    if precision == Precision::F32 {
                        let cells: Vec<String> = args
                            .submit_steps
                            .iter()
                            .map(|k| {
                                let run =
                                    || pollster::block_on(g.generate_in(&gpu, 1, *k)).map(|_| ());
                                format!("{k}: {:.1} ms", median(&run).0 * 1e3)
                            })
                            .collect();
                        println!("| {name} | {batch} | {} |", cells.join(", "));
                    }
                    continue;
                }
                let (t, best) = median(&chunked);
                let (t1, _) = median(&single);
                let gf = flops_per_step(batch) * c.steps as f64 / t / 1e9;
                println!(
                    "| {name} | {batch} | {precision:?} | {:.1} ms | {:.1} ms | {:.2} ms | {gf:.0} | {:.1} ms |",
                    t * 1e3,
                    best * 1e3,
                    t * 1e3 / c.steps as f64,
                    t1 * 1e3
                );
            }
        }
    }
}
