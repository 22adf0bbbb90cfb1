//! The wgpu side: device setup, pipelines for the build-time-compiled kernels, buffers and
//! readback. One code path serves native and the web (readback waits on the `map_async`
//! callback through a channel; natively `poll` drives it).

use crate::kernels::{Binding, KernelSource};
use std::sync::OnceLock;
use wgpu::util::DeviceExt;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found ({0}); natively, install a Vulkan driver (e.g. mesa-vulkan-drivers for a software one); in a browser, enable WebGPU")]
    NoAdapter(String),
    #[error("the GPU adapter refused a device: {0}")]
    Device(String),
    #[error("kernel `{kernel}` needs the `{feature}` feature, which this adapter ({adapter}) lacks; use a variant without it (f32 for shader-f16)")]
    MissingFeature {
        kernel: &'static str,
        feature: &'static str,
        adapter: String,
    },
    #[error("kernel `{kernel}` is native-only: it needs {needed} {what} and this adapter ({adapter}) grants {granted}; build with the default tiles")]
    MissingLimit {
        kernel: &'static str,
        what: &'static str,
        needed: u32,
        granted: u32,
        adapter: String,
    },
    #[error("kernel `{kernel}` takes {expected} buffers, got {got}")]
    Bindings {
        kernel: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("reading a buffer back failed: {0}")]
    Readback(String),
}

/// A device and queue with what the runtime needs to know about the adapter.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    /// `shader-f16` is available (and enabled).
    pub f16: bool,
    /// The device has subgroups (natively, where the adapter offers them).
    pub subgroups: bool,
    /// The device has cooperative matrices at 16×16×16, f16 into f32 (tensor cores).
    pub coop: bool,
    /// Timestamp queries are available (and enabled).
    pub timestamps: bool,
    /// Seconds the opening took: `[instance, adapter, device and pipeline cache]`.
    pub opening: [f64; 3],
    /// The driver's pipeline cache, where the adapter has one and the caller asked for it
    /// ([`Gpu::with_cache`]).
    #[cfg(not(target_arch = "wasm32"))]
    cache: Option<crate::pipeline_cache::Cache>,
}

impl Gpu {
    /// Opens the highest-performance adapter with `shader-f16` and timestamp queries enabled
    /// where the adapter has them. Compiled pipelines are not kept between runs.
    pub async fn new() -> Result<Gpu, GpuError> {
        Self::open(false).await
    }

