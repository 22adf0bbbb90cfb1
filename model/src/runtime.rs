//! The DiT on the GPU. [`GpuModel`] holds the weights and the kernels it has needed so far
//! (a pipeline is compiled the first time a generator uses it, all of a generator's at once
//! and in parallel natively); [`Generator`] executes a [`Plan`] (the forward pass and the
//! sampling loop as data, [`crate::forward`]) for one batch size and one step plan: its
//! buffers, bind groups and dispatch list are created once and reused for every image. A
//! whole generation is recorded with no readback until the final image.
//!
//! Everything that depends only on the timestep (time MLP, all AdaLN modulations) is
//! computed for every step of the plan in one batch when the generator is created; each
//! AdaLN then reads its step's rows.

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::forward::{self, Heads, Op, Options, Phase, Plan, TensorKind};
use crate::gpu::{Compiled, Gpu, GpuError, Kernel};
use crate::kernels::{Binding, KernelSource, TILES};
use crate::sampler::Step;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use webdit_dsl::ir::Scalar;
use webdit_kernels::Tiles;

/// Storage precision of weights and activations in the main kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// f16 storage, f32 accumulation (needs `shader-f16`).
    F16,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("kernel variant `{0}` is not in this build")]
    NoVariant(String),
    #[error("batch {batch} needs a {need} MiB buffer ({what}) but the adapter allows {limit} MiB; use a smaller --batch")]
    TooLarge {
        batch: usize,
        what: String,
        need: u64,
        limit: u64,
    },
    #[error("batch must be at least 1")]
    NoBatch,
    #[error("the GPU kernels do not support this model: {0}; use --device cpu")]
    Unsupported(String),
    /// A plan that does not match its kernels (a bug in the plan, found when it is built).
    #[error("forward plan: {0}")]
    Contract(String),
}

/// The kernels a model has used so far, by variant name; each is compiled once, when the
/// first generator that needs it is built.
#[derive(Default)]
struct Pipelines {
    kernels: Mutex<HashMap<&'static str, Arc<Kernel>>>,
}

impl Pipelines {
    /// The kernel of `src` (its layout; the pipeline is compiled by [`Gpu::compile`]).
    fn get(&self, gpu: &Gpu, src: &'static KernelSource) -> Result<Arc<Kernel>, RuntimeError> {
        let mut map = self.kernels.lock().expect("no panics while held");
        if let Some(k) = map.get(src.name) {
            return Ok(k.clone());
        }
        let k = Arc::new(gpu.layout(src)?);
        map.insert(src.name, k.clone());
        Ok(k)
    }

    /// The variants used so far, by name.
    fn used(&self) -> Vec<&'static KernelSource> {
        let map = self.kernels.lock().expect("no panics while held");
        let mut v: Vec<_> = map.values().map(|k| k.src).collect();
        v.sort_by_key(|k| k.name);
        v
    }

    /// The kernels whose pipelines are still to be created.
    fn uncompiled(&self) -> Vec<Arc<Kernel>> {
        let map = self.kernels.lock().expect("no panics while held");
        map.values().filter(|k| !k.is_compiled()).cloned().collect()
    }

    /// How many pipelines exist.
    fn compiled(&self) -> usize {
        let map = self.kernels.lock().expect("no panics while held");
        map.values().filter(|k| k.is_compiled()).count()
    }
}

/// A model on the GPU: weights, and the pipelines generators have needed so far.
pub struct GpuModel {
    pub config: Config,
    pub precision: Precision,
    /// How plans are built for this model on this adapter.
    pub options: Options,
    k: Pipelines,
    /// The weights by the plan's names ([`forward::weights`]).
    weights: HashMap<String, wgpu::Buffer>,
    /// What a plan binds to a parameter the kernel does not read.
    dummy: wgpu::Buffer,
}

