//! `webdit`: generate images with a DiT on the GPU (or the CPU reference), inspect and
//! convert checkpoints.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use web_time::Instant;
use webdit_model::cpu::CpuModel;
use webdit_model::pixels::to_rgba8;
use webdit_model::runtime::SUBMIT_STEPS;
use webdit_model::{
    checkpoint, plan, Checkpoint, Config, Gpu, GpuModel, HostWeights, Precision, Sampler,
};

#[derive(Parser)]
#[command(name = "webdit", about = "Diffusion transformers on WebGPU", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum SamplerArg {
    Ddpm,
    Ddim,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum DeviceArg {
    Auto,
    Gpu,
    Cpu,
}

/// When `generate` runs products on tensor cores (adapters with cooperative matrices).
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum TensorCoresArg {
    /// When their kernels are in the pipeline cache already, or the job is large enough
    /// (at least 1,024 images) to pay for compiling them. The same holds for the fused
    /// attention (`attention_rows_out`), which is as slow to compile for what it gains.
    Auto,
    /// Always (and compiled into the cache, so later `auto` runs use them).
    On,
    Off,
}

/// Images from which compiling the tensor-core kernels on a cold driver (0.5-0.7 s on an
/// H200) pays for itself: they gain about 0.9 ms per image at batch 16 and 0.6 ms per
/// generation at batch 1 (BENCHMARKS.md).
const TENSOR_CORES_PAY_FROM: usize = 1024;

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
}

/// The flags of `webdit plan`.
#[derive(clap::Args)]
struct PlanArgs {
    /// A preset (favicon-s, favicon-b).
    #[arg(long, default_value = "favicon-s")]
    model: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Storage precision (default: f16; f32 with --software, as software adapters lack
    /// shader-f16).
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Plan as on an adapter with subgroups (native).
    #[arg(long)]
    subgroups: bool,
    /// Plan as on an adapter with cooperative matrices (native, f16).
    #[arg(long)]
    tensor_cores: bool,
    /// Plan as on a software adapter in the browser (SwiftShader: products and AdaLNs
    /// without workgroup memory or barriers, nothing split).
    #[arg(long)]
    software: bool,
    /// Denoising steps (default: the model's T).
    #[arg(long)]
    steps: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate images (PNG).
    Generate {
        /// Output PNG; with several images and no --grid, `NAME-<i>.png`.
        #[arg(long, default_value = "icon.png")]
        out: PathBuf,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Icons to generate from one start-up, seeds `seed`, `seed+1`, ...; with several,
        /// the files are `NAME-<seed>.png`.
        #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
        count: usize,
        /// Seeds to generate from one start-up (e.g. `1,2,3`), instead of --seed/--count.
        #[arg(long, value_delimiter = ',', conflicts_with = "seed")]
        seeds: Vec<u64>,
        /// Denoising steps (default: the model's T; DDIM may use fewer).
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long, value_enum, default_value = "ddpm")]
        sampler: SamplerArg,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// A checkpoint (.safetensors, model.safetensors.index.json or a folder); default:
        /// the shipped favicon-s emoji model.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Configuration for checkpoints without metadata (favicon-s, favicon-b).
        #[arg(long)]
        preset: Option<String>,
        /// Write one grid image instead of one file per image.
        #[arg(long)]
        grid: bool,
        /// Where to run: `auto` uses the GPU unless the only adapter is a software one
        /// (lavapipe, SwiftShader), where the CPU reference implementation is faster.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Storage precision on the GPU (default: f16 where the adapter has shader-f16).
        #[arg(long, value_enum)]
        precision: Option<PrecisionArg>,
        /// Print where the time went: process start, adapter, weights, pipelines,
        /// recording, steps, readback, PNG.
        #[arg(long)]
        timings: bool,
        /// Neither read nor write the compiled-pipeline cache (kept under
        /// `$WEBDIT_CACHE_DIR`, else the user's cache directory, e.g. `~/.cache/webdit`).
        #[arg(long)]
        no_cache: bool,
        /// Products on tensor cores (native, f16, adapters with cooperative matrices); `auto`
        /// and `on` also decide the fused attention (attention, its output projection and the
        /// next AdaLN in one kernel), which is as slow to compile.
        #[arg(long, value_enum, default_value = "auto")]
        tensor_cores: TensorCoresArg,
    },
    /// Print a checkpoint's configuration and tensors.
    Info { file: PathBuf },
    /// Print the forward plan a generation runs: every dispatch (op, kernel variant, shape,
    /// tensors read and written, workgroups, FLOPs and bytes) and the memory it shares.
    /// Needs no GPU: the adapter's capabilities are flags.
    Plan(PlanArgs),
    /// Convert the original project's WTS1 `matrices.bin` to safetensors.
    Convert {
        from: PathBuf,
        to: PathBuf,
        /// Configuration to record (default: matched from the shapes).
        #[arg(long)]
        preset: Option<String>,
    },
}

