//! `webdit`: generate images with a DiT on the GPU (or the CPU reference), inspect and
//! convert checkpoints.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use web_time::Instant;
use webdit_model::cpu::CpuModel;
use webdit_model::pixels::to_rgba8;
use webdit_model::{checkpoint, plan, Checkpoint, Config, Gpu, GpuModel, Precision, Sampler};

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

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
}

#[derive(Subcommand)]
enum Command {
    /// Generate images (PNG).
    Generate {
        /// Output PNG; with several images and no --grid, `NAME-<i>.png`.
        #[arg(long, default_value = "icon.png")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
    },
    /// Print a checkpoint's configuration and tensors.
    Info { file: PathBuf },
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

#[allow(clippy::too_many_arguments)]
fn generate(
    out: PathBuf,
    seed: u64,
    steps: Option<usize>,
    sampler: SamplerArg,
    batch: usize,
    weights: Option<PathBuf>,
    preset_name: Option<String>,
    grid: bool,
    device: DeviceArg,
    precision: Option<PrecisionArg>,
) -> Result<()> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    if out
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        != Some("png".into())
    {
        bail!("--out must name a .png file");
    }
    let ckpt = load(&weights, &preset_name)?;
    let c = ckpt.config.clone();
    let sampler = match sampler {
        SamplerArg::Ddpm => Sampler::Ddpm,
        SamplerArg::Ddim => Sampler::Ddim,
    };
    let steps = plan(&c, sampler, steps.unwrap_or(c.steps))?;
    let gpu = match (device, Gpu::new_blocking()) {
        (DeviceArg::Cpu, _) => None,
        (DeviceArg::Gpu, g) => Some(g?),
        (DeviceArg::Auto, Ok(g)) if g.adapter.device_type == wgpu::DeviceType::Cpu => {
            println!("{} is a software adapter; the CPU reference implementation is faster here (--device gpu to use it)", g.adapter.name);
            None
        }
        (DeviceArg::Auto, Ok(g)) => Some(g),
        (DeviceArg::Auto, Err(e)) => {
            eprintln!("{e}\nfalling back to the CPU reference implementation");
            None
        }
    };
    if gpu.is_none() && batch > 1024 {
        bail!("--batch {batch} is too large for the CPU path (at most 1024)");
    }
    let start = Instant::now();
    let bar = progress(steps.len());
    let x = match &gpu {
        Some(gpu) => {
            let precision = precision.map(|p| match p {
                PrecisionArg::F32 => Precision::F32,
                PrecisionArg::F16 => Precision::F16,
            });
            let model = GpuModel::new(gpu, &ckpt, precision)?;
            println!(
                "adapter: {} — {:?} kernels, tiles {}",
                gpu.describe(),
                model.precision,
                webdit_model::kernels::TILES
            );
            let g = model.generator(gpu, batch, &steps)?;
            g.set_seed(gpu, seed);
            let begin = Instant::now();
            for k in 0..g.len() {
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                g.encode(&mut enc, k..k + 1);
                gpu.queue.submit([enc.finish()]);
                gpu.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .context("waiting for the GPU")?;
                bar.inc(1);
            }
            let x = pollster::block_on(g.read_image(gpu))?;
            bar.finish_and_clear();
            let t = begin.elapsed().as_secs_f64();
            println!(
                "{} steps × batch {batch}: {:.1} ms/step, {:.3} s on the GPU",
                g.len(),
                t * 1e3 / g.len() as f64,
                t
            );
            x
        }
        None => {
            println!("device: CPU reference implementation");
            let model = CpuModel::new(ckpt);
            let x = model.generate(batch, seed, &steps, |k| bar.set_position(k as u64));
            bar.finish_and_clear();
            let t = start.elapsed().as_secs_f64();
            println!(
                "{} steps × batch {batch}: {:.1} ms/step on the CPU",
                steps.len(),
                t * 1e3 / steps.len() as f64
            );
            x
        }
    };
    for p in write_pngs(&c, &x, &out, grid)? {
        println!("wrote {}", p.display());
    }
    println!("total {:.3} s", start.elapsed().as_secs_f64());
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

fn main() {
    let result = match Cli::parse().command {
        Command::Generate {
            out,
            seed,
            steps,
            sampler,
            batch,
            weights,
            preset,
            grid,
            device,
            precision,
        } => generate(
            out, seed, steps, sampler, batch, weights, preset, grid, device, precision,
        ),
        Command::Info { file } => info(&file),
        Command::Convert { from, to, preset } => convert(&from, &to, &preset),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