    /// [`Gpu::new`], with the driver's compiled pipelines kept in a file under the user's
    /// cache directory (see [`crate::pipeline_cache`]) where the adapter supports it, so a
    /// second run skips shader compilation. A bad cache file is reported on stderr, ignored
    /// and rewritten.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn with_cache() -> Result<Gpu, GpuError> {
        Self::open(true).await
    }

    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    async fn open(cached: bool) -> Result<Gpu, GpuError> {
        let start = web_time::Instant::now();
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let instance_secs = start.elapsed().as_secs_f64();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let adapter_secs = start.elapsed().as_secs_f64() - instance_secs;
        let mut wanted = wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY;
        // Subgroup kernels are native-only (their WGSL lacks the browsers' `enable`).
        // Timestamps between dispatches: `bench --ops` times a step's ops in sequence.
        #[cfg(not(target_arch = "wasm32"))]
        {
            wanted |= wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        }
        if cached {
            wanted |= wgpu::Features::PIPELINE_CACHE;
        }
        // Tensor cores: 16×16×16 products of f16 into f32 (what the DSL's cooperative
        // matrices use), requested only where the adapter reports that configuration.
        #[cfg(not(target_arch = "wasm32"))]
        let coop = adapter
            .features()
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && adapter.cooperative_matrix_properties().iter().any(|p| {
                (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                    && p.ab_type == wgpu::CooperativeScalarType::F16
                    && p.cr_type == wgpu::CooperativeScalarType::F32
            });
        #[cfg(target_arch = "wasm32")]
        let coop = false;
        if coop {
            wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("webdit"),
                required_features: features,
                required_limits: adapter.limits(),
                experimental_features: if coop {
                    // SAFETY: the only experimental feature requested is cooperative
                    // matrices, used only by kernels naga validated with that capability,
                    // at the configuration the adapter reported (16×16×16, f16 -> f32).
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                // Smaller memory blocks: with `Performance`, the first readback of a process
                // allocated a large mapped block (15–17 ms on an H200, 1.2 ms now); kernel
                // times are the same (BENCHMARKS.md).
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let info = adapter.get_info();
        #[cfg(not(target_arch = "wasm32"))]
        let cache = features
            .contains(wgpu::Features::PIPELINE_CACHE)
            .then(|| crate::pipeline_cache::Cache::open(&device, &info))
            .flatten();
        Ok(Gpu {
            device,
            queue,
            adapter: info,
            f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            coop,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            opening: [
                instance_secs,
                adapter_secs,
                start.elapsed().as_secs_f64() - instance_secs - adapter_secs,
            ],
            #[cfg(not(target_arch = "wasm32"))]
            cache,
        })
    }

    /// [`Gpu::new`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Gpu, GpuError> {
        pollster::block_on(Gpu::new())
    }

    /// Where compiled pipelines are kept between runs, if they are.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn cache_file(&self) -> Option<&std::path::Path> {
        self.cache.as_ref().map(|c| c.path())
    }

    /// Whether the kernel variant `name` is in the pipeline cache, so that its pipeline loads
    /// instead of compiling (always false without a cache, and in the browser).
    pub fn cached(&self, name: &str) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(c) = &self.cache {
            return c.holds(name);
        }
        let _ = name;
        false
    }

    /// Writes the pipeline cache back if pipelines were compiled since it was loaded. A
    /// failure to write is a warning: the next run compiles again.
    pub fn save_cache(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(c) = &self.cache {
            c.save();
        }
    }

    /// A one-line description of the adapter.
    pub fn describe(&self) -> String {
        let a = &self.adapter;
        // Browsers may hide the name (SwiftShader gives none).
        let name = if a.name.is_empty() {
            "unnamed adapter"
        } else {
            &a.name
        };
        let mut extras = String::new();
        for (has, what) in [
            (self.f16, ", shader-f16"),
            (self.subgroups, ", subgroups"),
            (self.coop, ", cooperative matrices"),
        ] {
            if has {
                extras.push_str(what);
            }
        }
        format!("{} ({:?}, {:?}{extras})", name, a.backend, a.device_type)
    }

    /// Creates the pipeline of a build-time-compiled kernel.
    pub fn kernel(&self, src: &'static KernelSource) -> Result<Kernel, GpuError> {
        let k = self.layout(src)?;
        self.compile(&[&k]);
        Ok(k)
    }

    /// A kernel's bind-group layout, enough to bind buffers to it; its pipeline is created
    /// by [`Gpu::compile`] before the first dispatch.
    pub fn layout(&self, src: &'static KernelSource) -> Result<Kernel, GpuError> {
        if src.f16 && !self.f16 {
            return Err(GpuError::MissingFeature {
                kernel: src.name,
                feature: "shader-f16",
                adapter: self.adapter.name.clone(),
            });
        }
        if src.coop && !self.coop {
            return Err(GpuError::MissingFeature {
                kernel: src.name,
                feature: "cooperative matrices (16x16x16, f16 into f32)",
                adapter: self.adapter.name.clone(),
            });
        }
        if src.subgroups && !self.subgroups {
            return Err(GpuError::MissingFeature {
                kernel: src.name,
                feature: "subgroups",
                adapter: self.adapter.name.clone(),
            });
        }
        if let Some((what, needed, granted)) = src.beyond(&self.device.limits()) {
            return Err(GpuError::MissingLimit {
                kernel: src.name,
                what,
                needed,
                granted,
                adapter: self.adapter.name.clone(),
            });
        }
        let entries: Vec<wgpu::BindGroupLayoutEntry> = src
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b.kind {
                        Binding::Storage => wgpu::BufferBindingType::Storage { read_only: true },
                        Binding::StorageReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                        Binding::Uniform => wgpu::BufferBindingType::Uniform,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(src.name),
                entries: &entries,
            });
        Ok(Kernel {
            src,
            layout,
            pipeline: OnceLock::new(),
        })
    }

    /// Creates the pipelines of `kernels` that do not have one yet (natively on all cores:
    /// translation to the driver's language and the driver's compiler run per pipeline).
    pub fn compile(&self, kernels: &[&Kernel]) -> Compiled {
        let todo: Vec<&Kernel> = kernels
            .iter()
            .copied()
            .filter(|k| k.pipeline.get().is_none())
            .collect();
        let start = web_time::Instant::now();
        let times = std::sync::Mutex::new(Vec::with_capacity(todo.len()));
        let create = |k: &Kernel| {
            let t = web_time::Instant::now();
            k.pipeline.get_or_init(|| self.pipeline(k));
            let secs = t.elapsed().as_secs_f64();
            times.lock().expect("no panics").push((k.src.name, secs));
        };
        // Natively on all cores; in a browser wgpu's objects stay on the page's thread.
        #[cfg(not(target_arch = "wasm32"))]
        {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(todo.len());
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(k) = todo.get(i) else { break };
                        create(k);
                    });
                }
            });
        }
        #[cfg(target_arch = "wasm32")]
        todo.iter().for_each(|k| create(k));
        let mut times = times.into_inner().expect("no panics");
        times.sort_by(|a, b| b.1.total_cmp(&a.1));
        Compiled {
            secs: start.elapsed().as_secs_f64(),
            times,
        }
    }

    fn pipeline(&self, k: &Kernel) -> wgpu::ComputePipeline {
        let src = k.src;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(src.name),
            source: wgpu::ShaderSource::Wgsl(src.wgsl.into()),
        };
        // Natively, wgpu would add a bounds check to every storage access (an order of
        // magnitude on matmuls). Every kernel's indexing is tested against CPU references
        // with guard regions around outputs, so natively the kernels run unchecked.
        // Browsers always keep their own checks.
        #[cfg(not(target_arch = "wasm32"))]
        let module = unsafe {
            self.device
                .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
        #[cfg(target_arch = "wasm32")]
        let module = self.device.create_shader_module(desc);
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(src.name),
                bind_group_layouts: &[Some(&k.layout)],
                immediate_size: 0,
            });
        #[cfg(not(target_arch = "wasm32"))]
        let cache = self.cache.as_ref().map(|c| c.compiled(src.name));
        #[cfg(target_arch = "wasm32")]
        let cache = None;
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(src.name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(src.entry),
                compilation_options: Default::default(),
                cache,
            })
    }

    /// A storage buffer initialized with `data` (also usable as a copy source and target).
    pub fn storage_init(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A uniform buffer holding `data`.
    pub fn uniform(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Copies `buffer` back to the CPU once all submitted work is done.
    pub async fn read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
        let staging = self.staging("readback", buffer.size());
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
        self.queue.submit([enc.finish()]);
        self.read_staged(&staging).await
    }

    /// A buffer of `size` bytes for the GPU to copy results into and [`Gpu::read_staged`]
    /// to map.
    pub fn staging(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// The bytes of `staging` (from [`Gpu::staging`]) once all submitted work is done (the
    /// copy into it among it); unmapped again after.
    pub async fn read_staged(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let mapped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = mapped.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            done.store(true, std::sync::atomic::Ordering::Release);
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.wait_for(&mapped)?;
        rx.await
            .map_err(|_| GpuError::Readback("the device was lost".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let bytes = view.to_vec();
        drop(view);
        staging.unmap();
        Ok(bytes)
    }

    /// Polls the device until `done` (natively). On a GPU it keeps polling: a blocking wait
    /// returned 0.1–0.4 ms after the GPU had finished (H200, BENCHMARKS.md), which a
    /// 7 ms generation would wait as well. A software adapter's threads need the CPU this
    /// thread would spin on, so there it blocks.
    #[cfg(not(target_arch = "wasm32"))]
    fn wait_for(&self, done: &std::sync::atomic::AtomicBool) -> Result<(), GpuError> {
        let failed = |e: wgpu::PollError| GpuError::Readback(e.to_string());
        if self.adapter.device_type == wgpu::DeviceType::Cpu {
            self.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(failed)?;
            return Ok(());
        }
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            self.device.poll(wgpu::PollType::Poll).map_err(failed)?;
            std::thread::yield_now();
        }
        Ok(())
    }

    /// [`Gpu::read`] as f32s, blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32_blocking(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
        let bytes = pollster::block_on(self.read(buffer))?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

/// What [`Gpu::compile`] did: the wall-clock seconds, and each pipeline created with its
/// seconds, slowest first (pipelines are created side by side natively).
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    pub secs: f64,
    pub times: Vec<(&'static str, f64)>,
}

/// A kernel's bind-group layout and, once [`Gpu::compile`] made it, its compute pipeline.
pub struct Kernel {
    pub src: &'static KernelSource,
    layout: wgpu::BindGroupLayout,
    pipeline: OnceLock<wgpu::ComputePipeline>,
}

impl Kernel {
    /// Whether the pipeline exists.
    pub fn is_compiled(&self) -> bool {
        self.pipeline.get().is_some()
    }

    /// Binds `buffers` to the kernel's parameters, in order.
    pub fn bind(&self, gpu: &Gpu, buffers: &[&wgpu::Buffer]) -> Result<wgpu::BindGroup, GpuError> {
        if buffers.len() != self.src.bindings.len() {
            return Err(GpuError::Bindings {
                kernel: self.src.name,
                expected: self.src.bindings.len(),
                got: buffers.len(),
            });
        }
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        Ok(gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.src.name),
            layout: &self.layout,
            entries: &entries,
        }))
    }

    /// Records a dispatch of `groups` workgroups into a compute pass.
    ///
    /// # Panics
    /// If the pipeline was not compiled ([`Gpu::compile`]).
    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bind: &wgpu::BindGroup,
        groups: [u32; 3],
    ) {
        let pipeline = self
            .pipeline
            .get()
            .unwrap_or_else(|| panic!("kernel `{}` dispatched before Gpu::compile", self.src.name));
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
}