fn preset(name: &Option<String>) -> Result<Option<Config>> {
    name.as_deref()
        .map(|n| {
            Config::preset(n)
                .with_context(|| format!("unknown preset `{n}` (favicon-s, favicon-b)"))
        })
        .transpose()
}

fn load(weights: &Option<PathBuf>, preset_name: &Option<String>) -> Result<Checkpoint> {
    let p = preset(preset_name)?;
    Ok(match weights {
        Some(path) => checkpoint::load(path, p.as_ref())
            .with_context(|| format!("loading {}", path.display()))?,
        None => webdit_model::default_checkpoint().context("loading the shipped weights")?,
    })
}

/// Writes `[n, c, s, s]` images in [-1, 1] as PNGs.
fn write_pngs(c: &Config, x: &[f32], out: &Path, grid: bool) -> Result<Vec<PathBuf>> {
    let s = c.input;
    let n = x.len() / c.image_len();
    let rgba: Vec<Vec<u8>> = (0..n).map(|i| to_rgba8(c, x, i)).collect();
    let pixel = |img: usize, y: usize, xx: usize| -> [u8; 3] {
        let p = &rgba[img][(y * s + xx) * 4..];
        [p[0], p[1], p[2]]
    };
    let save = |img: image::RgbImage, path: &Path| -> Result<PathBuf> {
        img.save_with_format(path, image::ImageFormat::Png)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_path_buf())
    };
    if grid || n == 1 {
        let cols = (n as f64).sqrt().ceil() as usize;
        let rows = n.div_ceil(cols);
        let mut img = image::RgbImage::from_pixel(
            (cols * s) as u32,
            (rows * s) as u32,
            image::Rgb([255, 255, 255]),
        );
        for i in 0..n {
            for y in 0..s {
                for xx in 0..s {
                    let at = ((i % cols * s + xx) as u32, (i / cols * s + y) as u32);
                    img.put_pixel(at.0, at.1, image::Rgb(pixel(i, y, xx)));
                }
            }
        }
        return Ok(vec![save(img, out)?]);
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "icon".into());
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(s as u32, s as u32, |xx, y| {
                image::Rgb(pixel(i, y as usize, xx as usize))
            });
            save(img, &out.with_file_name(format!("{stem}-{i}.png")))
        })
        .collect()
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:32} {pos}/{len} steps {elapsed_precise}")
            .expect("valid template"),
    );
    bar
}

/// Seconds since the process was started by the OS (Linux: from `/proc`), so start-up
/// timings include loading the binary.
fn process_age() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces); `starttime` is field 22.
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // Linux reports `starttime` in USER_HZ, 100 on every mainstream configuration.
    Some((uptime - ticks / 100.0).max(0.0))
}

/// Named phases of a run, printed as a table by `--timings`.
struct Phases {
    start: Instant,
    /// Seconds between the process's start and `start`.
    before: f64,
    last: f64,
    rows: Vec<(String, f64)>,
}

impl Phases {
    fn new() -> Phases {
        let start = Instant::now();
        let before = process_age().unwrap_or(0.0);
        Phases {
            start,
            before,
            last: 0.0,
            rows: vec![("process start to main".into(), before)],
        }
    }

    /// Records `s` seconds of the current phase as phase `name`.
    fn part(&mut self, name: impl Into<String>, s: f64) {
        self.rows.push((name.into(), s));
        self.last += s;
    }

