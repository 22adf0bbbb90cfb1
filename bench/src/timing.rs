//! Timing: medians of GPU timestamps over back-to-back dispatches, with the GPU kept busy
//! first, and the table rows with their share of the roofline floor.

use crate::Args;
use web_time::Instant;
use webdit_dsl::UniformStruct;
use webdit_kernels::matmul::MatmulParams;
use webdit_kernels::Tiles;
use webdit_model::kernels::{by_name, KernelSource};
use webdit_model::Gpu;

pub struct Bench<'a> {
    pub gpu: &'a Gpu,
    pub args: &'a Args,
    query: Option<Timestamps>,
    /// The large square matmul (`--size`), run by [`Bench::burn`].
    load: (webdit_model::Kernel, wgpu::BindGroup, [u32; 3]),
}

impl Bench<'_> {
    /// Runs `n` large square matmuls (4096³: about 4 ms each on an H200) and waits: a mostly idle GPU
    /// lowers its clock (measured: small generations ran 2-3x slower), so timings start
    /// from a busy one.
    pub fn burn(&self, n: u32) {
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
    pub fn time(
        &self,
        kernel: &webdit_model::Kernel,
        bind: &wgpu::BindGroup,
        groups: [u32; 3],
    ) -> f64 {
        self.time_ops(&[(kernel, bind, groups)])
    }

    /// Seconds per run of a sequence of dispatches (median of 7 samples of `reps` runs).
    pub fn time_ops(&self, ops: &[(&webdit_model::Kernel, &wgpu::BindGroup, [u32; 3])]) -> f64 {
        let gpu = self.gpu;
        let reps = self.args.reps;
        let sample = |timed: bool| -> f64 {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            let stamps = self.query.as_ref().filter(|_| timed);
            let writes = stamps.map(|q| wgpu::ComputePassTimestampWrites {
                query_set: &q.set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
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
            if let Some(q) = stamps {
                q.resolve(&mut enc);
            }
            gpu.queue.submit([enc.finish()]);
            if let Some(q) = stamps {
                let t = q.read(gpu);
                return (t[1] - t[0]).max(0.0) / reps as f64;
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

    /// Seconds each of `ops` takes as they run one after another (timestamps between the
    /// dispatches of one pass that runs the sequence `reps` times; medians over the
    /// repetitions), or nothing where the adapter has no timestamps inside passes.
    pub fn time_in_sequence(
        &self,
        ops: &[(&webdit_model::Kernel, &wgpu::BindGroup, [u32; 3])],
    ) -> Option<Vec<f64>> {
        let gpu = self.gpu;
        if !gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
        {
            return None;
        }
        let stamps = ops.len() + 1;
        let reps = (self.args.reps as usize).min(wgpu::QUERY_SET_MAX_QUERIES as usize / stamps);
        let q = Timestamps::new(gpu, "in sequence", (stamps * reps) as u32);
        self.burn(self.args.burn);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for r in 0..reps {
                pass.write_timestamp(&q.set, (r * stamps) as u32);
                for (i, (kernel, bind, groups)) in ops.iter().enumerate() {
                    kernel.dispatch(&mut pass, bind, *groups);
                    pass.write_timestamp(&q.set, (r * stamps + i + 1) as u32);
                }
            }
        }
        q.resolve(&mut enc);
        gpu.queue.submit([enc.finish()]);
        let t = q.read(gpu);
        let per_op = (0..ops.len())
            .map(|i| {
                let mut v: Vec<f64> = (0..reps)
                    .map(|r| (t[r * stamps + i + 1] - t[r * stamps + i]).max(0.0))
                    .collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect();
        Some(per_op)
    }

    pub fn row(&self, what: &str, variant: &str, shape: &str, secs: f64, flops: f64, bytes: f64) {
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

/// `count` timestamp queries and the buffer they resolve into.
pub struct Timestamps {
    pub set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    count: u32,
}

impl Timestamps {
    pub fn new(gpu: &Gpu, label: &str, count: u32) -> Self {
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some(label),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 8 * count as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Timestamps {
            set,
            resolved,
            count,
        }
    }

    /// Records the resolution of every query, after the passes that write them.
    pub fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        enc.resolve_query_set(&self.set, 0..self.count, &self.resolved, 0);
    }

    /// The resolved timestamps in seconds (from the GPU's own origin), once submitted work
    /// is done.
    pub fn read(&self, gpu: &Gpu) -> Vec<f64> {
        let tick = gpu.queue.get_timestamp_period() as f64 * 1e-9;
        let bytes = pollster::block_on(gpu.read(&self.resolved)).expect("timestamps");
        bytemuck::pod_collect_to_vec::<u8, u64>(&bytes)
            .into_iter()
            .map(|t| t as f64 * tick)
            .collect()
    }
}

pub fn buffer(gpu: &Gpu, bytes: usize) -> wgpu::Buffer {
    let data: Vec<u8> = (0..bytes.max(16))
        .map(|i| ((i * 7919) % 251) as u8 / 4)
        .collect();
    gpu.storage_init("bench", &data)
}

pub fn source(name: &str) -> &'static KernelSource {
    by_name(name).unwrap_or_else(|| panic!("variant {name} missing"))
}

impl<'a> Bench<'a> {
    /// Timestamp queries where the adapter has them, and the large square matmul of
    /// [`Bench::burn`].
    pub fn new(gpu: &'a Gpu, args: &'a Args) -> Self {
        let query = gpu
            .timestamps
            .then(|| Timestamps::new(gpu, "timestamps", 2));
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
            let (x, y) = (buffer(gpu, side), buffer(gpu, side));
            let p = gpu.uniform("p", &MatmulParams::new(n, n, n).to_bytes());
            let bind = kernel.bind(gpu, &[&x, &x, &y, &x, &p]).expect("bind");
            let groups = n.div_ceil(
                Tiles::named(webdit_model::kernels::TILES)
                    .unwrap()
                    .matmul
                    .bm,
            );
            (kernel, bind, [groups, groups, 1])
        };
        Bench {
            gpu,
            args,
            query,
            load,
        }
    }
}