/// The weight `name` of [`forward::weights`], from the checkpoint's PyTorch tensors.
/// Borrowed where it is one checkpoint tensor as it is.
fn weight_data<'a>(c: &Config, ckpt: &'a Checkpoint, name: &str) -> Cow<'a, [f32]> {
    let get = |n: &str| Cow::Borrowed(ckpt.get(n));
    // Checkpoint tensors one after another (slice copies: an iterator chain of this many
    // values took tens of milliseconds).
    let concat = |names: Vec<String>| -> Cow<'a, [f32]> {
        let parts: Vec<&[f32]> = names.iter().map(|n| ckpt.get(n)).collect();
        Cow::Owned(parts.concat())
    };
    if let Some(rest) = name.strip_prefix("blocks.") {
        let (i, what) = rest.split_once('.').expect("blocks.<i>.<what>");
        let b = format!("blocks.{i}.");
        return match what {
            "qkv" => concat(
                ["to_q", "to_k", "to_v"]
                    .iter()
                    .map(|q| format!("{b}attn.{q}.weight"))
                    .collect(),
            ),
            "to_out" => get(&format!("{b}attn.to_out.weight")),
            "to_out_t" => {
                // `[dim, inner]` as `[inner, dim]`, for the fused attention's projection.
                let w = ckpt.get(&format!("{b}attn.to_out.weight"));
                let (d, inner) = (c.dim, c.inner());
                Cow::Owned((0..inner * d).map(|i| w[(i % d) * inner + i / d]).collect())
            }
            "mlp_in" => get(&format!("{b}ff.net.0.weight")),
            "mlp_out" => get(&format!("{b}ff.net.2.weight")),
            _ => unreachable!("forward::weights names no block weight `{what}`"),
        };
    }
    match name {
        "pos" => Cow::Owned(c.pos_embedding()),
        "proj_bias" => get("proj_fin.bias"),
        "time1" => get("time_mlp.1.weight"),
        "time3" => get("time_mlp.3.weight"),
        "mods" => concat(
            forward::norm_names(c)
                .iter()
                .flat_map(|n| ["scale", "shift"].map(|w| format!("{n}.{w}_proj.weight")))
                .collect(),
        ),
        other => get(&format!("{other}.weight")),
    }
}

/// A checkpoint's weights as the GPU stores them: by the plan's names
/// ([`forward::weights`]), each in its storage type at `precision` (as whole 4-byte words,
/// since buffer sizes are multiples of 4). Built on the
/// CPU, on one thread per weight natively; the CLI builds them while the adapter opens.
pub struct HostWeights {
    pub precision: Precision,
    tensors: Vec<(String, Vec<u32>)>,
}

impl HostWeights {
    pub fn new(ckpt: &Checkpoint, precision: Precision) -> HostWeights {
        let c = &ckpt.config;
        let convert = |(name, len): (String, usize)| {
            let data = weight_data(c, ckpt, &name);
            assert_eq!(data.len(), len, "weight `{name}` (checkpoint validated)");
            let words = match forward::weight_scalar(&name, precision) {
                Scalar::F16 => {
                    // The slice conversion uses the CPU's f16 instructions where it has them.
                    use half::slice::HalfFloatSliceExt;
                    let mut w = vec![0u32; len.div_ceil(2)];
                    let h: &mut [half::f16] = bytemuck::cast_slice_mut(&mut w);
                    h[..len].convert_from_f32_slice(&data);
                    w
                }
                _ => bytemuck::cast_slice(&data).to_vec(),
            };
            (name, words)
        };
        let names = forward::weights(c);
        #[cfg(not(target_arch = "wasm32"))]
        let tensors = std::thread::scope(|s| {
            let threads: Vec<_> = names
                .into_iter()
                .map(|w| s.spawn(move || convert(w)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("converting a weight does not panic"))
                .collect()
        });
        #[cfg(target_arch = "wasm32")]
        let tensors = names.into_iter().map(convert).collect();
        HostWeights { precision, tensors }
    }
}

impl GpuModel {
    /// Uploads a checkpoint. `precision: None` picks f16 where the adapter has it. A software
    /// adapter gets the software plan in the browser, and natively with
    /// `WEBDIT_SOFTWARE_PLAN` set (so the tests on lavapipe keep running the GPU plan).
    pub fn new(
        gpu: &Gpu,
        ckpt: &Checkpoint,
        precision: Option<Precision>,
    ) -> Result<GpuModel, RuntimeError> {
        Self::with_weights(gpu, ckpt, precision, None)
    }

    /// [`GpuModel::new`] from weights already converted for the GPU (e.g. while the adapter
    /// opened); used where their precision is the one chosen, else converted again.
    pub fn with_weights(
        gpu: &Gpu,
        ckpt: &Checkpoint,
        precision: Option<Precision>,
        prepared: Option<HostWeights>,
    ) -> Result<GpuModel, RuntimeError> {
        let software = gpu.adapter.device_type == wgpu::DeviceType::Cpu
            && (cfg!(target_arch = "wasm32") || std::env::var_os("WEBDIT_SOFTWARE_PLAN").is_some());
        Self::build(gpu, ckpt, precision, software, prepared)
    }