    /// Ends phase `name` now.
    fn done(&mut self, name: impl Into<String>) {
        let now = self.start.elapsed().as_secs_f64();
        self.rows.push((name.into(), now - self.last));
        self.last = now;
    }

    fn total(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }

    fn print(&self) {
        println!("{:<60} {:>10}", "phase", "ms");
        for (name, s) in &self.rows {
            println!("{name:<60} {:>10.1}", s * 1e3);
        }
        println!(
            "{:<60} {:>10.1}",
            "total (process start to last PNG)",
            self.total() * 1e3
        );
    }
}

/// The output file for `seed` when several seeds are generated.
fn seed_path(out: &Path, seed: u64, several: bool) -> PathBuf {
    if !several {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "icon".into());
    out.with_file_name(format!("{stem}-{seed}.png"))
}

/// What `generate` was asked for.
struct Job {
    out: PathBuf,
    seeds: Vec<u64>,
    batch: usize,
    grid: bool,
    timings: bool,
    tensor_cores: TensorCoresArg,
}

/// Runs `job` on the GPU: one model and one generator for every seed, each generation
/// submitted in chunks of steps with progress from their completion, never a sync per step.
fn generate_gpu(
    gpu: &Gpu,
    ckpt: &Checkpoint,
    precision: Option<Precision>,
    host: Option<HostWeights>,
    steps: &[webdit_model::Step],
    job: &Job,
    phases: &mut Phases,
) -> Result<()> {
    let c = &ckpt.config;
    let mut model = GpuModel::with_weights(gpu, ckpt, precision, host)?;
    phases.done("weights to the GPU");
    let mut tensor_cores = String::new();
    if model.tensor_cores() {
        let images = job.batch * job.seeds.len();
        let uncached = match job.tensor_cores {
            TensorCoresArg::Auto if images < TENSOR_CORES_PAY_FROM => {
                model.uncached_tensor_core_variants(gpu, job.batch, steps)?
            }
            _ => vec![],
        };
        if job.tensor_cores == TensorCoresArg::Off || !uncached.is_empty() {
            model.disable_tensor_cores();
        }
        tensor_cores = match (job.tensor_cores, uncached.as_slice()) {
            (TensorCoresArg::Off, _) => ", tensor cores off".into(),
            (_, []) => ", tensor cores".into(),
            (_, names) => format!(
                ", tensor cores off ({} not compiled yet: --tensor-cores on compiles and caches them)",
                names.join(", ")
            ),
        };
    }
    if job.tensor_cores == TensorCoresArg::Auto
        && job.batch * job.seeds.len() < TENSOR_CORES_PAY_FROM
    {
        let uncached = model.uncached_fused_attention_variants(gpu, job.batch, steps)?;
        if !uncached.is_empty() {
            model.disable_attention_out_fusion();
            tensor_cores += &format!(
                ", attention unfused ({} not compiled yet: --tensor-cores on compiles and caches it)",
                uncached.join(", ")
            );
        }
    }
    println!(
        "adapter: {} — {:?} kernels{tensor_cores}, tiles {}",
        gpu.describe(),
        model.precision,
        webdit_model::kernels::TILES
    );
    let g = model.generator(gpu, job.batch, steps)?;
    let compiled = &g.compiled;
    let cache = match gpu.cache_file() {
        Some(p) => format!("cache {}", p.display()),
        None => "no pipeline cache".into(),
    };
    let slowest = match compiled.times.first() {
        Some((name, secs)) => format!("slowest {name} {:.0} ms, ", secs * 1e3),
        None => String::new(),
    };
    phases.part(
        format!(
            "pipelines ({} compiled, {slowest}{cache})",
            compiled.times.len()
        ),
        compiled.secs,
    );
    phases.done("buffers and bind groups");
    if job.timings {
        let used = model.variants();
        let bytes: usize = used.iter().map(|k| k.wgsl.len()).sum();
        println!(
            "{} kernel variants, {:.0} KB of WGSL: {}",
            used.len(),
            bytes as f64 / 1e3,
            used.iter().map(|k| k.name).collect::<Vec<_>>().join(" ")
        );
        if !compiled.times.is_empty() {
            let each: Vec<String> = compiled
                .times
                .iter()
                .map(|(name, secs)| format!("{name} {:.0}", secs * 1e3))
                .collect();
            println!("pipelines created (ms, side by side): {}", each.join(", "));
        }
    }
    let several = job.seeds.len() > 1;
    for &seed in &job.seeds {
        let bar = progress(g.len());
        let begin = Instant::now();
        let mut chunks = vec![];
        g.submit(gpu, seed, SUBMIT_STEPS, |done, index| {
            chunks.push((done, index))
        });
        phases.done(format!("seed {seed}: record and submit"));
        // Progress as command buffers finish; the last one's end is waited for by the
        // readback, which polls (a blocking wait wakes late).
        chunks.pop();
        for (done, index) in chunks {
            gpu.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .context("waiting for the GPU")?;
            bar.set_position(done as u64);
        }
        let x = pollster::block_on(g.read_submitted(gpu))?;
        let t = begin.elapsed().as_secs_f64();
        bar.finish_and_clear();
        phases.done(format!(
            "seed {seed}: the steps on the GPU and the readback"
        ));
        println!(
            "seed {seed}: {} steps × batch {}: {:.2} ms/step, {:.1} ms from recording to the image read back",
            g.len(),
            job.batch,
            t * 1e3 / g.len().max(1) as f64,
            t * 1e3
        );
        for p in write_pngs(c, &x, &seed_path(&job.out, seed, several), job.grid)? {
            println!("wrote {}", p.display());
        }
        phases.done(format!("seed {seed}: PNG"));
    }
    // Released by the process's exit, off the user's path (see `background_exit`):
    // destroying them one by one took ~40 ms on an H100.
    std::mem::forget(g);
    std::mem::forget(model);
    Ok(())
}

