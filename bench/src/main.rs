//! `bench`: every kernel at the model's real shapes, the matmul tile sweep, and whole 32-step
//! generations, on the first GPU adapter. Prints markdown tables: time (median of GPU
//! timestamps over many repetitions, after warm-up), achieved GFLOP/s or GB/s, and the % of
//! the roofline floor `max(flops / peak FLOP/s, bytes / peak bandwidth)` for the ceilings
//! given on the command line (e.g. cuBLAS SGEMM and copy bandwidth from torch_dit.py).

mod compile;
mod coop;
mod generation;
mod plans;
mod products;
mod sweep;
mod timing;

use clap::Parser;
use webdit_model::{Config, Gpu};

#[derive(Parser)]
#[command(about = "Benchmark Web DiT's kernels and whole generations on the GPU")]
pub struct Args {
    /// Peak FP32 matmul throughput for the % column, in GFLOP/s (e.g. cuBLAS SGEMM).
    #[arg(long, default_value_t = 49_400.0)]
    peak_gflops: f64,
    /// Peak memory bandwidth for the % column, in GB/s (read + write copy).
    #[arg(long, default_value_t = 4_100.0)]
    peak_gbps: f64,
    /// Also sweep matmul tile configurations.
    #[arg(long)]
    sweep: bool,
    /// Only the swept tilings whose name contains this (e.g. `ahead`).
    #[arg(long)]
    sweep_only: Option<String>,
    /// Also time each matmul tier's K-step at every unrolling (WGSL size, pipeline creation
    /// and kernel time).
    #[arg(long)]
    sweep_unroll: bool,
    /// Also time candidate tiles for the mid and small matmul tiers at the model's shapes.
    #[arg(long)]
    sweep_tiers: bool,
    /// Also time one row per workgroup times a whole weight matrix (`matvec_rows`).
    #[arg(long)]
    row_products: bool,
    /// Also time pipeline creation for every variant of the build, and the fused attention
    /// at other unrollings (run with the driver's shader cache off)
    #[arg(long)]
    compile_times: bool,
    /// Also time the tensor-core matmul (cooperative matrices) against the f16 wide kernel.
    #[arg(long)]
    coop: bool,
    /// Also time candidate tensor-core tiles (each within the adapter's limits) at 4096³ and
    /// the model's large shapes.
    #[arg(long)]
    coop_sweep: bool,
    /// Also time every split of K on tensor cores (both tiles, every slice count) of the
    /// model's products that split there.
    #[arg(long)]
    coop_splits: bool,
    /// Also time every plan (tier, slices of K) of the model's products.
    #[arg(long)]
    plans: bool,
    /// Time every op of one sampling step of the forward plan, alone, instead of the
    /// kernel table.
    #[arg(long)]
    ops: bool,
    /// Also split whole generations' wall time by GPU timestamps per command buffer.
    #[arg(long)]
    timeline: bool,
    /// Time whole generations with command buffers of at most these numbers of steps instead.
    #[arg(long, value_delimiter = ',')]
    submit_steps: Vec<usize>,
    /// Only the whole-model generations (no kernel table).
    #[arg(long)]
    generations_only: bool,
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
    /// Only time the barrier-free product (`matmul_direct`, for software adapters) against
    /// the software plan's tiles at the model's batch-1 shapes.
    #[arg(long)]
    software: bool,
    /// Timed repetitions per sample.
    #[arg(long, default_value_t = 20)]
    reps: u32,
}

fn main() {
    let args = Args::parse();
    let gpu = Gpu::new_blocking().unwrap_or_else(|e| panic!("{e}"));
    let b = timing::Bench::new(&gpu, &args);
    b.burn(25);
    let big = (args.size, args.size, args.size);
    let models: Vec<(String, Config)> = args
        .models
        .iter()
        .map(|m| (m.clone(), Config::preset(m).expect("known preset")))
        .collect();
    if args.software {
        return sweep::software(&b, &models);
    }
    if args.coop {
        coop::coop(&b, big);
    }
    if args.coop_sweep {
        coop::sweep(&b, big);
    }
    if args.coop_splits {
        coop::splits(&b, &models);
    }
    if args.ops {
        generation::ops(&b, &models);
    } else if !args.generations_only {
        products::table(&b, &models, big);
    }
    if args.sweep {
        sweep::sweep(&b, big, args.sweep_only.as_deref());
    }
    if args.sweep_unroll {
        sweep::sweep_unroll(&b, big);
    }
    if args.sweep_tiers {
        sweep::sweep_tiers(&b);
    }
    if args.row_products {
        sweep::row_products(&b);
    }
    if args.compile_times {
        compile::compile_times(&b);
    }
    if args.plans {
        plans::plans(&b, &models);
    }
    if args.timeline {
        generation::timeline(&b, &models);
    }
    if !args.kernels_only {
        generation::generations(&b, models);
    }
}