    /// [`GpuModel::new`] with the software adapters' plan ([`Options::software`]) chosen
    /// explicitly.
    pub fn with_plan(
        gpu: &Gpu,
        ckpt: &Checkpoint,
        precision: Option<Precision>,
        software: bool,
    ) -> Result<GpuModel, RuntimeError> {
        Self::build(gpu, ckpt, precision, software, None)
    }

    fn build(
        gpu: &Gpu,
        ckpt: &Checkpoint,
        precision: Option<Precision>,
        software: bool,
        prepared: Option<HostWeights>,
    ) -> Result<GpuModel, RuntimeError> {
        let c = ckpt.config.clone();
        let precision = precision.unwrap_or(if gpu.f16 {
            Precision::F16
        } else {
            Precision::F32
        });
        let lanes = webdit_kernels::matmul_coop::LANES;
        let limits = gpu.device.limits();
        let coop = precision == Precision::F16
            && gpu.coop
            && gpu.subgroups
            && (gpu.adapter.subgroup_min_size, gpu.adapter.subgroup_max_size) == (lanes, lanes)
            && crate::kernels::tensor_cores_fit(&limits)
            && std::env::var_os("WEBDIT_NO_TENSOR_CORES").is_none();
        #[cfg(not(target_arch = "wasm32"))]
        let subgroups = gpu.subgroups && std::env::var_os("WEBDIT_NO_SUBGROUPS").is_none();
        #[cfg(target_arch = "wasm32")]
        let subgroups = false;
        let options = Options {
            precision,
            tiles: Tiles::named(TILES).expect("the build's tiles are registered"),
            subgroups,
            coop,
            coop_split: std::env::var_os("WEBDIT_NO_COOP_SPLIT").is_none(),
            mlp_fused: std::env::var_os("WEBDIT_NO_MLP_FUSION").is_none(),
            eps_fused: std::env::var_os("WEBDIT_NO_EPS_FUSION").is_none(),
            coop_min_groups: std::env::var("WEBDIT_COOP_MIN_GROUPS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(crate::tiers::COOP_MIN_GROUPS),
            software,
            attention_rows: std::env::var_os("WEBDIT_NO_ATTENTION_ROWS").is_none(),
            attention_coop: std::env::var_os("WEBDIT_NO_ATTENTION_COOP").is_none(),
            // Not in a browser: its compile (0.37 s against 0.13 s on an H200 without the
            // driver's cache) would delay a page's first icon for ~0.1 ms a generation.
            attention_out_fused: !cfg!(target_arch = "wasm32")
                && std::env::var_os("WEBDIT_NO_ATTENTION_OUT_FUSION").is_none(),
            norm_linear_fused: std::env::var_os("WEBDIT_NO_QKV_FUSION").is_none(),
        };
        // A plan fails here, before anything is uploaded, for a model the kernels cannot run.
        Plan::build(&c, &options, 1, &[], Heads::Both, Some(&[0.0]))?;
        let host = prepared
            .filter(|h| h.precision == precision)
            .unwrap_or_else(|| HostWeights::new(ckpt, precision));
        let weights = host
            .tensors
            .iter()
            .map(|(name, words)| {
                let buffer = gpu.storage_init(name, bytemuck::cast_slice(words));
                (name.clone(), buffer)
            })
            .collect();
        Ok(GpuModel {
            options,
            k: Pipelines::default(),
            weights,
            dummy: gpu.storage_init("unused", &[0u8; 16]),
            config: c,
            precision,
        })
    }

    /// Whether products run on tensor cores (cooperative matrices) where they pay.
    pub fn tensor_cores(&self) -> bool {
        self.options.coop
    }

    /// Runs the generators built from now on without tensor cores (the f16 kernels on the
    /// shader cores instead).
    pub fn disable_tensor_cores(&mut self) {
        self.options.coop = false;
    }

    /// Runs the generators built from now on with MLP in's reduction as its own dispatch
    /// (its split unchanged, so the results are the same bits; comparisons,
    /// `WEBDIT_NO_MLP_FUSION`).
    pub fn disable_mlp_fusion(&mut self) {
        self.options.mlp_fused = false;
    }

    /// Runs the generators built from now on with attention, its output projection and the
    /// AdaLN after it as three dispatches (`WEBDIT_NO_ATTENTION_OUT_FUSION`).
    pub fn disable_attention_out_fusion(&mut self) {
        self.options.attention_out_fused = false;
    }

    /// Runs the generators built from now on with qkv as its own product after the AdaLN
    /// before it (comparisons, `WEBDIT_NO_QKV_FUSION`).
    pub fn disable_qkv_fusion(&mut self) {
        self.options.norm_linear_fused = false;
    }

    /// Runs the generators built from now on with the to-pixels product's reduction as its
    /// own dispatch (comparisons, `WEBDIT_NO_EPS_FUSION`).
    pub fn disable_eps_fusion(&mut self) {
        self.options.eps_fused = false;
    }

    /// The tensor-core variants a generator for `batch` images would use that `gpu`'s
    /// pipeline cache does not hold yet: each is a compile of up to half a second on a cold
    /// driver, against a fraction of a millisecond gained per generation at small batches.
    pub fn uncached_tensor_core_variants(
        &self,
        gpu: &Gpu,
        batch: usize,
        steps: &[Step],
    ) -> Result<Vec<&'static str>, RuntimeError> {
        self.uncached_variants(gpu, batch, steps, |op| op.kernel.coop)
    }

