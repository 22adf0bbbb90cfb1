//! The DiT on the GPU. [`GpuModel`] holds the weights and the kernels it has needed so far
//! (a pipeline is compiled the first time a generator uses it, all of a generator's at once
//! and in parallel natively); [`Generator`] holds the buffers, bind groups and recorded
//! dispatch list for one batch size and one step plan (created once, reused for every
//! image). A whole generation is recorded with no readback until the final image.
//!
//! Everything that depends only on the timestep (time MLP, all AdaLN modulations) is
//! computed for every step of the plan in one batch when the generator is created; each step
//! then copies its slice into the buffer the AdaLNs read.

use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::gpu::{Gpu, GpuError, Kernel};
use crate::kernels::{by_name, KernelSource, TILES};
use crate::sampler::Step;
use crate::tiers::{attention_chunks, plan_coop, plan_matmul, MAX_SPLITS, SCRATCH_FLOATS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use web_time::Instant;
use webdit_dsl::UniformStruct;
use webdit_kernels::attention::{AttentionParams, BQ};
use webdit_kernels::layout::{PatchParams, SinusParams};
use webdit_kernels::matmul::MatmulParams;
use webdit_kernels::matvec::{MatvecParams, OUTPUTS};
use webdit_kernels::norm::AdaLnParams;
use webdit_kernels::sampler::StepParams;
use webdit_kernels::{Tiles, ATTENTION_WIDTHS};

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
        what: &'static str,
        need: u64,
        limit: u64,
    },
    #[error("batch must be at least 1")]
    NoBatch,
    #[error("the GPU kernels do not support this model: {0}; use --device cpu")]
    Unsupported(String),
}

fn variant(name: &str) -> Result<&'static KernelSource, RuntimeError> {
    by_name(name).ok_or_else(|| RuntimeError::NoVariant(name.into()))
}

struct Block {
    qkv: wgpu::Buffer,
    out: wgpu::Buffer,
    ff0: wgpu::Buffer,
    ff2: wgpu::Buffer,
}

/// The kernels a model has used so far, by variant name; each is compiled once, when the
/// first generator that needs it is built.
#[derive(Default)]
struct Pipelines {
    kernels: Mutex<HashMap<&'static str, Arc<Kernel>>>,
}

