//! The wgpu side: device setup, pipelines for the build-time-compiled kernels, buffers and
//! readback. One code path serves native and the web (readback waits on the `map_async`
//! callback through a channel; natively `poll` drives it).

use crate::kernels::{Binding, KernelSource};
use wgpu::util::DeviceExt;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found ({0}); natively, install a Vulkan driver (e.g. mesa-vulkan-drivers for a software one); in a browser, enable WebGPU")]
    NoAdapter(String),
    #[error("the GPU adapter refused a device: {0}")]
    Device(String),
    #[error("kernel `{kernel}` needs the `{feature}` feature, which this adapter ({adapter}) lacks; use the f32 variant")]
    MissingFeature {
        kernel: &'static str,
        feature: &'static str,
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
    /// Timestamp queries are available (and enabled).
    pub timestamps: bool,
}

impl Gpu {
    /// Opens the highest-performance adapter with `shader-f16` and timestamp queries enabled
    /// where the adapter has them.
    pub async fn new() -> Result<Gpu, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY;
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("webdit"),
                required_features: features,
                required_limits: adapter.limits(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(Gpu {
            device,
            queue,
            adapter: adapter.get_info(),
            f16: features.contains(wgpu::Features::SHADER_F16),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        })
    }

    /// [`Gpu::new`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Gpu, GpuError> {
        pollster::block_on(Gpu::new())
    }

    /// A one-line description of the adapter.
    pub fn describe(&self) -> String {
        let a = &self.adapter;
        format!(
            "{} ({:?}, {:?}{})",
            a.name,
            a.backend,
            a.device_type,
            if self.f16 { ", shader-f16" } else { "" }
        )
    }

    /// Creates the pipeline of a build-time-compiled kernel.
    pub fn kernel(&self, src: &'static KernelSource) -> Result<Kernel, GpuError> {
        if src.f16 && !self.f16 {
            return Err(GpuError::MissingFeature {
                kernel: src.name,
                feature: "shader-f16",
                adapter: self.adapter.name.clone(),
            });
        }
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
        let entries: Vec<wgpu::BindGroupLayoutEntry> = src
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b {
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
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(src.name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(src.name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(src.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        Ok(Kernel {
            src,
            layout,
            pipeline,
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
        let size = buffer.size();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
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

    /// [`Gpu::read`] as f32s, blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32_blocking(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
        let bytes = pollster::block_on(self.read(buffer))?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

/// A compute pipeline with its bind-group layout.
pub struct Kernel {
    pub src: &'static KernelSource,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl Kernel {
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
    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bind: &wgpu::BindGroup,
        groups: [u32; 3],
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
}