    /// The fused attention variant ([`webdit_kernels::Key::AttentionRowsOut`]) a generator
    /// for `batch` images would use that `gpu`'s pipeline cache does not hold yet: it
    /// compiles in ~0.37 s on an H200 without the driver's cache, against ~0.13 s for the
    /// row kernel it replaces, and gains about 1 ms of recording per generation.
    pub fn uncached_fused_attention_variants(
        &self,
        gpu: &Gpu,
        batch: usize,
        steps: &[Step],
    ) -> Result<Vec<&'static str>, RuntimeError> {
        self.uncached_variants(gpu, batch, steps, |op| {
            matches!(op.key, webdit_kernels::Key::AttentionRowsOut { .. })
        })
    }

    /// The variants of the plan's ops that `which` picks and `gpu`'s pipeline cache lacks.
    fn uncached_variants(
        &self,
        gpu: &Gpu,
        batch: usize,
        steps: &[Step],
        which: impl Fn(&Op) -> bool,
    ) -> Result<Vec<&'static str>, RuntimeError> {
        let plan = self.plan(batch, steps)?;
        let mut names: Vec<_> = plan
            .ops
            .iter()
            .filter(|op| which(op) && !gpu.cached(op.kernel.name))
            .map(|op| op.kernel.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Pipelines compiled so far.
    pub fn pipelines(&self) -> usize {
        self.k.compiled()
    }

    /// The kernel variants the generators built so far use, by name.
    pub fn variants(&self) -> Vec<&'static KernelSource> {
        self.k.used()
    }

    /// The plan a [`GpuModel::generator`] for `batch` images following `steps` runs.
    pub fn plan(&self, batch: usize, steps: &[Step]) -> Result<Plan, RuntimeError> {
        Plan::build(&self.config, &self.options, batch, steps, Heads::Eps, None)
    }
}

/// One dispatch of a plan, ready to record: one bind group, or one per timestep slot.
struct Dispatch {
    label: String,
    kernel: Arc<Kernel>,
    binds: Vec<wgpu::BindGroup>,
    groups: [u32; 3],
}

impl Dispatch {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, slot: usize, labels: bool) {
        let bind = &self.binds[slot.min(self.binds.len() - 1)];
        if labels {
            pass.push_debug_group(&self.label);
        }
        self.kernel.dispatch(pass, bind, self.groups);
        if labels {
            pass.pop_debug_group();
        }
    }
}

/// A [`Plan`] on the GPU for one batch size and one list of timesteps: its buffers, bind
/// groups and dispatches. Reusable: every [`Generator::generate`] starts from its seed, so
/// the same seed gives the same bits however often a generator has run.
pub struct Generator {
    pub batch: usize,
    steps: usize,
    plan: Plan,
    /// The image being denoised, `[batch, c, s, s]` f32.
    pub x: wgpu::Buffer,
    /// Where [`Generator::submit`]'s last command buffer copies the image, for
    /// [`Generator::read_submitted`] to map: no submission of its own after the steps.
    readback: wgpu::Buffer,
    /// The next [`Generator::generate`]'s command buffers ([`Generator::chunks`]), recorded
    /// while the GPU ran the one before (a seed is written separately, so they can be
    /// recorded ahead).
    prepared: std::sync::Mutex<Vec<wgpu::CommandBuffer>>,
    eps: Option<wgpu::Buffer>,
    x0: Option<wgpu::Buffer>,
    seed: wgpu::Buffer,
    init: Vec<Dispatch>,
    model: Vec<Dispatch>,
    update: Vec<Dispatch>,
    /// Debug groups around every dispatch, named after its op (natively: GPU profilers show
    /// `block3.mlp_in`; in a browser every marker is a call into JavaScript).
    labels: bool,
    /// The pipelines this generator compiled (the rest were the model's already).
    pub compiled: Compiled,
}