impl Pipelines {
    /// The kernel `name` (its layout; the pipeline is compiled by [`Gpu::compile`]).
    fn get(&self, gpu: &Gpu, name: &str) -> Result<Arc<Kernel>, RuntimeError> {
        let src = variant(name)?;
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
    tiles: Tiles,
    /// Suffix of the main kernels' variants (`""` or `"_f16"`).
    sfx: &'static str,
    /// AdaLN sums with subgroup operations (native adapters with subgroups;
    /// `WEBDIT_NO_SUBGROUPS=1` turns them off), else through workgroup memory.
    subgroups: bool,
    /// Products run on tensor cores (f16 storage on an adapter with cooperative matrices
    /// and 32-lane subgroups; `WEBDIT_NO_TENSOR_CORES=1` turns them off).
    coop: bool,
    /// Head width of the attention variants in use (`attention_d{w}`, `attention_split_d{w}`).
    attention_width: u32,
    k: Pipelines,
    patch_embed: wgpu::Buffer,
    pos: wgpu::Buffer,
    blocks: Vec<Block>,
    to_pixels: wgpu::Buffer,
    proj_fin: wgpu::Buffer,
    proj_bias: wgpu::Buffer,
    time1: wgpu::Buffer,
    time3: wgpu::Buffer,
    /// Every AdaLN's scale and shift projection, stacked: `[(2·depth + 1)·2·dim, temb]`.
    mods: wgpu::Buffer,
    dummy: wgpu::Buffer,
}

impl GpuModel {
    /// Uploads a checkpoint. `precision: None` picks f16 where the adapter has it.
    pub fn new(
        gpu: &Gpu,
        ckpt: &Checkpoint,
        precision: Option<Precision>,
    ) -> Result<GpuModel, RuntimeError> {
        let c = ckpt.config.clone();
        let precision = precision.unwrap_or(if gpu.f16 {
            Precision::F16
        } else {
            Precision::F32
        });
        let sfx = if precision == Precision::F16 {
            "_f16"
        } else {
            ""
        };
        if !c.dim_head.is_multiple_of(4) {
            return Err(RuntimeError::Unsupported(format!(
                "dim_head {} is not a multiple of 4 (attention reads vec4s)",
                c.dim_head
            )));
        }
        let width = ATTENTION_WIDTHS
            .iter()
            .find(|w| **w as usize >= c.dim_head)
            .expect("config validated");

        let main = |data: &[f32]| -> Vec<u8> {
            match precision {
                Precision::F32 => bytemuck::cast_slice(data).to_vec(),
                Precision::F16 => {
                    let mut h: Vec<half::f16> =
                        data.iter().map(|v| half::f16::from_f32(*v)).collect();
                    if h.len() % 2 == 1 {
                        h.push(half::f16::ZERO);
                    }
                    bytemuck::cast_slice(&h).to_vec()
                }
            }
        };
        let up = |label: &str, bytes: &[u8]| gpu.storage_init(label, bytes);
        let w = |name: &str| main(ckpt.get(name));
        let blocks = (0..c.depth)
            .map(|i| {
                let b = format!("blocks.{i}.attn.");
                let qkv: Vec<f32> = ["to_q", "to_k", "to_v"]
                    .iter()
                    .flat_map(|q| ckpt.get(&format!("{b}{q}.weight")).iter().copied())
                    .collect();
                Block {
                    qkv: up("qkv", &main(&qkv)),
                    out: up("to_out", &w(&format!("{b}to_out.weight"))),
                    ff0: up("ff0", &w(&format!("blocks.{i}.ff.net.0.weight"))),
                    ff2: up("ff2", &w(&format!("blocks.{i}.ff.net.2.weight"))),
                }
            })
            .collect();
        let mut mods = vec![];
        for n in norm_names(&c) {
            mods.extend_from_slice(ckpt.get(&format!("{n}.scale_proj.weight")));
            mods.extend_from_slice(ckpt.get(&format!("{n}.shift_proj.weight")));
        }
        let f32b = |name: &str| bytemuck::cast_slice::<f32, u8>(ckpt.get(name)).to_vec();
        let lanes = webdit_kernels::matmul_coop::LANES;
        let coop = precision == Precision::F16
            && gpu.coop
            && gpu.subgroups
            && (gpu.adapter.subgroup_min_size, gpu.adapter.subgroup_max_size) == (lanes, lanes)
            && std::env::var_os("WEBDIT_NO_TENSOR_CORES").is_none();
        #[cfg(not(target_arch = "wasm32"))]
        let subgroups = gpu.subgroups && std::env::var_os("WEBDIT_NO_SUBGROUPS").is_none();
        #[cfg(target_arch = "wasm32")]
        let subgroups = false;
        Ok(GpuModel {
            tiles: Tiles::named(TILES).expect("the build's tiles are registered"),
            sfx,
            subgroups,
            coop,
            attention_width: *width,
            k: Pipelines::default(),
            patch_embed: up("patch_embed", &w("patch_embed.weight")),
            pos: up("pos", &main(&c.pos_embedding())),
            blocks,
            to_pixels: up("to_pixels", &w("to_pixels.weight")),
            proj_fin: up("proj_fin", &w("proj_fin.weight")),
            proj_bias: up("proj_bias", &w("proj_fin.bias")),
            time1: up("time1", &f32b("time_mlp.1.weight")),
            time3: up("time3", &f32b("time_mlp.3.weight")),
            mods: up("mods", bytemuck::cast_slice(&mods)),
            dummy: up("dummy", &[0u8; 16]),
            config: c,
            precision,
        })
    }

    /// Pipelines compiled so far.
    pub fn pipelines(&self) -> usize {
        self.k.compiled()
    }

    /// The kernel variants the generators built so far use, by name.
    pub fn variants(&self) -> Vec<&'static KernelSource> {
        self.k.used()
    }

    /// Width of one row of the stacked modulations.
    fn mod_width(&self) -> usize {
        norm_names(&self.config).len() * 2 * self.config.dim
    }
}

/// The AdaLNs in the order of the stacked modulation rows.
fn norm_names(c: &Config) -> Vec<String> {
    let mut v: Vec<String> = (0..c.depth)
        .flat_map(|i| [format!("blocks.{i}.norm1"), format!("blocks.{i}.norm2")])
        .collect();
    v.push("final_norm".into());
    v
}