/// Runs `job` on the CPU reference implementation.
fn generate_cpu(
    ckpt: Checkpoint,
    steps: &[webdit_model::Step],
    job: &Job,
    phases: &mut Phases,
) -> Result<()> {
    println!("device: CPU reference implementation");
    let c = ckpt.config.clone();
    let model = CpuModel::new(ckpt);
    let several = job.seeds.len() > 1;
    for &seed in &job.seeds {
        let bar = progress(steps.len());
        let begin = Instant::now();
        let x = model.generate(job.batch, seed, steps, |k| bar.set_position(k as u64));
        bar.finish_and_clear();
        let t = begin.elapsed().as_secs_f64();
        phases.done(format!("seed {seed}: the steps on the CPU"));
        println!(
            "seed {seed}: {} steps × batch {}: {:.1} ms/step on the CPU",
            steps.len(),
            job.batch,
            t * 1e3 / steps.len().max(1) as f64
        );
        for p in write_pngs(&c, &x, &seed_path(&job.out, seed, several), job.grid)? {
            println!("wrote {}", p.display());
        }
        phases.done(format!("seed {seed}: PNG"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn generate(
    job: Job,
    steps: Option<usize>,
    sampler: SamplerArg,
    weights: Option<PathBuf>,
    preset_name: Option<String>,
    device: DeviceArg,
    precision: Option<PrecisionArg>,
    no_cache: bool,
) -> Result<()> {
    let mut phases = Phases::new();
    if job.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if job.seeds.is_empty() {
        bail!("--count must be at least 1");
    }
    if job
        .out
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        != Some("png".into())
    {
        bail!("--out must name a .png file");
    }
    // The adapter opens (driver start-up) while the weights are read and checked, and, if
    // it is still opening then, converted for the GPU (f16 unless asked otherwise).
    let open = || {
        if no_cache {
            pollster::block_on(Gpu::new())
        } else {
            pollster::block_on(Gpu::with_cache())
        }
    };
    let precision = precision.map(|p| match p {
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::F16 => Precision::F16,
    });
    let adapter_open = AtomicBool::new(false);
    let (ckpt, opened) = std::thread::scope(|s| {
        let gpu = (device != DeviceArg::Cpu).then(|| {
            s.spawn(|| {
                let start = Instant::now();
                let gpu = open();
                adapter_open.store(true, Ordering::Release);
                (gpu, start.elapsed().as_secs_f64())
            })
        });
        let start = Instant::now();
        let ckpt = load(&weights, &preset_name).map(|ckpt| {
            let prepare = gpu.is_some() && !adapter_open.load(Ordering::Acquire);
            let host =
                prepare.then(|| HostWeights::new(&ckpt, precision.unwrap_or(Precision::F16)));
            (ckpt, host)
        });
        let read = start.elapsed().as_secs_f64();
        let gpu = gpu.map(|h| h.join().expect("the adapter thread does not panic"));
        (ckpt.map(|c| (c, read)), gpu)
    });
    let ((ckpt, host), read) = ckpt?;
    let row = match &opened {
        Some((gpu, adapter)) => format!(
            "weights ({:.0} ms{}) and adapter ({:.0} ms{}), in parallel",
            read * 1e3,
            if host.is_some() { ", converted" } else { "" },
            adapter * 1e3,
            match gpu {
                Ok(g) => format!(
                    ": instance {:.0}, adapter {:.0}, device {:.0}",
                    g.opening[0] * 1e3,
                    g.opening[1] * 1e3,
                    g.opening[2] * 1e3
                ),
                Err(_) => String::new(),
            }
        ),
        None => "weights (read and check)".into(),
    };
    phases.done(row);
    let c = ckpt.config.clone();
    let sampler = match sampler {
        SamplerArg::Ddpm => Sampler::Ddpm,
        SamplerArg::Ddim => Sampler::Ddim,
    };
    let steps = plan(&c, sampler, steps.unwrap_or(c.steps))?;
    let gpu = match (device, opened.map(|(g, _)| g)) {
        (DeviceArg::Cpu, _) | (_, None) => None,
        (DeviceArg::Gpu, Some(g)) => Some(g?),
        (DeviceArg::Auto, Some(Ok(g))) if g.adapter.device_type == wgpu::DeviceType::Cpu => {
            println!("{} is a software adapter; the CPU reference implementation is faster here (--device gpu to use it)", g.adapter.name);
            None
        }
        (DeviceArg::Auto, Some(Ok(g))) => Some(g),
        (DeviceArg::Auto, Some(Err(e))) => {
            eprintln!("{e}\nfalling back to the CPU reference implementation");
            None
        }
    };
    if gpu.is_none() && job.batch > 1024 {
        bail!(
            "--batch {} is too large for the CPU path (at most 1024)",
            job.batch
        );
    }
    match &gpu {
        Some(gpu) => generate_gpu(gpu, &ckpt, precision, host, &steps, &job, &mut phases)?,
        None => generate_cpu(ckpt, &steps, &job, &mut phases)?,
    }
    if job.timings {
        phases.print();
    } else {
        println!("total {:.3} s", phases.total());
    }
    std::mem::forget(gpu); // as in `generate_gpu`
    Ok(())
}

fn info(file: &Path) -> Result<()> {
    let ckpt =
        checkpoint::load(file, None).with_context(|| format!("loading {}", file.display()))?;
    let c = &ckpt.config;
    println!("config: {}", c.to_json());
    println!(
        "{} tensors, {:.2} M parameters, {} tokens of {} values",
        ckpt.tensors.len(),
        c.params() as f64 / 1e6,
        c.tokens(),
        c.patch_dim()
    );
    let mut names: Vec<_> = ckpt.tensors.keys().collect();
    names.sort();
    for n in names {
        let t = &ckpt.tensors[n];
        println!("  {n:40} {:?} {:?}", t.stored, t.shape);
    }
    Ok(())
}

fn convert(from: &Path, to: &Path, preset_name: &Option<String>) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let p = preset(preset_name)?;
    let ckpt = webdit_model::wts1::parse(&bytes, p.as_ref())
        .with_context(|| format!("converting {}", from.display()))?;
    std::fs::write(to, ckpt.to_safetensors()?)
        .with_context(|| format!("writing {}", to.display()))?;
    println!(
        "wrote {} ({} tensors, config {})",
        to.display(),
        ckpt.tensors.len(),
        ckpt.config.to_json()
    );
    Ok(())
}

fn print_plan(args: &PlanArgs) -> Result<()> {
    use webdit_model::forward::{Heads, Options, Plan};
    let (model, coop) = (&args.model, args.tensor_cores);
    let c = preset(&Some(model.to_string()))?.expect("named");
    let precision = match args.precision {
        Some(PrecisionArg::F32) => Precision::F32,
        Some(PrecisionArg::F16) => Precision::F16,
        None if args.software => Precision::F32,
        None => Precision::F16,
    };
    if coop && precision != Precision::F16 {
        bail!("tensor cores take f16 data: add --precision f16");
    }
    let options = Options {
        precision,
        tiles: webdit_kernels::Tiles::named(webdit_model::kernels::TILES).expect("registered"),
        subgroups: args.subgroups,
        coop,
        coop_split: coop,
        mlp_fused: coop,
        eps_fused: true,
        coop_min_groups: webdit_model::tiers::COOP_MIN_GROUPS,
        software: args.software,
        attention_rows: true,
        attention_coop: coop,
        attention_out_fused: true,
        norm_linear_fused: true,
    };
    let steps = plan(&c, Sampler::Ddpm, args.steps.unwrap_or(c.steps))?;
    let p = Plan::build(&c, &options, args.batch, &steps, Heads::Eps, None)?;
    // A closed pipe (`| head`) ends the listing, not the program with a panic.
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "# {model}, {p}");
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    // The release of the GPU device (~40 ms on an H100, after the last PNG) happens in the
    // background: see `background_exit`.
    #[cfg(unix)]
    let done = matches!(cli.command, Command::Generate { .. })
        .then(background_exit::start)
        .flatten();
    let result = match cli.command {
        Command::Generate {
            out,
            seed,
            count,
            seeds,
            steps,
            sampler,
            batch,
            weights,
            preset,
            grid,
            device,
            precision,
            timings,
            no_cache,
            tensor_cores,
        } => {
            let seeds = if seeds.is_empty() {
                (0..count as u64).map(|i| seed.wrapping_add(i)).collect()
            } else {
                seeds
            };
            let job = Job {
                out,
                seeds,
                batch,
                grid,
                timings,
                tensor_cores,
            };
            generate(
                job, steps, sampler, weights, preset, device, precision, no_cache,
            )
        }
        Command::Info { file } => info(&file),
        Command::Plan(args) => print_plan(&args),
        Command::Convert { from, to, preset } => convert(&from, &to, &preset),
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    #[cfg(unix)]
    if let Some(done) = done {
        done.exit(code);
    }
    std::process::exit(code);
}

/// A process that waits for its work to be done, not for its exit: as mold does, `start`
/// forks; the parent only waits for the child's exit code and leaves with it at once, and
/// the child does the work, reports its code, lets go of stdout and stderr (so a pipe
/// reading them ends too) and exits in its own time. Releasing the GPU device (~40 ms on an
/// H100, whether its objects are destroyed one by one or the process's exit frees them)
/// then costs the user nothing. Where the child dies without reporting (a panic), the
/// parent exits with its status.
#[cfg(unix)]
mod background_exit {
    pub struct Done {
        report: libc::c_int,
    }

    /// In the child: the work goes on, `Some`; `None` where fork or pipe failed (the work
    /// runs in this process as usual). The parent never returns.
    pub fn start() -> Option<Done> {
        let mut fds = [0; 2];
        // SAFETY: called from `main` before any thread exists, so the child may run
        // anything; the parent only reads, waits and `_exit`s.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return None;
            }
            let [read, report] = fds;
            match libc::fork() {
                -1 => {
                    libc::close(read);
                    libc::close(report);
                    None
                }
                0 => {
                    libc::close(read);
                    Some(Done { report })
                }
                child => {
                    libc::close(report);
                    let mut code = 0u8;
                    if libc::read(read, (&mut code as *mut u8).cast(), 1) == 1 {
                        libc::_exit(code as libc::c_int);
                    }
                    let mut status = 0;
                    libc::waitpid(child, &mut status, 0);
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code)
                }
            }
        }
    }

    impl Done {
        /// Reports `code` to the waiting parent (stdout already flushed, every file
        /// written), then exits without holding stdout or stderr.
        pub fn exit(self, code: i32) -> ! {
            // SAFETY: plain file-descriptor calls; `_exit` skips destructors on purpose.
            unsafe {
                let byte = code as u8;
                libc::write(self.report, (&byte as *const u8).cast(), 1);
                for fd in 0..3 {
                    libc::close(fd);
                }
                libc::_exit(code)
            }
        }
    }
}