impl GpuModel {
    /// A generator for `batch` images following `plan` (all images share each step's t).
    pub fn generator(
        &self,
        gpu: &Gpu,
        batch: usize,
        plan: &[Step],
    ) -> Result<Generator, RuntimeError> {
        self.instantiate(gpu, self.plan(batch, plan)?)
    }

    /// One forward pass: `(eps, x0)` for images `x` at timesteps `t` (one per image).
    pub async fn forward(
        &self,
        gpu: &Gpu,
        x: &[f32],
        t: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>), RuntimeError> {
        let plan = Plan::build(
            &self.config,
            &self.options,
            t.len(),
            &[],
            Heads::Both,
            Some(t),
        )?;
        let g = self.instantiate(gpu, plan)?;
        gpu.queue.write_buffer(&g.x, 0, bytemuck::cast_slice(x));
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        g.record_model(&mut enc.begin_compute_pass(&Default::default()), 0);
        gpu.queue.submit([enc.finish()]);
        let eps = g.eps.as_ref().expect("a plan with both heads");
        let eps = bytemuck::pod_collect_to_vec(&gpu.read(eps).await?);
        let x0 = g.x0.as_ref().expect("a plan with both heads");
        let x0 = bytemuck::pod_collect_to_vec(&gpu.read(x0).await?);
        Ok((eps, x0))
    }

    /// Buffers, bind groups and pipelines for `plan`; runs its precomputation.
    pub fn instantiate(&self, gpu: &Gpu, plan: Plan) -> Result<Generator, RuntimeError> {
        let limits = gpu.device.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let batch = plan.batch;
        let buf = |what: &str, bytes: u64| -> Result<wgpu::Buffer, RuntimeError> {
            if bytes > limit {
                return Err(RuntimeError::TooLarge {
                    batch,
                    what: what.to_string(),
                    need: bytes >> 20,
                    limit: limit >> 20,
                });
            }
            Ok(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        };
        // Transient tensors share buffers by lifetime; the rest have their own.
        let (slot_of, slot_bytes) = plan.allocate();
        let slots = slot_bytes
            .iter()
            .enumerate()
            .map(|(i, b)| buf(&format!("activations {i}"), *b))
            .collect::<Result<Vec<_>, _>>()?;
        let mut own: HashMap<usize, wgpu::Buffer> = HashMap::new();
        for (i, t) in plan.tensors.iter().enumerate() {
            match &t.kind {
                TensorKind::State => {
                    own.insert(i, buf(&t.name, t.bytes())?);
                }
                TensorKind::Constant(bytes) => {
                    own.insert(i, gpu.storage_init(&t.name, bytes));
                }
                TensorKind::Weight => {
                    let w = self.weights.get(&t.name).ok_or_else(|| {
                        RuntimeError::Contract(format!("the model has no weight `{}`", t.name))
                    })?;
                    if w.size() < t.bytes() {
                        return Err(RuntimeError::Contract(format!(
                            "weight `{}` has {} bytes, the plan reads {}",
                            t.name,
                            w.size(),
                            t.bytes()
                        )));
                    }
                }
                TensorKind::Transient | TensorKind::Unused => {}
            }
        }
        let buffer = |i: usize| -> &wgpu::Buffer {
            let t = &plan.tensors[i];
            match t.kind {
                TensorKind::Weight => &self.weights[&t.name],
                TensorKind::Unused => &self.dummy,
                TensorKind::Transient => &slots[slot_of[i].expect("allocated")],
                _ => &own[&i],
            }
        };
        let dispatch = |op: &Op| -> Result<Dispatch, RuntimeError> {
            let kernel = self.k.get(gpu, op.kernel)?;
            let binds = op
                .params
                .iter()
                .map(|bytes| {
                    let uniform = gpu.uniform(&op.name, bytes);
                    let bufs: Vec<&wgpu::Buffer> = op
                        .kernel
                        .bindings
                        .iter()
                        .map(|p| match p.kind {
                            Binding::Uniform => &uniform,
                            _ => {
                                let (_, t) = op
                                    .args
                                    .iter()
                                    .find(|(a, _)| *a == p.name)
                                    .expect("checked when the plan was built");
                                buffer(t.0)
                            }
                        })
                        .collect();
                    kernel.bind(gpu, &bufs)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Dispatch {
                label: op.name.clone(),
                kernel,
                binds,
                groups: op.groups,
            })
        };
        let phase = |p: Phase| -> Result<Vec<Dispatch>, RuntimeError> {
            plan.phase(p).map(dispatch).collect()
        };
        let (precompute, init) = (phase(Phase::Precompute)?, phase(Phase::Init)?);
        let (model, update) = (phase(Phase::Model)?, phase(Phase::Update)?);

        // The pipelines of the kernels this generator brought into the model, at once.
        let pending = self.k.uncompiled();
        let compiled = gpu.compile(&pending.iter().map(|k| &**k).collect::<Vec<_>>());
        if !compiled.times.is_empty() {
            gpu.save_cache();
        }

        // Modulations for every step, once.
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("precompute"),
                timestamp_writes: None,
            });
            for d in &precompute {
                d.record(&mut pass, 0, false);
            }
        }
        gpu.queue.submit([enc.finish()]);
        let take = |i: usize| own.get(&i).cloned();
        let steps = plan
            .phase(Phase::Update)
            .next()
            .map_or(0, |o| o.params.len());
        let x = take(plan.image.0).expect("state");
        Ok(Generator {
            compiled,
            batch,
            steps,
            readback: gpu.staging("image readback", x.size()),
            prepared: Default::default(),
            x,
            eps: plan.eps.and_then(|t| take(t.0)),
            x0: plan.x0.and_then(|t| take(t.0)),
            seed: take(plan.seed.0).expect("state"),
            init,
            model,
            update,
            labels: cfg!(not(target_arch = "wasm32")),
            plan,
        })
    }
}