/// One recorded dispatch.
struct Op {
    kernel: Arc<Kernel>,
    bind: wgpu::BindGroup,
    groups: [u32; 3],
}

/// A dispatch of the model's forward pass: the same for every step, or AdaLN number `k`,
/// which reads the modulations of the step being computed (one bind group per step).
enum Dispatch {
    Fixed(Op),
    Norm(usize),
}

/// What a generator computes at the end of each model evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heads {
    /// eps only (sampling).
    Eps,
    /// eps and x0 (a single forward pass).
    Both,
}

/// Buffers, bind groups and the dispatch list for one batch size and one list of timesteps.
/// Reusable: every [`Generator::generate`] starts from its seed, so the same seed gives the
/// same bits however often a generator has run.
pub struct Generator {
    pub batch: usize,
    steps: Vec<Step>,
    /// The image being denoised, `[batch, c, s, s]` f32.
    pub x: wgpu::Buffer,
    eps: wgpu::Buffer,
    x0: wgpu::Buffer,
    forward: Vec<Dispatch>,
    /// `norms[slot][k]`: AdaLN `k` reading the modulations of timestep slot `slot`.
    norms: Vec<Vec<Op>>,
    init: Op,
    updates: Vec<Op>,
    step_params: Vec<(wgpu::Buffer, StepParams)>,
    init_params: (wgpu::Buffer, StepParams),
    /// Pipelines this generator compiled (the rest were the model's already), and the
    /// seconds that took.
    pub compiled: (usize, f64),
}

