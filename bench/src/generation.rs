//! Whole generations: 32 DDPM steps from recording to the image read back.

use crate::timing::{Bench, Timestamps};
use web_time::Instant;
use webdit_model::runtime::SUBMIT_STEPS;
use webdit_model::{
    plan, Checkpoint, Config, Generator, GpuModel, Precision, RuntimeError, Sampler,
};

fn random_checkpoint(config: Config) -> Checkpoint {
    let mut s = 0x2545F4914F6CDD1Du64;
    Checkpoint::random(config, 1.0, move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

/// Prints, per model, batch and precision, every dispatch of one sampling step timed alone
/// (the plan's ops, GPU timestamps over back-to-back repetitions), their sum, and the step
/// as the whole generation runs it: the difference is what dispatching costs.
pub fn ops(b: &Bench, models: &[(String, Config)]) {
    let gpu = b.gpu;
    each_generator(b, models, |name, _, precision, batch, g| {
        println!(
            "\n## one step, op by op: {name}, batch {batch}, {precision:?} ({} dispatches)\n",
            g.plan().dispatches_per_step()
        );
        println!(
            "| op | kernel | shape | time | achieved | % of floor |\n|---|---|---|---|---|---|"
        );
        let mut sum = 0.0;
        let mut alone = vec![];
        for (op, kernel, bind, groups) in g.step_dispatches() {
            b.burn(2);
            let secs = b.time(kernel, bind, groups);
            sum += secs;
            alone.push(secs);
            b.row(
                &op.name,
                kernel.src.name,
                &op.shape,
                secs,
                op.flops,
                op.bytes,
            );
        }
        let (t, _) = median(b, &|| pollster::block_on(g.generate(gpu, 1)).map(|_| ()));
        let step = t / g.len() as f64;
        let dispatches = g.step_dispatches();
        let ops: Vec<_> = dispatches
            .iter()
            .map(|(_, k, bind, groups)| (*k, *bind, *groups))
            .collect();
        if let Some(seq) = b.time_in_sequence(&ops) {
            println!("\nIn sequence (timestamps between the step's dispatches, the step repeated; median per op):\n");
            println!("| op | alone | in sequence | difference |\n|---|---|---|---|");
            for ((op, ..), (alone, s)) in dispatches.iter().zip(alone.iter().zip(&seq)) {
                println!(
                    "| {} | {:.1} µs | {:.1} µs | {:+.1} µs |",
                    op.name,
                    alone * 1e6,
                    s * 1e6,
                    (s - alone) * 1e6
                );
            }
            println!(
                "\nSum in sequence: {:.1} µs.",
                seq.iter().sum::<f64>() * 1e6
            );
        }
        println!(
                    "\nSum of the ops alone: {:.1} µs; one step of a whole generation (median of 11, wall clock / steps): {:.1} µs.",
                    sum * 1e6,
                    step * 1e6
                );
    });
}

/// Prints, per model, batch and precision, where a whole generation's wall-clock time goes
/// (median of 11 by wall time): until the first command buffer is submitted, the GPU's span
/// from the start of the first command buffer's pass to the end of the last's, the GPU's
/// time inside the passes (the rest of the span it waited for the CPU), and the wall time
/// outside the span (recording the first command buffer, submitting it, and reading the
/// image back).
pub fn timeline(b: &Bench, models: &[(String, Config)]) {
    let gpu = b.gpu;
    if !gpu.timestamps {
        println!("\n(no timeline: this adapter has no timestamp queries)");
        return;
    }
    println!("\n## whole generation, timeline (GPU timestamps per command buffer; median of 11 by wall time)\n");
    println!("| model | batch | precision | wall | first submit | GPU span | GPU busy | GPU waiting in the span | wall outside the span |\n|---|---|---|---|---|---|---|---|---|");
    each_generator(b, models, |name, _, precision, batch, g| {
        let q = Timestamps::new(gpu, "timeline", 2 * g.chunks(SUBMIT_STEPS).len() as u32);
        let mut runs: Vec<[f64; 4]> = (0..11)
            .map(|_| {
                b.burn(10);
                let start = Instant::now();
                let mut first = None;
                g.submit_timed(gpu, 1, SUBMIT_STEPS, Some(&q.set), |_, _| {
                    first.get_or_insert_with(|| start.elapsed().as_secs_f64());
                });
                pollster::block_on(g.read_submitted(gpu)).expect("image");
                let wall = start.elapsed().as_secs_f64();
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                q.resolve(&mut enc);
                gpu.queue.submit([enc.finish()]);
                let t = q.read(gpu);
                let span = (t[t.len() - 1] - t[0]).max(0.0);
                let busy: f64 = t.chunks(2).map(|p| (p[1] - p[0]).max(0.0)).sum();
                [wall, first.unwrap_or(0.0), span, busy]
            })
            .collect();
        runs.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let [wall, first, span, busy] = runs[5];
        let ms = |s: f64| format!("{:.2} ms", s * 1e3);
        println!(
            "| {name} | {batch} | {precision:?} | {} | {} | {} | {} | {} | {} |",
            ms(wall),
            ms(first),
            ms(span),
            ms(busy),
            ms(span - busy),
            ms(wall - span)
        );
    });
}

/// Runs `f(model name, config, precision, batch, generator)` for every model, precision the
/// adapter has and batch (1, 16), the generator built and run once (pipelines compiled).
fn each_generator(
    b: &Bench,
    models: &[(String, Config)],
    mut f: impl FnMut(&str, &Config, Precision, usize, &Generator),
) {
    let gpu = b.gpu;
    for (name, c) in models {
        let ckpt = random_checkpoint(c.clone());
        let steps = plan(c, Sampler::Ddpm, c.steps).unwrap();
        for precision in [Precision::F32, Precision::F16] {
            if precision == Precision::F16 && !gpu.f16 {
                continue;
            }
            let model = GpuModel::new(gpu, &ckpt, Some(precision)).unwrap();
            for batch in [1usize, 16] {
                let g = model.generator(gpu, batch, &steps).unwrap();
                pollster::block_on(g.generate(gpu, 0)).unwrap();
                f(name, c, precision, batch, &g);
            }
        }
    }
}

/// Median and best wall-clock seconds of 11 runs, each after keeping the GPU busy.
fn median(b: &Bench, run: &dyn Fn() -> Result<(), RuntimeError>) -> (f64, f64) {
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
}

/// Prints the whole-generation table (or, with `--submit-steps`, whole generations at each
/// cap of steps per command buffer).
pub fn generations(b: &Bench, models: Vec<(String, Config)>) {
    let gpu = b.gpu;
    println!("\n## whole generation: 32 DDPM steps, the call to the image read back (median of 11; recorded while the GPU ran the one before, as every generation of a generator after its first; the last column as a first: submitted as recorded)\n");
    println!("| model | batch | precision | median time | best | per step | GFLOP/s | streamed as recorded (median) |\n|---|---|---|---|---|---|---|---|");
    each_generator(b, &models, |name, c, precision, batch, g| {
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
        // The runtime's way (recorded during the generation before, submitted at once),
        // and the way a generator's first generation goes (submitted as it is recorded).
        let prepared = || pollster::block_on(g.generate(gpu, 1)).map(|_| ());
        let streamed = || pollster::block_on(g.generate_in(gpu, 1, SUBMIT_STEPS)).map(|_| ());
        if !b.args.submit_steps.is_empty() {
            let cells: Vec<String> = b
                .args
                .submit_steps
                .iter()
                .map(|k| {
                    let run = || pollster::block_on(g.generate_in(gpu, 1, *k)).map(|_| ());
                    format!("{k}: {:.2} ms", median(b, &run).0 * 1e3)
                })
                .collect();
            println!(
                "| {name} | {batch} | {precision:?} | {} |",
                cells.join(", ")
            );
            return;
        }
        let (t, best) = median(b, &prepared);
        let (t1, _) = median(b, &streamed);
        let gf = flops_per_step(batch) * c.steps as f64 / t / 1e9;
        println!(
                    "| {name} | {batch} | {precision:?} | {:.1} ms | {:.1} ms | {:.2} ms | {gf:.0} | {:.1} ms |",
                    t * 1e3,
                    best * 1e3,
                    t * 1e3 / c.steps as f64,
                    t1 * 1e3
                );
    });
}