/// Steps per command buffer at most where a generation is submitted as it is recorded
/// ([`Generator::submit`]): none, as command buffers double in size (on an H200, favicon-s
/// batch 1 f16 took 7.30 ms with at most 4 steps per command buffer, 7.31 with 8 and 7.09
/// with no cap: each command buffer costs the GPU ~17 µs of waiting).
pub const SUBMIT_STEPS: usize = usize::MAX;

/// The command buffers of a generation, as ranges over its dispatches in order (`init` of
/// the initial noise, then `per_step` for each of `steps` steps): the first holds the
/// initial noise and a quarter of the first step, each next one twice the one before, up to
/// `per_submit` steps. So the GPU starts once a quarter of a step is recorded (recording
/// costs 2–3 µs a dispatch natively: on an H200 a whole step of favicon-b batch 1 took
/// ~0.3 ms to record) and the CPU records each command buffer while the GPU runs the one
/// before, which takes it at least twice as long per dispatch. No steps: one command buffer
/// of the initial noise.
pub fn submit_chunks(
    init: usize,
    per_step: usize,
    steps: usize,
    per_submit: usize,
) -> Vec<std::ops::Range<usize>> {
    let total = init + per_step * steps;
    let most = per_step.saturating_mul(per_submit.max(1)).max(1);
    let mut chunks = vec![];
    let (mut start, mut size) = (0, per_step.div_ceil(4).clamp(1, most));
    loop {
        let end = (start + size + if start == 0 { init } else { 0 }).min(total);
        chunks.push(start..end);
        if end >= total {
            return chunks;
        }
        (start, size) = (end, (size * 2).min(most));
    }
}

impl Generator {
    /// Records one model evaluation at timestep slot `slot`.
    fn record_model(&self, pass: &mut wgpu::ComputePass<'_>, slot: usize) {
        for d in &self.model {
            d.record(pass, slot, self.labels);
        }
    }

    /// Dispatches of one step: the model's, then the update's.
    fn per_step(&self) -> usize {
        self.model.len() + self.update.len()
    }

    /// The command buffers [`Generator::submit`] sends, as ranges of dispatches
    /// ([`submit_chunks`]).
    pub fn chunks(&self, per_submit: usize) -> Vec<std::ops::Range<usize>> {
        submit_chunks(self.init.len(), self.per_step(), self.steps, per_submit)
    }