impl GpuModel {
    /// A generator for `batch` images following `plan` (all images share each step's t).
    pub fn generator(
        &self,
        gpu: &Gpu,
        batch: usize,
        plan: &[Step],
    ) -> Result<Generator, RuntimeError> {
        let ts: Vec<f32> = plan
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.t as f32, batch))
            .collect();
        self.build(gpu, batch, plan.to_vec(), &ts, Heads::Eps)
    }

    /// One forward pass: `(eps, x0)` for images `x` at timesteps `t` (one per image).
    pub async fn forward(
        &self,
        gpu: &Gpu,
        x: &[f32],
        t: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>), RuntimeError> {
        let batch = t.len();
        let g = self.build(gpu, batch, vec![], t, Heads::Both)?;
        gpu.queue.write_buffer(&g.x, 0, bytemuck::cast_slice(x));
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        g.record_model(&mut enc.begin_compute_pass(&Default::default()), 0);
        gpu.queue.submit([enc.finish()]);
        let eps = bytemuck::pod_collect_to_vec(&gpu.read(&g.eps).await?);
        let x0 = bytemuck::pod_collect_to_vec(&gpu.read(&g.x0).await?);
        Ok((eps, x0))
    }

    fn build(
        &self,
        gpu: &Gpu,
        batch: usize,
        steps: Vec<Step>,
        ts: &[f32],
        heads: Heads,
    ) -> Result<Generator, RuntimeError> {
        if batch == 0 {
            return Err(RuntimeError::NoBatch);
        }
        let c = &self.config;
        let (n, d, pd, inner, hid) = (c.tokens(), c.dim, c.patch_dim(), c.inner(), c.hidden());
        let rows = batch * n;
        let act = if self.precision == Precision::F16 {
            2u64
        } else {
            4
        };
        let limits = gpu.device.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let buf = |what: &'static str, bytes: u64| -> Result<wgpu::Buffer, RuntimeError> {
            let bytes = bytes.next_multiple_of(4).max(16);
            if bytes > limit {
                return Err(RuntimeError::TooLarge {
                    batch,
                    what,
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
        let img = (batch * c.image_len()) as u64 * 4;
        let x = buf("image", img)?;
        let eps_img = buf("eps", img)?;
        let x0_img = buf("x0", img)?;
        let patches = buf("patches", rows as u64 * pd as u64 * act)?;
        let h = buf("residual", rows as u64 * d as u64 * act)?;
        let y = buf("normed", rows as u64 * d as u64 * act)?;
        let qkv = buf("qkv", rows as u64 * 3 * inner as u64 * act)?;
        let attn = buf("attention", rows as u64 * inner as u64 * act)?;
        let ff = buf("mlp", rows as u64 * hid as u64 * act)?;
        let pix = buf("pixels", rows as u64 * pd as u64 * act)?;
        let mw = self.mod_width();
        let tr = ts.len().max(1);
        let mods_all = buf("modulations", (tr * mw) as u64 * 4)?;

        let uni = |p: &dyn Fn() -> Vec<u8>| gpu.uniform("params", &p());
        let op = |kernel: Arc<Kernel>,
                  bufs: &[&wgpu::Buffer],
                  groups: [u32; 3]|
         -> Result<Op, RuntimeError> {
            let bind = kernel.bind(gpu, bufs)?;
            Ok(Op {
                kernel,
                bind,
                groups,
            })
        };
        let named = |name: &str| self.k.get(gpu, name);
        let lin = |nn: u32| [nn.div_ceil(256), 1, 1];
        // `out = x · wᵀ` through `epilogue` (a variant suffix), small or wide tiles by shape.
        // Partial products of split-K matmuls (reused by each in turn).
        let max_n = [3 * inner, d, hid, pd, mw, c.time_emb_dim]
            .into_iter()
            .max()
            .unwrap_or(1);
        let scratch_len = (rows.max(tr) * max_n * MAX_SPLITS as usize).min(SCRATCH_FLOATS);
        let scratch = buf("split-K partials", scratch_len as u64 * 4)?;
        // `out = x · wᵀ` through `epilogue` (a variant suffix): the tiles that fill the GPU, or
        // the small tiles with K split across workgroups and a reduction.
        let linear = |epilogue: &str,
                      sfx: &str,
                      bufs: [&wgpu::Buffer; 4],
                      (m, nn, k): (usize, usize, usize),
                      period: usize|
         -> Result<Vec<Op>, RuntimeError> {
            // One dispatch of the whole product.
            let whole = |kernel, groups| -> Result<Vec<Op>, RuntimeError> {
                let p = uni(&|| {
                    MatmulParams {
                        rows_period: period as u32,
                        ..MatmulParams::new(m as u32, nn as u32, k as u32)
                    }
                    .to_bytes()
                });
                Ok(vec![op(
                    kernel,
                    &[bufs[0], bufs[1], bufs[2], bufs[3], &p],
                    groups,
                )?])
            };
            if self.coop && sfx == "_f16" && k.is_multiple_of(4) {
                if let Some((tier, _, groups)) = plan_coop((m, nn, k)) {
                    return whole(named(&format!("{tier}{epilogue}{sfx}"))?, groups);
                }
            }
            let plan = plan_matmul(&self.tiles, (m, nn, k), scratch_len);
            let (groups, splits) = (plan.groups, plan.splits);
            let kernel = named(&format!("{}{epilogue}{sfx}", plan.tier))?;
            if splits == 1 {
                return whole(kernel, groups);
            }
            let p = uni(&|| plan.partial_params().to_bytes());
            let partial = named(&webdit_kernels::partial_variant(plan.tier, sfx))?;
            let partial = op(
                partial,
                &[bufs[0], bufs[1], &scratch, &self.dummy, &p],
                [groups[0], groups[1], splits],
            )?;
            let sp = uni(&|| plan.reduce_params(period as u32).to_bytes());
            let reduce = named(&format!("splitk_reduce{epilogue}{sfx}"))?;
            Ok(vec![
                partial,
                op(
                    reduce,
                    &[&scratch, bufs[2], bufs[3], &sp],
                    lin((m * nn) as u32),
                )?,
            ])
        };
        let (mut forward, mut precompute) = (vec![], vec![]);

        // The timestep path for every step at once (f32).
        let t_buf = gpu.storage_init(
            "timesteps",
            bytemuck::cast_slice(if ts.is_empty() { &[0.0f32] } else { ts }),
        );
        let temb = buf("temb", (tr * d / 2) as u64 * 4)?;
        let te1 = buf("te1", (tr * c.time_emb_dim) as u64 * 4)?;
        let te = buf("te", (tr * c.time_emb_dim) as u64 * 4)?;
        let total = (tr * d / 2) as u32;
        let pb = uni(&|| {
            SinusParams {
                width: (d / 2) as u32,
                total,
            }
            .to_bytes()
        });
        precompute.push(op(
            named("timestep_embedding")?,
            &[&t_buf, &temb, &pb],
            lin(total),
        )?);
        let time_linear = |x: &wgpu::Buffer,
                           w: &wgpu::Buffer,
                           out: &wgpu::Buffer,
                           nn: usize,
                           k: usize,
                           silu: bool|
         -> Result<Vec<Op>, RuntimeError> {
            let epilogue = if silu { "_silu" } else { "" };
            if tr <= 16 {
                let p = uni(&|| {
                    MatvecParams {
                        n: nn as u32,
                        k: k as u32,
                    }
                    .to_bytes()
                });
                Ok(vec![op(
                    named(&format!("matvec{epilogue}"))?,
                    &[x, w, out, &p],
                    [(nn as u32).div_ceil(OUTPUTS), tr as u32, 1],
                )?])
            } else {
                linear(epilogue, "", [x, w, out, &self.dummy], (tr, nn, k), 1)
            }
        };
        precompute.extend(time_linear(
            &temb,
            &self.time1,
            &te1,
            c.time_emb_dim,
            d / 2,
            true,
        )?);
        precompute.extend(time_linear(
            &te1,
            &self.time3,
            &te,
            c.time_emb_dim,
            c.time_emb_dim,
            false,
        )?);
        precompute.extend(time_linear(
            &te,
            &self.mods,
            &mods_all,
            mw,
            c.time_emb_dim,
            false,
        )?);

        // The model.
        let fixed = |ops: Vec<Op>| ops.into_iter().map(Dispatch::Fixed);
        let sfx = self.sfx;
        let patch = PatchParams {
            channels: c.channels as u32,
            size: c.input as u32,
            patch: c.patch as u32,
            total: (batch * c.image_len()) as u32,
        };
        let pp = uni(&|| patch.to_bytes());
        forward.push(Dispatch::Fixed(op(
            named(&format!("patchify{sfx}"))?,
            &[&x, &patches, &pp],
            lin(patch.total),
        )?));
        forward.extend(fixed(linear(
            "_addrows",
            sfx,
            [&patches, &self.patch_embed, &h, &self.pos],
            (rows, d, pd),
            n,
        )?));
        // AdaLN `k` of timestep slot `slot` reads that slot's rows of the modulations
        // (`[slot, batch, mw]`), so no step copies them anywhere.
        let sg = if self.subgroups { "_sg" } else { "" };
        let adaln = named(&format!("adaln{sg}{sfx}"))?;
        let row_groups = [rows as u32, 1, 1];
        let norms = (0..tr / batch)
            .map(|slot| {
                (0..norm_names(c).len())
                    .map(|k| {
                        let scale_at = (slot * batch * mw + k * 2 * d) as u32;
                        let p = uni(&|| {
                            AdaLnParams {
                                d: d as u32,
                                rows_per_batch: n as u32,
                                mod_stride: mw as u32,
                                scale_at,
                                shift_at: scale_at + d as u32,
                            }
                            .to_bytes()
                        });
                        op(adaln.clone(), &[&h, &mods_all, &y, &p], row_groups)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Attention, with its keys cut into slices where the grid is too small for the GPU.
        let att = AttentionParams::new(n as u32, c.dim_head as u32, c.heads as u32)
            .split(attention_chunks(n, c.heads, batch));
        let chunks = att.chunks as usize;
        let p_att = uni(&|| att.to_bytes());
        let q_blocks = (n as u32).div_ceil(BQ);
        let slices = if chunks > 1 {
            let rows_all = batch * c.heads * chunks * n;
            Some((
                buf("attention slices", (rows_all * c.dim_head) as u64 * 4)?,
                buf("attention slice stats", (rows_all * 2) as u64 * 4)?,
            ))
        } else {
            None
        };
        let w = self.attention_width;
        let (plain, split, combine) = if chunks > 1 {
            let split = named(&format!("attention_split_d{w}{sfx}"))?;
            let combine = named(&format!("attention_combine{sfx}"))?;
            (None, Some(split), Some(combine))
        } else {
            (Some(named(&format!("attention_d{w}{sfx}"))?), None, None)
        };
        let (n_heads, nb) = (c.heads as u32, batch as u32);
        let quads = (n * c.heads * c.dim_head / 4) as u32;
        let attention = |qkv: &wgpu::Buffer, out: &wgpu::Buffer| -> Result<Vec<Op>, RuntimeError> {
            let (Some((parts, stats)), Some(split), Some(combine)) = (&slices, &split, &combine)
            else {
                return Ok(vec![op(
                    plain.clone().expect("unsplit attention"),
                    &[qkv, out, &p_att],
                    [q_blocks, n_heads, nb],
                )?]);
            };
            Ok(vec![
                op(
                    split.clone(),
                    &[qkv, parts, stats, &p_att],
                    [q_blocks * att.chunks, n_heads, nb],
                )?,
                op(
                    combine.clone(),
                    &[parts, stats, out, &p_att],
                    [quads.div_ceil(256), nb, 1],
                )?,
            ])
        };
        for (i, b) in self.blocks.iter().enumerate() {
            forward.push(Dispatch::Norm(2 * i));
            forward.extend(fixed(linear(
                "",
                sfx,
                [&y, &b.qkv, &qkv, &self.dummy],
                (rows, 3 * inner, d),
                1,
            )?));
            forward.extend(fixed(attention(&qkv, &attn)?));
            forward.extend(fixed(linear(
                "_acc",
                sfx,
                [&attn, &b.out, &h, &self.dummy],
                (rows, d, inner),
                1,
            )?));
            forward.push(Dispatch::Norm(2 * i + 1));
            forward.extend(fixed(linear(
                "_silu",
                sfx,
                [&y, &b.ff0, &ff, &self.dummy],
                (rows, hid, d),
                1,
            )?));
            forward.extend(fixed(linear(
                "_acc",
                sfx,
                [&ff, &b.ff2, &h, &self.dummy],
                (rows, d, hid),
                1,
            )?));
        }
        forward.push(Dispatch::Norm(2 * c.depth));
        forward.extend(fixed(linear(
            "",
            sfx,
            [&y, &self.to_pixels, &pix, &self.dummy],
            (rows, pd, d),
            1,
        )?));
        let unpatchify = named(&format!("unpatchify{sfx}"))?;
        forward.push(Dispatch::Fixed(op(
            unpatchify.clone(),
            &[&pix, &eps_img, &pp],
            lin(patch.total),
        )?));
        if heads == Heads::Both {
            // The bias: one row added to every row.
            forward.extend(fixed(linear(
                "_addrows",
                sfx,
                [&y, &self.proj_fin, &pix, &self.proj_bias],
                (rows, pd, d),
                1,
            )?));
            forward.push(Dispatch::Fixed(op(
                unpatchify,
                &[&pix, &x0_img, &pp],
                lin(patch.total),
            )?));
        }

        // The sampler: one uniform per step (rewritten with the seed before each run).
        let len = (batch * c.image_len()) as u32;
        let sp = |s: &Step| {
            let [u, v] = s.x0.unwrap_or([0.0, 0.0]);
            StepParams {
                n: len,
                seed_lo: 0,
                seed_hi: 0,
                stream: s.t as u32,
                a: s.a,
                b: s.b,
                c: s.c,
                clip: s.x0.is_some() as u32,
                u,
                v,
            }
        };
        // The initial noise: stream T, x = z.
        let init_p = sp(&Step {
            t: c.steps,
            a: 0.0,
            b: 0.0,
            c: 1.0,
            x0: None,
        });
        let init_buf = uni(&|| init_p.to_bytes());
        let sampler = named("sampler_step")?;
        let init = op(sampler.clone(), &[&x, &eps_img, &init_buf], lin(len))?;
        let mut updates = vec![];
        let mut step_params = vec![];
        for s in &steps {
            let p = sp(s);
            let b = uni(&|| p.to_bytes());
            updates.push(op(sampler.clone(), &[&x, &eps_img, &b], lin(len))?);
            step_params.push((b, p));
        }

        // The pipelines of the kernels this generator brought into the model, at once.
        let start = Instant::now();
        let pending = self.k.uncompiled();
        let compiled = gpu.compile(&pending.iter().map(|k| &**k).collect::<Vec<_>>());
        if compiled > 0 {
            gpu.save_cache();
        }
        let compiled = (compiled, start.elapsed().as_secs_f64());

        // Modulations for every step, once.
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for o in &precompute {
                o.kernel.dispatch(&mut pass, &o.bind, o.groups);
            }
        }
        gpu.queue.submit([enc.finish()]);
        Ok(Generator {
            compiled,
            batch,
            steps,
            x,
            eps: eps_img,
            x0: x0_img,
            forward,
            norms,
            init,
            updates,
            step_params,
            init_params: (init_buf, init_p),
        })
    }
}

/// Steps per command buffer in [`Generator::generate`]. On an H200, favicon-s batch 1 took
/// 14.0 ms at 1 step per submit, 13.5 at 2, 13.2 at 4 and 17.0 in one command buffer.
pub const SUBMIT_STEPS: usize = 4;

impl Generator {
    fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, o: &Op) {
        o.kernel.dispatch(pass, &o.bind, o.groups);
    }

    /// Records one model evaluation at timestep slot `slot`.
    fn record_model(&self, pass: &mut wgpu::ComputePass<'_>, slot: usize) {
        for d in &self.forward {
            match d {
                Dispatch::Fixed(o) => self.dispatch(pass, o),
                Dispatch::Norm(k) => self.dispatch(pass, &self.norms[slot][*k]),
            }
        }
    }

    /// Steps of the plan.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Sets the seed for the next run (rewrites the sampler uniforms).
    pub fn set_seed(&self, gpu: &Gpu, seed: u64) {
        let with_seed = |p: &StepParams| {
            StepParams {
                seed_lo: seed as u32,
                seed_hi: (seed >> 32) as u32,
                ..*p
            }
            .to_bytes()
        };
        gpu.queue
            .write_buffer(&self.init_params.0, 0, &with_seed(&self.init_params.1));
        for (b, p) in &self.step_params {
            gpu.queue.write_buffer(b, 0, &with_seed(p));
        }
    }

    /// Records steps `range` of the plan (step 0 also draws the initial noise).
    pub fn encode(&self, enc: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>) {
        let mut pass = enc.begin_compute_pass(&Default::default());
        if range.start == 0 {
            self.dispatch(&mut pass, &self.init);
        }
        for k in range {
            self.record_model(&mut pass, k);
            self.dispatch(&mut pass, &self.updates[k]);
        }
    }

    /// A whole generation, then the images (`[batch, c, s, s]` in [-1, 1], unclamped).
    /// Steps are submitted [`SUBMIT_STEPS`] at a time as they are recorded, so the GPU
    /// starts on the first while the CPU records the rest; nothing is read back in between.
    pub async fn generate(&self, gpu: &Gpu, seed: u64) -> Result<Vec<f32>, RuntimeError> {
        self.generate_in(gpu, seed, SUBMIT_STEPS).await
    }

    /// [`Generator::generate`] with `per_submit` steps per command buffer.
    pub async fn generate_in(
        &self,
        gpu: &Gpu,
        seed: u64,
        per_submit: usize,
    ) -> Result<Vec<f32>, RuntimeError> {
        self.submit(gpu, seed, per_submit, |_, _| {});
        self.read_image(gpu).await
    }

    /// Records and submits a whole generation from `seed`, `per_submit` steps per command
    /// buffer, each submitted as soon as it is recorded; calls `submitted(steps, index)`
    /// after each submission with the steps submitted so far. Waits for nothing: wait on the
    /// indices (natively, `device.poll`) to follow progress without stalling the GPU.
    pub fn submit(
        &self,
        gpu: &Gpu,
        seed: u64,
        per_submit: usize,
        mut submitted: impl FnMut(usize, wgpu::SubmissionIndex),
    ) {
        self.set_seed(gpu, seed);
        let per_submit = per_submit.max(1);
        // A plan of no steps still draws the initial noise.
        for start in (0..self.len().max(1)).step_by(per_submit) {
            let end = (start + per_submit).min(self.len());
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            self.encode(&mut enc, start..end);
            submitted(end, gpu.queue.submit([enc.finish()]));
        }
    }

    /// The current image (after whatever was submitted).
    pub async fn read_image(&self, gpu: &Gpu) -> Result<Vec<f32>, RuntimeError> {
        Ok(bytemuck::pod_collect_to_vec(&gpu.read(&self.x).await?))
    }
}