    /// Steps of the plan.
    pub fn len(&self) -> usize {
        self.steps
    }

    pub fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// The plan this generator runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The dispatches of one step at its first timestep (the model, then the update), each
    /// with its op, for timing them one by one.
    pub fn step_dispatches(&self) -> Vec<(&Op, &Kernel, &wgpu::BindGroup, [u32; 3])> {
        let ops = self
            .plan
            .phase(Phase::Model)
            .chain(self.plan.phase(Phase::Update));
        ops.zip(self.model.iter().chain(&self.update))
            .map(|(op, d)| (op, &*d.kernel, &d.binds[0], d.groups))
            .collect()
    }

    /// Sets the seed for the next run (one 8-byte write every step's sampler reads).
    pub fn set_seed(&self, gpu: &Gpu, seed: u64) {
        let words = [seed as u32, (seed >> 32) as u32];
        gpu.queue
            .write_buffer(&self.seed, 0, bytemuck::cast_slice(&words));
    }

    /// Records steps `range` of the plan (step 0 also draws the initial noise).
    pub fn encode(&self, enc: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>) {
        let (init, per) = (self.init.len(), self.per_step());
        let first = if range.start == 0 {
            0
        } else {
            init + range.start * per
        };
        self.encode_dispatches(enc, first..init + range.end * per, None);
    }

    /// Records dispatches `range` of a generation (the initial noise, then each step's; as
    /// [`submit_chunks`] counts them), with GPU timestamps at the start and end of the pass
    /// if asked.
    fn encode_dispatches(
        &self,
        enc: &mut wgpu::CommandEncoder,
        range: std::ops::Range<usize>,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let label = format!("dispatches {}..{}", range.start, range.end);
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&label),
            timestamp_writes,
        });
        let (init, per) = (self.init.len(), self.per_step());
        for i in range {
            if i < init {
                self.init[i].record(&mut pass, 0, self.labels);
                continue;
            }
            let (step, j) = ((i - init) / per, (i - init) % per);
            let d = self
                .model
                .get(j)
                .unwrap_or_else(|| &self.update[j - self.model.len()]);
            d.record(&mut pass, step, self.labels);
        }
    }

    /// Records the copy of the image for [`Generator::read_submitted`].
    pub fn copy_out(&self, enc: &mut wgpu::CommandEncoder) {
        enc.copy_buffer_to_buffer(&self.x, 0, &self.readback, 0, self.x.size());
    }

    /// A whole generation, then the images (`[batch, c, s, s]` in [-1, 1], unclamped).
    /// The first one from a generator is submitted as it is recorded ([`Generator::submit`]:
    /// the GPU starts on the first quarter step while the CPU records the rest); natively,
    /// while the GPU runs it, the next generation's command buffers are recorded, which the
    /// next call submits at once after writing its seed (one small command buffer first, so
    /// that the GPU starts while the others are submitted; with the polled readback,
    /// favicon-s batch 1 f16 took 6.8–6.9 ms a generation on an H200, 7.3–7.4 before
    /// both). Nothing is read back in between.
    pub async fn generate(&self, gpu: &Gpu, seed: u64) -> Result<Vec<f32>, RuntimeError> {
        let prepared = std::mem::take(&mut *self.lock_prepared());
        if prepared.is_empty() {
            self.submit(gpu, seed, SUBMIT_STEPS, |_, _| {});
        } else {
            self.set_seed(gpu, seed);
            for commands in prepared {
                gpu.queue.submit([commands]);
            }
        }
        // In a browser, recording costs more than the GPU's time and would delay the image.
        if cfg!(not(target_arch = "wasm32")) {
            let chunks = self.chunks(SUBMIT_STEPS).into_iter().enumerate();
            let next = chunks
                .map(|(i, range)| self.record_chunk(gpu, i, range, None))
                .collect();
            *self.lock_prepared() = next;
        }
        self.read_submitted(gpu).await
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, Vec<wgpu::CommandBuffer>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A whole generation as the first one from a generator runs ([`Generator::submit`],
    /// `per_submit` steps per command buffer at most), nothing recorded ahead.
    pub async fn generate_in(
        &self,
        gpu: &Gpu,
        seed: u64,
        per_submit: usize,
    ) -> Result<Vec<f32>, RuntimeError> {
        self.submit(gpu, seed, per_submit, |_, _| {});
        self.read_submitted(gpu).await
    }

    /// Records and submits a whole generation from `seed` in command buffers of at most
    /// `per_submit` steps ([`submit_chunks`]), each submitted as soon as it is recorded, the
    /// last one with the copy [`Generator::read_submitted`] reads; calls
    /// `submitted(steps, index)` after each submission with the steps it completes.
    /// Waits for nothing: wait on the indices (natively, `device.poll`) to follow progress
    /// without stalling the GPU.
    pub fn submit(
        &self,
        gpu: &Gpu,
        seed: u64,
        per_submit: usize,
        submitted: impl FnMut(usize, wgpu::SubmissionIndex),
    ) {
        self.submit_timed(gpu, seed, per_submit, None, submitted)
    }

    /// [`Generator::submit`] with GPU timestamps at the start and end of command buffer
    /// `i`'s pass in `queries[2i]` and `queries[2i + 1]` (`2 ×`
    /// [`Generator::chunks`]`.len()` timestamp queries).
    pub fn submit_timed(
        &self,
        gpu: &Gpu,
        seed: u64,
        per_submit: usize,
        queries: Option<&wgpu::QuerySet>,
        mut submitted: impl FnMut(usize, wgpu::SubmissionIndex),
    ) {
        self.set_seed(gpu, seed);
        for (i, range) in self.chunks(per_submit).into_iter().enumerate() {
            let steps = (range.end - self.init.len()) / self.per_step().max(1);
            let commands = self.record_chunk(gpu, i, range, queries);
            submitted(steps, gpu.queue.submit([commands]));
        }
    }

    /// Command buffer `i` of a generation: dispatches `range` ([`Generator::chunks`]), then
    /// the image's copy if they end the generation; timestamps in `queries` as
    /// [`Generator::submit_timed`] says.
    fn record_chunk(
        &self,
        gpu: &Gpu,
        i: usize,
        range: std::ops::Range<usize>,
        queries: Option<&wgpu::QuerySet>,
    ) -> wgpu::CommandBuffer {
        let last = range.end == self.init.len() + self.steps * self.per_step();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let writes = queries.map(|q| wgpu::ComputePassTimestampWrites {
            query_set: q,
            beginning_of_pass_write_index: Some(2 * i as u32),
            end_of_pass_write_index: Some(2 * i as u32 + 1),
        });
        self.encode_dispatches(&mut enc, range, writes);
        if last {
            self.copy_out(&mut enc);
        }
        enc.finish()
    }

    /// The images [`Generator::submit`] (or a command buffer with [`Generator::copy_out`])
    /// copied out, once the GPU has done them.
    pub async fn read_submitted(&self, gpu: &Gpu) -> Result<Vec<f32>, RuntimeError> {
        Ok(bytemuck::pod_collect_to_vec(
            &gpu.read_staged(&self.readback).await?,
        ))
    }

    /// The current image (after whatever was submitted), through a copy of its own.
    pub async fn read_image(&self, gpu: &Gpu) -> Result<Vec<f32>, RuntimeError> {
        Ok(bytemuck::pod_collect_to_vec(&gpu.read(&self.x).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::submit_chunks;

    #[test]
    fn chunks_start_small_and_cover_every_dispatch_once() {
        let sizes = |init, per, steps, most| -> Vec<usize> {
            submit_chunks(init, per, steps, most)
                .iter()
                .map(|r| r.len())
                .collect()
        };
        // A quarter step with the initial noise, then doubling up to 4 steps of 36.
        assert_eq!(
            sizes(1, 36, 32, 4),
            [10, 18, 36, 72, 144, 144, 144, 144, 144, 144, 144, 9]
        );
        assert_eq!(sizes(1, 8, 3, 1), [3, 4, 8, 8, 2]);
        // No steps: one command buffer of the initial noise.
        assert_eq!(sizes(1, 36, 0, 4), [1]);
        for (init, per, steps, most) in [(1, 36, 32, 4), (2, 7, 5, 2), (1, 1, 1, 8), (1, 3, 100, 0)]
        {
            let chunks = submit_chunks(init, per, steps, most);
            assert_eq!(chunks[0].start, 0);
            assert!(
                chunks[0].len() > init,
                "the first holds some of the first step"
            );
            assert_eq!(chunks.last().unwrap().end, init + per * steps);
            assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
            assert!(chunks[1..].iter().all(|r| r.len() <= per * most.max(1)));
        }
    }
}
