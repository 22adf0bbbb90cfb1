//! The forward plan: what a generator runs, as data. Building a plan for a model, a batch and
//! a step plan lists every dispatch (a name, a typed kernel variant, shapes, named tensors
//! bound to the kernel's named parameters, workgroup counts) and every tensor; it needs no
//! GPU, so `webdit plan` prints it anywhere. The runtime ([`crate::runtime`]) executes a plan
//! with one small loop; memory comes from the tensors' lifetimes ([`Plan::allocate`]), not
//! from the order the code that built the plan happened to run in.
//!
//! Each op is checked against its kernel's contract when it is added (the parameters the
//! `#[kernel]` function declares, with their element types and access, and its uniform
//! struct): a missing, unknown or mistyped binding is an error naming the op and the
//! parameter, when the plan is built, never a wrong bind group at run time.

use crate::config::Config;
use crate::kernels::{by_key, Binding, KernelSource, Param};
use crate::runtime::{Precision, RuntimeError};
use crate::sampler::Step;
use crate::tiers::{
    attention_by_rows, attention_chunks, attention_on_tensor_cores, attention_out_fusable,
    coop_splits, pick_coop_split, plan_coop, plan_coop_split, plan_matmul, plan_matmul_software,
    reduce_linear_fusable, MatmulPlan, LINEAR_GROUPS, SCRATCH_FLOATS,
};
use std::fmt;
use webdit_dsl::ir::Scalar;
use webdit_dsl::UniformStruct;
use webdit_kernels::attention::{AttentionOutParams, AttentionParams, BQ, ROWS};
use webdit_kernels::attention_coop::COOP_BQ;
use webdit_kernels::layout::{PatchParams, SinusParams};
use webdit_kernels::matmul::{Epilogue, MatmulParams, DIRECT};
use webdit_kernels::matvec::{MatvecParams, OUTPUTS};
use webdit_kernels::norm::{AdaLnParams, ReduceNormLinearParams, ReduceNormParams};
use webdit_kernels::sampler::StepParams;
use webdit_kernels::{attention_rows_width, attention_width, Key, Store, Tiles};

/// What a plan is built for, besides the model's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub precision: Precision,
    pub tiles: Tiles,
    /// AdaLN row sums through subgroups (native adapters with subgroups).
    pub subgroups: bool,
    /// Products on tensor cores where they fill the GPU (f16, cooperative matrices).
    pub coop: bool,
    /// With `coop`: products too small to fill the GPU on tensor cores split K across
    /// workgroups there (partial products, then a reduction) instead of running on the f16
    /// kernels.
    pub coop_split: bool,
    /// With `coop_split`: where MLP in and MLP out both split K on tensor cores, MLP in's
    /// reduction (and its SiLU) moves into MLP out's loads of A
    /// ([`webdit_kernels::Key::CoopPartialOfSilu`]), one dispatch less per block.
    pub mlp_fused: bool,
    /// Where the to-pixels product splits K, the sampler sums its partial products
    /// ([`webdit_kernels::Key::SamplerStepOfParts`]), one dispatch less per step.
    pub eps_fused: bool,
    /// Workgroups a product needs to run whole on tensor cores
    /// ([`crate::tiers::COOP_MIN_GROUPS`]; smaller ones split K there).
    pub coop_min_groups: u32,
    /// A software adapter (a few CPU threads, as SwiftShader): f32 products and AdaLNs
    /// without workgroup memory or barriers (`matmul_direct*`, `adaln_serial`), other
    /// products unsplit ([`crate::tiers::plan_matmul_software`]), attention unsplit.
    pub software: bool,
    /// Attention over short sequences a few query rows per workgroup
    /// ([`crate::tiers::attention_by_rows`]) instead of 32 (in key slices where those are
    /// too few for the GPU).
    pub attention_rows: bool,
    /// With `coop` and f16 data: attention over sequences longer than the row kernel's on
    /// tensor cores ([`crate::tiers::attention_on_tensor_cores`]).
    pub attention_coop: bool,
    /// Where attention runs by rows with one head
    /// ([`crate::tiers::attention_out_fusable`]): its output projection, the residual and
    /// the next AdaLN in the same dispatch ([`webdit_kernels::Key::AttentionRowsOut`]),
    /// two dispatches less per block (natively; `webdit generate` takes it once cached).
    pub attention_out_fused: bool,
    /// Where a split-K's reduction takes the AdaLN after it and the AdaLN's rows are few
    /// ([`crate::tiers::reduce_linear_fusable`]), with subgroups and f16 storage: the
    /// product that reads the AdaLN (qkv) in the same dispatch
    /// ([`webdit_kernels::Key::SplitkReduceAdaLnLinear`]), two dispatches less per block.
    /// On an H200 favicon-s batch 1 took 6.4–6.5 ms instead of 6.7–6.8 with f16 storage,
    /// but 8.8 instead of 8.7 with f32, so f32 plans do not fuse.
    pub norm_linear_fused: bool,
}

/// What a plan computes at the end of each model evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heads {
    /// eps only (sampling).
    Eps,
    /// eps and x0 (a single forward pass, [`crate::GpuModel::forward`]).
    Both,
}

/// When an op runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Once, when the generator is built (the timestep path for every step).
    Precompute,
    /// Once per generation, before the first step (the initial noise).
    Init,
    /// Every model evaluation.
    Model,
    /// After every model evaluation (the sampler's update).
    Update,
}

/// How a tensor's memory is provided.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorKind {
    /// A weight of the model (uploaded once by [`crate::GpuModel`], under this name).
    Weight,
    /// Filled by the host when the generator is built.
    Constant(Vec<u8>),
    /// Lives as long as the generator (the image, eps, modulations, the seed).
    State,
    /// Written and read within one model evaluation: shares memory with every tensor whose
    /// lifetime does not overlap its own.
    Transient,
    /// Bound to a parameter the kernel variant declares but does not read (the `extra` of a
    /// matmul without a row table): a 16-byte placeholder of any type.
    Unused,
}

/// A tensor of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub scalar: Scalar,
    /// Elements.
    pub len: usize,
    pub kind: TensorKind,
}

impl Tensor {
    /// Bytes, rounded up to whole 4-byte words (at least 16).
    pub fn bytes(&self) -> u64 {
        (self.len as u64 * self.scalar.size() as u64)
            .next_multiple_of(4)
            .max(16)
    }
}

/// A tensor's index in [`Plan::tensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

/// One dispatch of the plan.
#[derive(Clone, Debug)]
pub struct Op {
    /// Where in the model (`block2.mlp_in`, `final.unpatchify`): labels the GPU work.
    pub name: String,
    pub key: Key,
    pub kernel: &'static KernelSource,
    /// The problem's shape, for people (`64×1152×384` for a product: M×N×K).
    pub shape: String,
    pub phase: Phase,
    /// Tensors bound to the kernel's storage parameters, by the parameter's name.
    pub args: Vec<(&'static str, TensorId)>,
    /// The uniform's bytes: one set, or one per timestep slot (an AdaLN reads its step's
    /// modulations; the sampler has per-step coefficients).
    pub params: Vec<Vec<u8>>,
    pub groups: [u32; 3],
    /// The problem's floor: FLOPs and bytes (each operand once).
    pub flops: f64,
    pub bytes: f64,
}

impl Op {
    /// The tensors it reads and those it writes (through parameters the kernel declares
    /// writable; an accumulating product reads and writes its output).
    pub fn access(&self) -> (Vec<TensorId>, Vec<TensorId>) {
        let mut reads = vec![];
        let mut writes = vec![];
        for (name, t) in &self.args {
            let p = self.param(name).expect("checked when the op was added");
            if p.writes() {
                writes.push(*t);
            } else {
                reads.push(*t);
            }
        }
        (reads, writes)
    }

    fn param(&self, name: &str) -> Option<&'static Param> {
        self.kernel.bindings.iter().find(|p| p.name == name)
    }

    /// Workgroups of one dispatch.
    pub fn workgroups(&self) -> u64 {
        self.groups.iter().map(|g| *g as u64).product()
    }
}

/// A model's forward pass and sampling loop for one batch size and one step plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Label for printing (`favicon-s, batch 1, f16`).
    pub title: String,
    pub batch: usize,
    pub tensors: Vec<Tensor>,
    /// In execution order within each phase; phases in [`Phase`] order.
    pub ops: Vec<Op>,
    /// The image being denoised, `[batch, c, s, s]` f32.
    pub image: TensorId,
    /// The model's outputs as images (only with [`Heads::Both`]): eps and the image
    /// estimate.
    pub eps: Option<TensorId>,
    pub x0: Option<TensorId>,
    /// The sampler's 64-bit seed, two u32 words.
    pub seed: TensorId,
}

/// The AdaLNs in the order of the stacked modulation rows.
pub fn norm_names(c: &Config) -> Vec<String> {
    let mut v: Vec<String> = (0..c.depth)
        .flat_map(|i| [format!("blocks.{i}.norm1"), format!("blocks.{i}.norm2")])
        .collect();
    v.push("final_norm".into());
    v
}

/// The weight tensors of a model, by name, with their lengths (what [`crate::GpuModel`]
/// uploads; every plan's weights are among them).
pub fn weights(c: &Config) -> Vec<(String, usize)> {
    let (d, pd, inner, hid) = (c.dim, c.patch_dim(), c.inner(), c.hidden());
    let mut v = vec![
        ("patch_embed".to_string(), d * pd),
        ("pos".into(), c.tokens() * d),
    ];
    for i in 0..c.depth {
        v.push((format!("blocks.{i}.qkv"), 3 * inner * d));
        v.push((format!("blocks.{i}.to_out"), d * inner));
        // (Browsers never plan the fused attention: `Options::attention_out_fused`.)
        if attention_out_fusable(c) && !cfg!(target_arch = "wasm32") {
            v.push((format!("blocks.{i}.to_out_t"), inner * d));
        }
        v.push((format!("blocks.{i}.mlp_in"), hid * d));
        v.push((format!("blocks.{i}.mlp_out"), d * hid));
    }
    v.extend([
        ("to_pixels".into(), pd * d),
        ("proj_fin".into(), pd * d),
        ("proj_bias".into(), pd),
        ("time1".into(), c.time_emb_dim * d / 2),
        ("time3".into(), c.time_emb_dim * c.time_emb_dim),
        ("mods".into(), norm_names(c).len() * 2 * d * c.time_emb_dim),
    ]);
    v
}

/// Which weights are stored in the main precision (the rest, the timestep path's, are f32).
pub fn weight_scalar(name: &str, precision: Precision) -> Scalar {
    let main = match precision {
        Precision::F32 => Scalar::F32,
        Precision::F16 => Scalar::F16,
    };
    match name {
        "time1" | "time3" | "mods" => Scalar::F32,
        _ => main,
    }
}

/// Builds a plan op by op, checking each against its kernel's contract.
struct Builder {
    tensors: Vec<Tensor>,
    ops: Vec<Op>,
    phase: Phase,
    prefix: String,
    unused: Option<TensorId>,
    /// What every AdaLN shares, once the modulations exist.
    norms: Option<NormCtx>,
}

/// An AdaLN to apply to a product's output (its residual row): AdaLN number `index` of
/// the stacked modulations, into `y` (`None`: a tensor named after the op, made when an op
/// writes it; where the AdaLN's product fuses, none does).
struct Norm {
    /// The op's full name (`block1.norm1`).
    name: String,
    index: usize,
    y: Option<TensorId>,
    /// The product that reads `y`, to plan with it where it fuses.
    linear: Option<NormLinear>,
}

/// A product `out = y · wᵀ` (`n` outputs a row) of an AdaLN's output `y`.
#[derive(Clone, Copy)]
struct NormLinear {
    w: TensorId,
    out: TensorId,
    n: usize,
}

/// The geometry every AdaLN of a plan shares.
#[derive(Clone, Copy)]
struct NormCtx {
    /// `[slot, batch, mod_stride]` modulations.
    mods: TensorId,
    mod_stride: usize,
    slots: usize,
    batch: usize,
    rows: usize,
    rows_per_batch: usize,
    d: usize,
    /// The AdaLN variant of the plan's options: one invocation per row (no barriers) on a
    /// software adapter in f32, else workgroup sums (through subgroups where planned).
    adaln: Key,
    store: Store,
}

impl NormCtx {
    /// For each timestep slot, the reduction of `plan`'s partial products (a row table of
    /// `period` rows) with AdaLN `k` after it.
    fn reduce_norm(&self, k: usize, plan: &MatmulPlan, period: usize) -> Vec<ReduceNormParams> {
        let (m, n, _) = plan.shape;
        (0..self.slots)
            .map(|slot| {
                let a = self.adaln(slot, k);
                ReduceNormParams {
                    mn: (m * n) as u32,
                    n: n as u32,
                    splits: plan.splits,
                    rows_period: period as u32,
                    rows_per_batch: a.rows_per_batch,
                    mod_stride: a.mod_stride,
                    scale_at: a.scale_at,
                    shift_at: a.shift_at,
                }
            })
            .collect()
    }

    /// AdaLN `k` at timestep slot `slot` reads that slot's rows of the modulations.
    fn adaln(&self, slot: usize, k: usize) -> AdaLnParams {
        let scale_at = (slot * self.batch * self.mod_stride + k * 2 * self.d) as u32;
        AdaLnParams {
            d: self.d as u32,
            rows_per_batch: self.rows_per_batch as u32,
            mod_stride: self.mod_stride as u32,
            scale_at,
            shift_at: scale_at + self.d as u32,
        }
    }

    fn elem(&self) -> usize {
        match self.store {
            Store::F32 => 4,
            Store::F16 => 2,
        }
    }
}

/// `name` of the op's uniform struct `P`, and its bytes per slot.
struct Params {
    struct_name: String,
    bytes: Vec<Vec<u8>>,
}

impl Params {
    fn one<P: UniformStruct>(p: &P) -> Params {
        Params::per_slot(std::slice::from_ref(p))
    }

    fn per_slot<P: UniformStruct>(ps: &[P]) -> Params {
        Params {
            struct_name: P::layout().name,
            bytes: ps.iter().map(UniformStruct::to_bytes).collect(),
        }
    }
}

fn contract(msg: String) -> RuntimeError {
    RuntimeError::Contract(msg)
}

impl Builder {
    fn tensor(&mut self, name: &str, scalar: Scalar, len: usize, kind: TensorKind) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            scalar,
            len,
            kind,
        });
        TensorId(self.tensors.len() - 1)
    }

    /// The tensor AdaLN `norm` writes: its own, or a transient named after the op.
    fn norm_output(&mut self, norm: &Norm) -> TensorId {
        let ctx = self.norms.expect("norms are planned after their context");
        let scalar = match ctx.store {
            Store::F32 => Scalar::F32,
            Store::F16 => Scalar::F16,
        };
        norm.y.unwrap_or_else(|| {
            self.tensor(&norm.name, scalar, ctx.rows * ctx.d, TensorKind::Transient)
        })
    }

    /// The tensor called `name` (a weight of the model, or one made by the ops so far).
    fn named(&self, name: &str) -> Option<TensorId> {
        self.tensors
            .iter()
            .position(|t| t.name == name)
            .map(TensorId)
    }

    /// An intermediate tensor named after the current op prefix: transient within the
    /// model evaluation, kept for the generator's life in the other phases.
    fn temp(&mut self, name: &str, scalar: Scalar, len: usize) -> TensorId {
        let name = format!("{}{name}", self.prefix);
        let kind = match self.phase {
            Phase::Model => TensorKind::Transient,
            _ => TensorKind::State,
        };
        self.tensor(&name, scalar, len, kind)
    }

    fn unused(&mut self) -> TensorId {
        match self.unused {
            Some(t) => t,
            None => {
                let t = self.tensor("unused", Scalar::U32, 4, TensorKind::Unused);
                self.unused = Some(t);
                t
            }
        }
    }

    /// Adds a dispatch of `key` binding `args` by parameter name, checked against the
    /// kernel's declared parameters: every storage parameter bound once, with a tensor of
    /// its element type, the uniform by its struct.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        name: &str,
        key: Key,
        shape: String,
        args: &[(&'static str, TensorId)],
        params: Params,
        groups: [u32; 3],
        (flops, bytes): (f64, f64),
    ) -> Result<(), RuntimeError> {
        let name = format!("{}{name}", self.prefix);
        let kernel = by_key(key).ok_or_else(|| RuntimeError::NoVariant(key.name()))?;
        let at = |what: String| contract(format!("op `{name}` (kernel `{}`): {what}", kernel.name));
        for (arg, t) in args {
            let Some(p) = kernel.bindings.iter().find(|p| p.name == *arg) else {
                return Err(at(format!("the kernel has no parameter `{arg}`")));
            };
            if p.kind == Binding::Uniform {
                return Err(at(format!(
                    "`{arg}` is the uniform; pass it as the op's params"
                )));
            }
            let tensor = &self.tensors[t.0];
            if tensor.kind == TensorKind::Unused {
                if p.writes() {
                    return Err(at(format!("`{arg}` is written, so it needs a real tensor")));
                }
            } else if p.scalar != Some(tensor.scalar) {
                let holds = p.scalar.map_or("structs".into(), |s| format!("{s:?}"));
                return Err(at(format!(
                    "`{arg}` holds {holds}, but tensor `{}` is {:?}",
                    tensor.name, tensor.scalar
                )));
            }
            if p.writes() && matches!(tensor.kind, TensorKind::Weight | TensorKind::Constant(_)) {
                return Err(at(format!(
                    "`{arg}` is written, but `{}` is read-only",
                    tensor.name
                )));
            }
            if args.iter().filter(|(a, _)| a == arg).count() > 1 {
                return Err(at(format!("`{arg}` is bound twice")));
            }
        }
        for p in kernel.bindings {
            match p.kind {
                Binding::Uniform => {
                    if p.uniform != Some(params.struct_name.as_str()) {
                        return Err(at(format!(
                            "the uniform `{}` is {}, but the op passes {}",
                            p.name,
                            p.uniform.unwrap_or("?"),
                            params.struct_name
                        )));
                    }
                }
                _ => {
                    if !args.iter().any(|(a, _)| *a == p.name) {
                        return Err(at(format!("parameter `{}` is not bound", p.name)));
                    }
                }
            }
        }
        self.ops.push(Op {
            name,
            key,
            kernel,
            shape,
            phase: self.phase,
            args: args.to_vec(),
            params: params.bytes,
            groups,
            flops,
            bytes,
        });
        Ok(())
    }
}

/// What a product reads as A.
#[derive(Clone, Copy)]
enum Operand {
    Tensor(TensorId),
    /// SiLU of the sum of a split-K's `splits` partial products in `parts` (its reduction
    /// moved into the product's loads).
    SiluOfParts {
        parts: TensorId,
        splits: u32,
    },
}

/// Where MLP in and MLP out both split K on the 64-row tensor-core tile and MLP in can
/// split K into a count MLP out has a variant to read unreduced: that split, for
/// [`Builder::mlp_fused`] (which reduces it as its own op without `Options::mlp_fused`).
fn mlp_fusion(
    o: &Options,
    store: Store,
    (rows, hid, d): (usize, usize, usize),
) -> Option<(u32, [u32; 3])> {
    if !(o.coop && o.coop_split && store == Store::F16) {
        return None;
    }
    // MLP in's split: one whose partial products MLP out has a variant to read.
    let silu_parts = coop_splits((rows, hid, d), SCRATCH_FLOATS)
        .filter(|(s, _, _)| webdit_kernels::COOP_SILU_PARTS.contains(s));
    let (Some((splits, groups, true)), Some((_, _, true))) = (
        pick_coop_split((rows, hid, d), silu_parts),
        plan_coop_split((rows, d, hid), SCRATCH_FLOATS),
    ) else {
        return None;
    };
    let fits = plan_coop((rows, hid, d), Epilogue::Silu, o.coop_min_groups).is_none()
        && d.is_multiple_of(4)
        && hid.is_multiple_of(4);
    fits.then_some((splits, groups))
}

/// How a product runs.
enum Pass {
    /// In one dispatch of `key`.
    Whole { key: Key, groups: [u32; 3] },
    /// As `plan`'s split-K: partial products by `key`, then a reduction.
    Split {
        key: Key,
        plan: MatmulPlan,
        groups: [u32; 3],
    },
}

/// How the product `(m, n, k)` with `epilogue` runs under `o`: whole on tensor-core tiles
/// where they fill the GPU, else split over K there ([`plan_coop_split`]), else on the tier
/// whose tiles fill it, with K split across workgroups (partial products, then a
/// reduction) where a single pass would leave the GPU idle. `silu_of`:
/// A is SiLU of the sum of that many partial products of another split; then `None` unless
/// the product is a split-K on the 64-row tensor-core tile (the only variant that reads
/// those).
fn product_pass(
    o: &Options,
    store: Store,
    epilogue: Epilogue,
    silu_of: Option<u32>,
    (m, n, k): (usize, usize, usize),
) -> Option<Pass> {
    let fused = silu_of.is_some();
    if o.coop && store == Store::F16 && k.is_multiple_of(4) && !fused {
        if let Some((tile, groups)) = plan_coop((m, n, k), epilogue, o.coop_min_groups) {
            let key = Key::Coop { tile, epilogue };
            return Some(Pass::Whole { key, groups });
        }
    }
    // A software adapter runs f32 products without workgroup memory or barriers.
    if o.software && store == Store::F32 && k.is_multiple_of(4) && !fused {
        let (rows, cols) = DIRECT;
        let groups = [
            (n as u32).div_ceil(4 * cols),
            (m as u32).div_ceil(4 * rows),
            1,
        ];
        let key = Key::MatmulDirect { epilogue };
        return Some(Pass::Whole { key, groups });
    }
    let plan = if o.software {
        plan_matmul_software(&o.tiles, (m, n, k))
    } else {
        plan_matmul(&o.tiles, (m, n, k), SCRATCH_FLOATS)
    };
    let tier = plan.tier_key().expect("a registered tier");
    // Partial products of a split-K: on tensor cores where they fill the GPU that way.
    let coop_split = (o.coop && o.coop_split && store == Store::F16)
        .then(|| plan_coop_split((m, n, k), SCRATCH_FLOATS))
        .flatten();
    let (key, splits, groups) = match (coop_split, silu_of) {
        (Some((splits, groups, true)), Some(parts)) => {
            (Key::CoopPartialOfSilu { parts }, splits, groups)
        }
        (_, Some(_)) => return None,
        (Some((splits, groups, small)), _) => (Key::CoopPartial { small }, splits, groups),
        (None, _) if plan.splits == 1 => {
            let key = Key::Matmul {
                tier,
                epilogue,
                store,
            };
            let groups = plan.groups;
            return Some(Pass::Whole { key, groups });
        }
        (None, _) => (Key::partial(tier, store), plan.splits, plan.groups),
    };
    let plan = MatmulPlan { splits, ..plan };
    Some(Pass::Split { key, plan, groups })
}

/// Workgroups of 256 invocations over `n` elements.
fn lin(n: usize) -> [u32; 3] {
    [(n as u32).div_ceil(256), 1, 1]
}

/// Bytes of one value stored as `store`.
fn store_bytes(store: Store) -> usize {
    match store {
        Store::F32 => 4,
        Store::F16 => 2,
    }
}

/// Bytes a reduction of `plan`'s partial products moves through `epilogue` into an output
/// stored as `store`.
fn reduce_bytes(plan: &MatmulPlan, epilogue: Epilogue, store: Store, period: usize) -> f64 {
    let (m, n, _) = plan.shape;
    let out = m * n + epilogue_reads(epilogue, m, n, period);
    (m * n * plan.splits as usize * 4 + out * store_bytes(store)) as f64
}

/// The epilogue's bytes beyond the operands (an accumulated output is also read).
fn epilogue_reads(e: Epilogue, m: usize, n: usize, period: usize) -> usize {
    match e {
        Epilogue::Accumulate => m * n,
        Epilogue::AddRows => period * n,
        _ => 0,
    }
}

impl Builder {
    /// `out = x · wᵀ` through `epilogue` (`extra`: the row table of [`Epilogue::AddRows`],
    /// `period` rows): tensor-core tiles where they fill the GPU, else the tier whose tiles
    /// do, with K split across workgroups (partial products, then a reduction) where a
    /// single pass would leave the GPU idle.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        o: &Options,
        name: &str,
        store: Store,
        epilogue: Epilogue,
        [x, w, out]: [TensorId; 3],
        extra: Option<TensorId>,
        (m, n, k): (usize, usize, usize),
        period: usize,
        then: Option<Norm>,
    ) -> Result<Option<TensorId>, RuntimeError> {
        let a = Operand::Tensor(x);
        let shape = (m, n, k);
        self.linear_of(
            o,
            name,
            store,
            epilogue,
            a,
            [w, out],
            extra,
            shape,
            period,
            then,
        )
    }

    /// [`Builder::linear`] of an [`Operand`]: A as a tensor, or as another split-K's
    /// partial products through SiLU (which only the tensor-core split reads). Where
    /// `then`'s product ran in the same dispatch, returns the tensor that now holds the
    /// residual (see [`Builder::reduce_norm_linear`]).
    #[allow(clippy::too_many_arguments)]
    fn linear_of(
        &mut self,
        o: &Options,
        name: &str,
        store: Store,
        epilogue: Epilogue,
        a: Operand,
        [w, out]: [TensorId; 2],
        extra: Option<TensorId>,
        (m, n, k): (usize, usize, usize),
        period: usize,
        then: Option<Norm>,
    ) -> Result<Option<TensorId>, RuntimeError> {
        let x = match a {
            Operand::Tensor(x) => x,
            Operand::SiluOfParts { parts, .. } => parts,
        };
        let extra = match extra {
            Some(t) => t,
            None => self.unused(),
        };
        let elem = store_bytes(store);
        let flops = 2.0 * (m * n * k) as f64;
        let bytes =
            ((m * k + n * k + m * n + epilogue_reads(epilogue, m, n, period)) * elem) as f64;
        let shape = format!("{m}×{n}×{k}");
        let params = MatmulParams {
            rows_period: period as u32,
            ..MatmulParams::new(m as u32, n as u32, k as u32)
        };
        let args = [("a", x), ("w", w), ("c", out), ("extra", extra)];
        let silu_of = match a {
            Operand::Tensor(_) => None,
            Operand::SiluOfParts { splits, .. } => Some(splits),
        };
        let (partial, plan, groups) = match product_pass(o, store, epilogue, silu_of, (m, n, k)) {
            None => {
                return Err(contract(format!(
                    "`{}{name}` reads partial products, but is not a split-K on the 64-row tensor-core tile",
                    self.prefix
                )))
            }
            Some(Pass::Whole { key, groups }) => {
                let p = Params::one(&params);
                self.op(name, key, shape, &args, p, groups, (flops, bytes))?;
                self.then_norm(then, out)?;
                return Ok(None);
            }
            Some(Pass::Split { key, plan, groups }) => (key, plan, groups),
        };
        let splits = plan.splits;
        let a_bytes = match a {
            Operand::Tensor(_) => m * k * elem,
            Operand::SiluOfParts { splits, .. } => m * k * 4 * splits as usize,
        };
        let reads = (a_bytes, elem);
        let parts = self.temp(
            &format!("{name}.partials"),
            Scalar::F32,
            m * n * splits as usize,
        );
        self.partials(
            name,
            partial,
            &shape,
            [x, w, parts],
            &plan,
            groups,
            flops,
            reads,
        )?;
        // A reduction that writes whole rows of the residual takes the AdaLN that follows.
        let fuse = matches!(epilogue, Epilogue::Accumulate | Epilogue::AddRows);
        if let (Some(norm), true, Some(ctx)) = (&then, fuse, self.norms) {
            if let Some(lin) = norm.linear {
                let f16 = store == Store::F16;
                if o.norm_linear_fused
                    && o.subgroups
                    && !o.software
                    && f16
                    && reduce_linear_fusable(m, n)
                {
                    let io = [parts, out, extra];
                    return self
                        .reduce_norm_linear(name, epilogue, io, (&plan, period), norm, lin)
                        .map(Some);
                }
            }
            let ps = ctx.reduce_norm(norm.index, &plan, period);
            let y = self.norm_output(norm);
            self.op(
                &format!("{name}.reduce+{}", norm.name),
                Key::SplitkReduceAdaLn {
                    epilogue,
                    subgroups: o.subgroups,
                    store,
                },
                format!("{m}×{n} ×{splits}"),
                &[
                    ("parts", parts),
                    ("c", out),
                    ("extra", extra),
                    ("mods", ctx.mods),
                    ("y", y),
                ],
                Params::per_slot(&ps),
                [m as u32, 1, 1],
                (
                    (m * n * (splits as usize + 8)) as f64,
                    reduce_bytes(&plan, epilogue, store, period) + (m * n * elem) as f64,
                ),
            )?;
            return Ok(None);
        }
        let e = (epilogue, store);
        self.reduce(name, e, [parts, out, extra], &plan, period)?;
        self.then_norm(then, out)?;
        Ok(None)
    }

    /// The reduction of `plan`'s partial products `parts` through `epilogue` (into the
    /// residual `out`, or `extra`'s rows added), the AdaLN `norm` of each row and the
    /// product `lin` of the normalized rows, in one dispatch
    /// ([`Key::SplitkReduceAdaLnLinear`]: [`LINEAR_GROUPS`] workgroups a row, each
    /// computing the row). An accumulated residual is read from `out` and written to a new
    /// tensor, which it returns (the row's workgroups may still read `out`); rows added to
    /// `extra` are written to `out`.
    fn reduce_norm_linear(
        &mut self,
        name: &str,
        epilogue: Epilogue,
        [parts, out, extra]: [TensorId; 3],
        (plan, period): (&MatmulPlan, usize),
        norm: &Norm,
        lin: NormLinear,
    ) -> Result<TensorId, RuntimeError> {
        let ctx = self.norms.expect("norms are planned after their context");
        let (m, n, _) = plan.shape;
        let splits = plan.splits;
        let (c, h) = match epilogue {
            Epilogue::Accumulate => (
                out,
                self.temp("residual", self.tensors[out.0].scalar, m * n),
            ),
            _ => (self.unused(), out),
        };
        let ps: Vec<ReduceNormLinearParams> = ctx
            .reduce_norm(norm.index, plan, period)
            .iter()
            .map(|p| p.then_linear(lin.n as u32))
            .collect();
        let elem = ctx.elem();
        let flops = (m * n * (splits as usize + 8) + 2 * m * n * lin.n) as f64;
        let bytes = reduce_bytes(plan, epilogue, ctx.store, period)
            + ((lin.n * n + m * lin.n) * elem) as f64;
        let lin_name = self.tensors[lin.out.0].name.clone();
        let op = lin_name.strip_prefix(&self.prefix).unwrap_or(&lin_name);
        self.op(
            &format!("{name}.reduce+{}+{op}", norm.name),
            Key::SplitkReduceAdaLnLinear {
                epilogue,
                store: ctx.store,
            },
            format!("{m}×{n} ×{splits} →{}", lin.n),
            &[
                ("parts", parts),
                ("c", c),
                ("extra", extra),
                ("mods", ctx.mods),
                ("w", lin.w),
                ("h", h),
                ("out", lin.out),
            ],
            Params::per_slot(&ps),
            [m as u32, LINEAR_GROUPS, 1],
            (flops, bytes),
        )?;
        Ok(h)
    }

    /// The reduction of `plan`'s partial products `parts` into `out` (stored as `store`)
    /// through `epilogue` (`extra`: its row table, `period` rows).
    fn reduce(
        &mut self,
        name: &str,
        (epilogue, store): (Epilogue, Store),
        [parts, out, extra]: [TensorId; 3],
        plan: &MatmulPlan,
        period: usize,
    ) -> Result<(), RuntimeError> {
        let (m, n, _) = plan.shape;
        let splits = plan.splits as usize;
        self.op(
            &format!("{name}.reduce"),
            Key::SplitkReduce { epilogue, store },
            format!("{m}×{n} ×{splits}"),
            &[("parts", parts), ("c", out), ("extra", extra)],
            Params::one(&plan.reduce_params(period as u32)),
            lin(m * n),
            (
                (m * n * splits) as f64,
                reduce_bytes(plan, epilogue, store, period),
            ),
        )
    }

    /// The partial products of `plan` (a split-K) into `parts` (f32, `splits × m × n`);
    /// `a_bytes` is what reading A costs, `elem` the bytes of one of W's values.
    #[allow(clippy::too_many_arguments)]
    fn partials(
        &mut self,
        name: &str,
        key: Key,
        shape: &str,
        [x, w, parts]: [TensorId; 3],
        plan: &MatmulPlan,
        groups: [u32; 3],
        flops: f64,
        (a_bytes, elem): (usize, usize),
    ) -> Result<(), RuntimeError> {
        let (m, n, k) = plan.shape;
        let splits = plan.splits as usize;
        let unused = self.unused();
        self.op(
            &format!("{name}.partial"),
            key,
            format!("{shape} K/{splits}"),
            &[("a", x), ("w", w), ("c", parts), ("extra", unused)],
            Params::one(&plan.partial_params()),
            [groups[0], groups[1], plan.splits],
            (flops, (a_bytes + n * k * elem + m * n * splits * 4) as f64),
        )
    }

    /// MLP in (through SiLU) and MLP out (accumulated into `h`, then `then`) as
    /// [`mlp_fusion`] split them: MLP in's partial products are not reduced; MLP
    /// out reads them (with `o.mlp_fused`; else a reduction between them).
    #[allow(clippy::too_many_arguments)]
    fn mlp_fused(
        &mut self,
        o: &Options,
        store: Store,
        [x, w_in, w_out, h]: [TensorId; 4],
        (rows, hid, d): (usize, usize, usize),
        (splits, groups): (u32, [u32; 3]),
        then: Option<Norm>,
    ) -> Result<Option<TensorId>, RuntimeError> {
        let shape = (rows, hid, d);
        let plan = MatmulPlan {
            splits,
            ..plan_matmul(&o.tiles, shape, SCRATCH_FLOATS)
        };
        let flops = 2.0 * (rows * hid * d) as f64;
        let parts = self.temp("mlp_in.partials", Scalar::F32, rows * hid * splits as usize);
        self.partials(
            "mlp_in",
            Key::CoopPartial { small: true },
            &format!("{rows}×{hid}×{d}"),
            [x, w_in, parts],
            &plan,
            groups,
            flops,
            (rows * d * 2, 2),
        )?;
        let e = Epilogue::Accumulate;
        let shape = (rows, d, hid);
        if !o.mlp_fused {
            // The same split, its reduction as its own op: the fusion alone is what
            // `WEBDIT_NO_MLP_FUSION` changes.
            let ff = self.temp("mlp", Scalar::F16, rows * hid);
            let unused = self.unused();
            self.reduce(
                "mlp_in",
                (Epilogue::Silu, store),
                [parts, ff, unused],
                &plan,
                1,
            )?;
            return self.linear(o, "mlp_out", store, e, [ff, w_out, h], None, shape, 1, then);
        }
        let a = Operand::SiluOfParts { parts, splits };
        self.linear_of(o, "mlp_out", store, e, a, [w_out, h], None, shape, 1, then)
    }

    /// Attention by rows of one head, its output projection (`w_t`, transposed) accumulated
    /// into the residual `h`, and the AdaLN `norm` of the new residual, in one dispatch.
    fn attention_out(
        &mut self,
        c: &Config,
        store: Store,
        [qkv, w_t, h]: [TensorId; 3],
        batch: usize,
        norm: Norm,
    ) -> Result<(), RuntimeError> {
        let ctx = self.norms.expect("norms are planned after their context");
        let (n, d, dh) = (c.tokens(), c.dim, c.dim_head);
        let width = attention_rows_width(dh).expect("fusable: planned by rows");
        let whole = AttentionParams::new(n as u32, dh as u32, 1);
        let ps: Vec<AttentionOutParams> = (0..ctx.slots)
            .map(|slot| {
                let a = ctx.adaln(slot, norm.index);
                AttentionOutParams {
                    n: n as u32,
                    dh: dh as u32,
                    scale: whole.scale,
                    d: d as u32,
                    mod_stride: a.mod_stride,
                    scale_at: a.scale_at,
                    shift_at: a.shift_at,
                }
            })
            .collect();
        let rows = batch * n;
        let elem = ctx.elem();
        let flops = (4 * rows * n * dh + 2 * rows * d * dh + 8 * rows * d) as f64;
        let bytes = (3 * rows * dh + dh * d + 3 * rows * d) * elem + 2 * batch * d * 4;
        self.op(
            &format!("attention+attention_out+{}", norm.name),
            Key::AttentionRowsOut { width, store },
            format!("{batch}×1×{n}×{dh} →{d}"),
            &[
                ("qkv", qkv),
                ("w", w_t),
                ("h", h),
                ("mods", ctx.mods),
                (
                    "y",
                    norm.y
                        .expect("the fused attention's AdaLN writes a given tensor"),
                ),
            ],
            Params::per_slot(&ps),
            [(n as u32).div_ceil(ROWS), 1, batch as u32],
            (flops, bytes as f64),
        )
    }

    /// The AdaLN `then` asks for, of `x`, as its own dispatch.
    fn then_norm(&mut self, then: Option<Norm>, x: TensorId) -> Result<(), RuntimeError> {
        let Some(norm) = then else { return Ok(()) };
        let ctx = self.norms.expect("norms are planned after their context");
        let prefix = std::mem::take(&mut self.prefix);
        let ps: Vec<AdaLnParams> = (0..ctx.slots).map(|s| ctx.adaln(s, norm.index)).collect();
        let (rows, d) = (ctx.rows, ctx.d);
        let y = self.norm_output(&norm);
        let result = self.op(
            &norm.name,
            ctx.adaln,
            format!("{rows}×{d}"),
            &[("x", x), ("mods", ctx.mods), ("y", y)],
            Params::per_slot(&ps),
            [rows as u32, 1, 1],
            (
                (8 * rows * d) as f64,
                (2 * rows * d * ctx.elem() + 2 * ctx.batch * d * 4) as f64,
            ),
        );
        self.prefix = prefix;
        result
    }
}

impl Plan {
    /// The plan for `batch` images of model `c` following `steps` (all images share each
    /// step's t), or, with `ts`, one forward pass at timesteps `ts` (one per image).
    pub fn build(
        c: &Config,
        o: &Options,
        batch: usize,
        steps: &[Step],
        heads: Heads,
        ts: Option<&[f32]>,
    ) -> Result<Plan, RuntimeError> {
        if batch == 0 {
            return Err(RuntimeError::NoBatch);
        }
        if !c.dim_head.is_multiple_of(4) {
            return Err(RuntimeError::Unsupported(format!(
                "dim_head {} is not a multiple of 4 (attention reads vec4s)",
                c.dim_head
            )));
        }
        let store = match o.precision {
            Precision::F32 => Store::F32,
            Precision::F16 => Store::F16,
        };
        let act = match store {
            Store::F32 => Scalar::F32,
            Store::F16 => Scalar::F16,
        };
        let ts: Vec<f32> = match ts {
            Some(ts) => ts.to_vec(),
            None => steps
                .iter()
                .flat_map(|s| std::iter::repeat_n(s.t as f32, batch))
                .collect(),
        };
        let (n, d, pd, inner, hid) = (c.tokens(), c.dim, c.patch_dim(), c.inner(), c.hidden());
        let rows = batch * n;
        let mut b = Builder {
            tensors: vec![],
            ops: vec![],
            phase: Phase::Precompute,
            prefix: String::new(),
            unused: None,
            norms: None,
        };
        for (name, len) in weights(c) {
            let scalar = weight_scalar(&name, o.precision);
            b.tensor(&name, scalar, len, TensorKind::Weight);
        }
        let weight = |b: &Builder, name: &str| b.named(name).expect("a weight of the model");
        let img = batch * c.image_len();
        let image = b.tensor("image", Scalar::F32, img, TensorKind::State);
        let seed = b.tensor("seed", Scalar::U32, 2, TensorKind::State);
        let mw = norm_names(c).len() * 2 * d;
        let tr = ts.len().max(1);
        let slots = tr / batch;
        let mods = b.tensor("modulations", Scalar::F32, tr * mw, TensorKind::State);

        // The timestep path for every step at once (f32), once.
        let t_bytes = bytemuck::cast_slice(if ts.is_empty() { &[0.0f32] } else { &ts }).to_vec();
        let t = b.tensor("timesteps", Scalar::F32, tr, TensorKind::Constant(t_bytes));
        let temb = b.tensor("time.sinusoid", Scalar::F32, tr * d / 2, TensorKind::State);
        let te1 = b.tensor(
            "time.hidden",
            Scalar::F32,
            tr * c.time_emb_dim,
            TensorKind::State,
        );
        let te = b.tensor(
            "time.embedding",
            Scalar::F32,
            tr * c.time_emb_dim,
            TensorKind::State,
        );
        b.op(
            "time.sinusoid",
            Key::TimestepEmbedding,
            format!("{tr}×{}", d / 2),
            &[("t", t), ("out", temb)],
            Params::one(&SinusParams {
                width: (d / 2) as u32,
                total: (tr * d / 2) as u32,
            }),
            lin(tr * d / 2),
            (0.0, (tr * d / 2 * 4) as f64),
        )?;
        let time_linear = |b: &mut Builder,
                           name: &str,
                           [x, w, out]: [TensorId; 3],
                           (nn, k): (usize, usize),
                           silu: bool|
         -> Result<(), RuntimeError> {
            if tr <= 16 {
                b.op(
                    name,
                    Key::Matvec { silu },
                    format!("{tr}×{nn}×{k}"),
                    &[("x", x), ("w", w), ("y", out)],
                    Params::one(&MatvecParams {
                        n: nn as u32,
                        k: k as u32,
                    }),
                    [(nn as u32).div_ceil(OUTPUTS), tr as u32, 1],
                    (
                        2.0 * (tr * nn * k) as f64,
                        ((tr * k + nn * k + tr * nn) * 4) as f64,
                    ),
                )
            } else {
                let e = if silu { Epilogue::Silu } else { Epilogue::None };
                b.linear(
                    o,
                    name,
                    Store::F32,
                    e,
                    [x, w, out],
                    None,
                    (tr, nn, k),
                    1,
                    None,
                )
                .map(|_| ())
            }
        };
        let (time1, time3, mods_w) = (weight(&b, "time1"), weight(&b, "time3"), weight(&b, "mods"));
        time_linear(
            &mut b,
            "time.mlp_in",
            [temb, time1, te1],
            (c.time_emb_dim, d / 2),
            true,
        )?;
        time_linear(
            &mut b,
            "time.mlp_out",
            [te1, time3, te],
            (c.time_emb_dim, c.time_emb_dim),
            false,
        )?;
        time_linear(
            &mut b,
            "time.modulations",
            [te, mods_w, mods],
            (mw, c.time_emb_dim),
            false,
        )?;

        b.norms = Some(NormCtx {
            mods,
            mod_stride: mw,
            slots,
            batch,
            rows,
            rows_per_batch: n,
            d,
            adaln: if o.software && store == Store::F32 {
                Key::AdaLnSerial
            } else {
                Key::AdaLn {
                    subgroups: o.subgroups,
                    store,
                }
            },
            store,
        });
        // The image in token layout, what the patch embedding reads; the model's output
        // (eps) in token layout, what the sampler reads. Sampling keeps both across steps
        // (the sampler writes the next step's tokens), so a step has no layout dispatches.
        let patch = PatchParams {
            channels: c.channels as u32,
            size: c.input as u32,
            patch: c.patch as u32,
            total: img as u32,
        };
        let layout_cost = (0.0, (img * (4 + act.size() as usize)) as f64);
        let patches = b.tensor("tokens", act, rows * pd, TensorKind::State);
        // Where the to-pixels product splits K and only eps is sampled, eps stays f32: the
        // sampler sums its partial products itself (`eps_fused`: the reduction's dispatch
        // goes), or reads their f32 sum (the same bits).
        let to_pixels = (rows, pd, d);
        let eps_split = match product_pass(o, store, Epilogue::None, None, to_pixels) {
            Some(Pass::Split { key, plan, groups }) if heads == Heads::Eps => {
                Some((key, plan, groups))
            }
            _ => None,
        };
        let (pix, splits) = match &eps_split {
            Some((_, plan, _)) if o.eps_fused => {
                let len = rows * pd * plan.splits as usize;
                let name = "final.to_pixels.partials";
                (
                    b.tensor(name, Scalar::F32, len, TensorKind::State),
                    plan.splits,
                )
            }
            Some(_) => (
                b.tensor("eps_tokens", Scalar::F32, rows * pd, TensorKind::State),
                1,
            ),
            None => (b.tensor("eps_tokens", act, rows * pd, TensorKind::State), 1),
        };
        let sampler_key = match (store, &eps_split) {
            (Store::F16, Some(_)) => Key::SamplerStepOfParts,
            _ => Key::SamplerStep { store },
        };
        let eps_bytes = rows * pd * splits as usize * b.tensors[pix.0].scalar.size() as usize;
        let sampler = |b: &mut Builder, name: &str, p: Vec<StepParams>| {
            b.op(
                name,
                sampler_key,
                format!("{img}"),
                &[
                    ("x", image),
                    ("eps", pix),
                    ("tokens", patches),
                    ("seed", seed),
                ],
                Params::per_slot(&p),
                lin(img),
                (0.0, (img * (8 + act.size() as usize) + eps_bytes) as f64),
            )
        };
        let sp = |s: &Step| {
            let [u, v] = s.x0.unwrap_or([0.0, 0.0]);
            StepParams {
                n: img as u32,
                channels: patch.channels,
                size: patch.size,
                patch: patch.patch,
                stream: s.t as u32,
                a: s.a,
                b: s.b,
                c: s.c,
                clip: s.x0.is_some() as u32,
                u,
                v,
                splits,
                part_len: (rows * pd) as u32,
            }
        };
        if heads == Heads::Eps {
            // The initial noise: stream T, x = z.
            b.phase = Phase::Init;
            let init = Step {
                t: c.steps,
                a: 0.0,
                b: 0.0,
                c: 1.0,
                x0: None,
            };
            sampler(&mut b, "init_noise", vec![sp(&init)])?;
        }

        // The model.
        b.phase = Phase::Model;
        if heads == Heads::Both {
            // A forward pass of the image the host wrote.
            b.op(
                "patchify",
                Key::Patchify { store },
                format!("{img}"),
                &[("image", image), ("tokens", patches)],
                Params::one(&patch),
                lin(img),
                layout_cost,
            )?;
        }
        let mut h = b.temp("residual", act, rows * d);
        let (pe, pos) = (weight(&b, "patch_embed"), weight(&b, "pos"));
        // Each block's qkv, planned with the AdaLN before it where they fuse.
        let qkv_of = |b: &mut Builder, i: usize| NormLinear {
            w: weight(b, &format!("blocks.{i}.qkv")),
            out: b.tensor(
                &format!("block{i}.qkv"),
                act,
                rows * 3 * inner,
                TensorKind::Transient,
            ),
            n: 3 * inner,
        };
        let mut qkv_next = qkv_of(&mut b, 0);
        let norm1 = Norm {
            name: "block0.norm1".into(),
            index: 0,
            y: None,
            linear: Some(qkv_next),
        };
        let mut qkv_done = b
            .linear(
                o,
                "patch_embed",
                store,
                Epilogue::AddRows,
                [patches, pe, h],
                Some(pos),
                (rows, d, pd),
                n,
                Some(norm1),
            )?
            .is_some();
        // Attention, with its keys cut into slices where the grid is too small for the GPU.
        let width = attention_width(c.dim_head).expect("config validated");
        let whole = AttentionParams::new(n as u32, c.dim_head as u32, c.heads as u32);
        let att = whole.split(if o.software {
            1
        } else {
            attention_chunks(n, c.heads, batch)
        });
        let q_blocks = (n as u32).div_ceil(BQ);
        let (n_heads, nb) = (c.heads as u32, batch as u32);
        let att_flops = (4 * batch * c.heads * n * n * c.dim_head) as f64;
        let att_bytes = (rows * 4 * inner * act.size() as usize) as f64;
        let by_rows = !o.software && o.attention_rows && attention_by_rows(n, c.dim_head);
        let on_tensor_cores = o.coop
            && o.attention_coop
            && store == Store::F16
            && !by_rows
            && attention_on_tensor_cores(n, c.dim_head, c.heads, batch);
        let attention = |b: &mut Builder, qkv: TensorId, out: TensorId| {
            let shape = format!("{batch}×{}×{n}×{}", c.heads, c.dim_head);
            if on_tensor_cores {
                return b.op(
                    "attention",
                    Key::AttentionCoop {
                        width: c.dim_head as u32,
                    },
                    shape,
                    &[("qkv", qkv), ("out", out)],
                    Params::one(&whole),
                    [(n as u32).div_ceil(COOP_BQ), n_heads, nb],
                    (att_flops, att_bytes),
                );
            }
            if by_rows {
                let width = attention_rows_width(c.dim_head).expect("planned by rows");
                return b.op(
                    "attention",
                    Key::AttentionRows { width, store },
                    shape,
                    &[("qkv", qkv), ("out", out)],
                    Params::one(&whole),
                    [(n as u32).div_ceil(ROWS), n_heads, nb],
                    (att_flops, att_bytes),
                );
            }
            // One kernel for both: with one slice it writes `out` and leaves the (minimal)
            // slice buffers alone; with several, the slices for the combine.
            let rows_all = batch * c.heads * att.chunks as usize * n;
            let split = att.chunks > 1;
            let (p_len, s_len) = if split {
                (rows_all * c.dim_head, rows_all * 2)
            } else {
                (4, 4)
            };
            let parts = b.temp("attention.slices", Scalar::F32, p_len);
            let stats = b.temp("attention.stats", Scalar::F32, s_len);
            let bindings = [
                ("qkv", qkv),
                ("out", out),
                ("parts", parts),
                ("stats", stats),
            ];
            let (name, shape_of, bytes) = if split {
                let slices =
                    rows * 3 * inner * act.size() as usize + rows_all * (c.dim_head + 2) * 4;
                (
                    "attention.split",
                    format!("{shape} /{}", att.chunks),
                    slices as f64,
                )
            } else {
                ("attention", shape.clone(), att_bytes)
            };
            b.op(
                name,
                Key::Attention { width, store },
                shape_of,
                &bindings,
                Params::one(&att),
                [q_blocks * att.chunks, n_heads, nb],
                (att_flops, bytes),
            )?;
            if !split {
                return Ok(());
            }
            let quads = n * c.heads * c.dim_head / 4;
            b.op(
                "attention.combine",
                Key::AttentionCombine { store },
                format!("{shape} /{}", att.chunks),
                &[("parts", parts), ("stats", stats), ("out", out)],
                Params::one(&att),
                [(quads as u32).div_ceil(256), nb, 1],
                (
                    0.0,
                    (rows_all * (c.dim_head + 2) * 4 + rows * inner * act.size() as usize) as f64,
                ),
            )
        };
        let fuse_out = by_rows && o.attention_out_fused && attention_out_fusable(c);
        // Each block's AdaLNs are planned with the product whose residual they normalize
        // (fused into its split-K reduction where there is one).
        for i in 0..c.depth {
            b.prefix = format!("block{i}.");
            let w = |b: &Builder, what: &str| weight(b, &format!("blocks.{i}.{what}"));
            let wout = w(&b, "to_out");
            let (win, wmout) = (w(&b, "mlp_in"), w(&b, "mlp_out"));
            let qkv = qkv_next.out;
            if !qkv_done {
                let y = b
                    .named(&format!("block{i}.norm1"))
                    .expect("its AdaLN is planned");
                let e = Epilogue::None;
                b.linear(
                    o,
                    "qkv",
                    store,
                    e,
                    [y, qkv_next.w, qkv],
                    None,
                    (rows, 3 * inner, d),
                    1,
                    None,
                )?;
            }
            let y2 = b.temp("norm2", act, rows * d);
            let norm2 = Norm {
                name: format!("block{i}.norm2"),
                index: 2 * i + 1,
                y: Some(y2),
                linear: None,
            };
            if fuse_out {
                let w_t = w(&b, "to_out_t");
                b.attention_out(c, store, [qkv, w_t, h], batch, norm2)?;
            } else {
                let att_out = b.temp("attention", act, rows * inner);
                attention(&mut b, qkv, att_out)?;
                let e = Epilogue::Accumulate;
                let shape = (rows, d, inner);
                b.linear(
                    o,
                    "attention_out",
                    store,
                    e,
                    [att_out, wout, h],
                    None,
                    shape,
                    1,
                    Some(norm2),
                )?;
            }
            // The next block's first AdaLN, or the final one.
            let last = i + 1 == c.depth;
            let (name, linear) = if last {
                ("final.norm".to_string(), None)
            } else {
                qkv_next = qkv_of(&mut b, i + 1);
                (format!("block{}.norm1", i + 1), Some(qkv_next))
            };
            let next = Norm {
                name,
                index: 2 * i + 2,
                y: None,
                linear,
            };
            let mlp = [y2, win, wmout, h];
            let residual = if let Some(split) = mlp_fusion(o, store, (rows, hid, d)) {
                b.mlp_fused(o, store, mlp, (rows, hid, d), split, Some(next))?
            } else {
                let ff = b.temp("mlp", act, rows * hid);
                let e = Epilogue::Silu;
                let shape = (rows, hid, d);
                b.linear(o, "mlp_in", store, e, [y2, win, ff], None, shape, 1, None)?;
                let e = Epilogue::Accumulate;
                let shape = (rows, d, hid);
                let then = Some(next);
                b.linear(o, "mlp_out", store, e, [ff, wmout, h], None, shape, 1, then)?
            };
            qkv_done = residual.is_some();
            h = residual.unwrap_or(h);
        }
        b.prefix = "final.".into();
        let y = b
            .named("final.norm")
            .expect("the last block plans the final AdaLN");
        let w = weight(&b, "to_pixels");
        if let Some((key, plan, groups)) = eps_split {
            let (flops, shape) = (2.0 * (rows * pd * d) as f64, format!("{rows}×{pd}×{d}"));
            let reads = (rows * d * act.size() as usize, act.size() as usize);
            let len = rows * pd * plan.splits as usize;
            let parts = match o.eps_fused {
                true => pix,
                false => b.temp("to_pixels.partials", Scalar::F32, len),
            };
            let args = [y, w, parts];
            b.partials("to_pixels", key, &shape, args, &plan, groups, flops, reads)?;
            if !o.eps_fused {
                // Summed in f32, as the fused sampler sums them.
                let unused = b.unused();
                let e = (Epilogue::None, Store::F32);
                b.reduce("to_pixels", e, [parts, pix, unused], &plan, 1)?;
            }
        } else {
            let e = Epilogue::None;
            b.linear(
                o,
                "to_pixels",
                store,
                e,
                [y, w, pix],
                None,
                to_pixels,
                1,
                None,
            )?;
        }
        let mut eps = None;
        let mut x0 = None;
        if heads == Heads::Both {
            let unpatchify = |b: &mut Builder, name: &str, tokens: TensorId, out: TensorId| {
                b.op(
                    name,
                    Key::Unpatchify { store },
                    format!("{img}"),
                    &[("tokens", tokens), ("image", out)],
                    Params::one(&patch),
                    lin(img),
                    layout_cost,
                )
            };
            let e_img = b.tensor("eps", Scalar::F32, img, TensorKind::State);
            unpatchify(&mut b, "unpatchify", pix, e_img)?;
            let x0_img = b.tensor("x0", Scalar::F32, img, TensorKind::State);
            let pix0 = b.temp("x0_pixels", act, rows * pd);
            let (proj, bias) = (weight(&b, "proj_fin"), weight(&b, "proj_bias"));
            // The bias: one row added to every row.
            let e = Epilogue::AddRows;
            let shape = (rows, pd, d);
            b.linear(
                o,
                "x0",
                store,
                e,
                [y, proj, pix0],
                Some(bias),
                shape,
                1,
                None,
            )?;
            unpatchify(&mut b, "x0_unpatchify", pix0, x0_img)?;
            eps = Some(e_img);
            x0 = Some(x0_img);
        }
        b.prefix.clear();

        // The sampler: one uniform per step.
        b.phase = Phase::Update;
        if heads == Heads::Eps && !steps.is_empty() {
            sampler(&mut b, "sampler_step", steps.iter().map(sp).collect())?;
        }
        let title = format!(
            "batch {batch}, {}, {} steps",
            match o.precision {
                Precision::F32 => "f32",
                Precision::F16 => "f16",
            },
            steps.len()
        );
        let plan = Plan {
            title,
            batch,
            tensors: b.tensors,
            ops: b.ops,
            image,
            eps,
            x0,
            seed,
        };
        plan.check_lifetimes()?;
        Ok(plan)
    }

    /// The ops of `phase`.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(move |o| o.phase == phase)
    }

    /// Dispatches of one sampling step (a model evaluation and the update).
    pub fn dispatches_per_step(&self) -> usize {
        self.phase(Phase::Model).count() + self.phase(Phase::Update).count()
    }

    /// For every tensor, the first and last op (index into [`Plan::ops`]) using it.
    fn uses(&self) -> Vec<Option<(usize, usize)>> {
        let mut uses: Vec<Option<(usize, usize)>> = vec![None; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for (_, t) in &op.args {
                let u = &mut uses[t.0];
                *u = Some(u.map_or((i, i), |(a, _)| (a, i)));
            }
        }
        uses
    }

    /// A transient tensor lives within one model evaluation and is written before it is
    /// read there, so that its memory can be shared.
    fn check_lifetimes(&self) -> Result<(), RuntimeError> {
        let uses = self.uses();
        for (id, t) in self.tensors.iter().enumerate() {
            if t.kind != TensorKind::Transient {
                continue;
            }
            let Some((first, last)) = uses[id] else {
                return Err(contract(format!("tensor `{}` is never used", t.name)));
            };
            let outside = (first..=last)
                .filter(|i| self.ops[*i].args.iter().any(|(_, x)| x.0 == id))
                .find(|i| self.ops[*i].phase != Phase::Model);
            if let Some(i) = outside {
                return Err(contract(format!(
                    "transient tensor `{}` is used by `{}` outside the model evaluation",
                    t.name, self.ops[i].name
                )));
            }
            let (reads, writes) = self.ops[first].access();
            if !writes.contains(&TensorId(id)) || reads.contains(&TensorId(id)) {
                return Err(contract(format!(
                    "transient tensor `{}` is read by `{}` before anything writes it",
                    t.name, self.ops[first].name
                )));
            }
        }
        Ok(())
    }

    /// Memory for the transient tensors from their lifetimes: `(slot of each tensor, bytes
    /// of each slot)`; tensors whose lifetimes do not overlap share a slot (best fit, grown
    /// when none fits). Other tensors get `None` (their own buffer, or a weight).
    pub fn allocate(&self) -> (Vec<Option<usize>>, Vec<u64>) {
        let uses = self.uses();
        let mut order: Vec<usize> = (0..self.tensors.len())
            .filter(|i| self.tensors[*i].kind == TensorKind::Transient)
            .collect();
        order.sort_by_key(|i| uses[*i].map(|u| u.0));
        let mut slot_of = vec![None; self.tensors.len()];
        // (bytes, last op using it)
        let mut slots: Vec<(u64, usize)> = vec![];
        for id in order {
            let (first, last) = uses[id].expect("checked: used");
            let need = self.tensors[id].bytes();
            let free = |s: &(u64, usize)| s.1 < first;
            let fit = (0..slots.len())
                .filter(|s| free(&slots[*s]) && slots[*s].0 >= need)
                .min_by_key(|s| slots[*s].0);
            let grow = (0..slots.len())
                .filter(|s| free(&slots[*s]))
                .max_by_key(|s| slots[*s].0);
            let s = match fit.or(grow) {
                Some(s) => s,
                None => {
                    slots.push((0, 0));
                    slots.len() - 1
                }
            };
            slots[s] = (slots[s].0.max(need), last);
            slot_of[id] = Some(s);
        }
        (slot_of, slots.into_iter().map(|s| s.0).collect())
    }
}

impl fmt::Display for Plan {
    /// The plan as Markdown tables: the ops of every phase, then the memory.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |t: &TensorId| self.tensors[t.0].name.as_str();
        writeln!(
            f,
            "{}: {} dispatches per step ({} of the model, {} update), {} once per generation, {} when built\n",
            self.title,
            self.dispatches_per_step(),
            self.phase(Phase::Model).count(),
            self.phase(Phase::Update).count(),
            self.phase(Phase::Init).count(),
            self.phase(Phase::Precompute).count(),
        )?;
        writeln!(
            f,
            "| phase | op | kernel | shape | reads | writes | workgroups | MFLOP | KB |\n|---|---|---|---|---|---|---|---|---|"
        )?;
        for op in &self.ops {
            let (reads, writes) = op.access();
            let list = |v: &[TensorId]| {
                v.iter()
                    .filter(|t| self.tensors[t.0].kind != TensorKind::Unused)
                    .map(name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                f,
                "| {:?} | {} | {} | {} | {} | {} | {}×{}×{} | {:.2} | {:.1} |",
                op.phase,
                op.name,
                op.kernel.name,
                op.shape,
                list(&reads),
                list(&writes),
                op.groups[0],
                op.groups[1],
                op.groups[2],
                op.flops / 1e6,
                op.bytes / 1e3
            )?;
        }
        let (slot_of, slots) = self.allocate();
        let transient: u64 = self
            .tensors
            .iter()
            .filter(|t| t.kind == TensorKind::Transient)
            .map(Tensor::bytes)
            .sum();
        writeln!(
            f,
            "\n{} transient tensors in {} buffers: {:.1} KB instead of {:.1} KB\n",
            slot_of.iter().flatten().count(),
            slots.len(),
            slots.iter().sum::<u64>() as f64 / 1e3,
            transient as f64 / 1e3
        )?;
        writeln!(f, "| buffer | KB | tensors |\n|---|---|---|")?;
        for (s, bytes) in slots.iter().enumerate() {
            let names: Vec<&str> = (0..self.tensors.len())
                .filter(|i| slot_of[*i] == Some(s))
                .map(|i| self.tensors[i].name.as_str())
                .collect();
            writeln!(
                f,
                "| {s} | {:.1} | {} |",
                *bytes as f64 / 1e3,
                names.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{plan as steps_of, Sampler};

    fn options(precision: Precision, subgroups: bool, coop: bool) -> Options {
        Options {
            precision,
            tiles: Tiles::default(),
            subgroups,
            coop,
            coop_split: coop,
            mlp_fused: coop,
            eps_fused: true,
            coop_min_groups: crate::tiers::COOP_MIN_GROUPS,
            software: false,
            attention_rows: true,
            attention_coop: coop,
            attention_out_fused: true,
            norm_linear_fused: true,
        }
    }

    fn plans() -> Vec<Plan> {
        let mut v = vec![];
        for c in [Config::favicon_s(), Config::favicon_b()] {
            let steps = steps_of(&c, Sampler::Ddpm, c.steps).unwrap();
            for batch in [1, 3, 16] {
                for o in [
                    options(Precision::F32, false, false),
                    options(Precision::F16, false, false),
                    options(Precision::F16, true, true),
                ] {
                    v.push(Plan::build(&c, &o, batch, &steps, Heads::Eps, None).unwrap());
                }
            }
            let o = options(Precision::F32, false, false);
            v.push(Plan::build(&c, &o, 2, &[], Heads::Both, Some(&[3.0, 900.0])).unwrap());
            let o = Options {
                software: true,
                ..o
            };
            v.push(Plan::build(&c, &o, 1, &steps, Heads::Eps, None).unwrap());
        }
        v
    }

    /// A software adapter's plan splits nothing: no partial products, reductions or
    /// attention slices, so fewer dispatches (each costs about a millisecond there).
    #[test]
    fn software_plan_splits_nothing() {
        let c = Config::favicon_s();
        let steps = steps_of(&c, Sampler::Ddpm, c.steps).unwrap();
        // Against the GPU plan's splits alone (its fused attention takes fewer dispatches
        // still, but with barriers a software adapter pays for).
        let gpu = Options {
            attention_out_fused: false,
            norm_linear_fused: false,
            ..options(Precision::F32, false, false)
        };
        let sw = Options {
            software: true,
            ..gpu
        };
        let build = |o: &Options| Plan::build(&c, o, 1, &steps, Heads::Eps, None).unwrap();
        let (gpu, sw) = (build(&gpu), build(&sw));
        for op in sw.phase(Phase::Model) {
            let name = op.key.name();
            assert!(
                !name.contains("partial") && !name.contains("reduce") && !name.contains("combine"),
                "{}: {name}",
                op.name
            );
            // In f32, products and norms without workgroup memory or barriers.
            assert!(
                !name.starts_with("matmul") || name.starts_with("matmul_direct"),
                "{}: {name}",
                op.name
            );
            assert!(
                !name.starts_with("adaln") || name == "adaln_serial",
                "{}: {name}",
                op.name
            );
        }
        assert!(
            sw.dispatches_per_step() < gpu.dispatches_per_step(),
            "{} vs {}",
            sw.dispatches_per_step(),
            gpu.dispatches_per_step()
        );
    }

    /// favicon-b's attention runs on tensor cores at batch 1 and 16 (one dispatch a block,
    /// no slices), and in key slices with their combine where the kernel is turned off.
    #[test]
    fn attention_on_tensor_cores_where_the_grid_fills() {
        let c = Config::favicon_b();
        let steps = steps_of(&c, Sampler::Ddpm, c.steps).unwrap();
        let on = options(Precision::F16, true, true);
        let off = Options {
            attention_coop: false,
            ..on
        };
        let count = |o: &Options, batch, key: &dyn Fn(&Key) -> bool| {
            let p = Plan::build(&c, o, batch, &steps, Heads::Eps, None).unwrap();
            p.phase(Phase::Model).filter(|op| key(&op.key)).count()
        };
        let coop = |k: &Key| matches!(k, Key::AttentionCoop { .. });
        let combine = |k: &Key| matches!(k, Key::AttentionCombine { .. });
        for batch in [1, 16] {
            assert_eq!(count(&on, batch, &coop), c.depth);
            assert_eq!(count(&on, batch, &combine), 0);
            assert_eq!(count(&off, batch, &coop), 0);
            assert_eq!(count(&off, batch, &combine), c.depth);
        }
    }

    /// Tensors sharing memory are never alive at once, and every slot holds its tensors.
    #[test]
    fn shared_memory_never_overlaps() {
        for plan in plans() {
            let (slot_of, bytes) = plan.allocate();
            let uses = plan.uses();
            let transients: Vec<usize> = (0..plan.tensors.len())
                .filter(|i| plan.tensors[*i].kind == TensorKind::Transient)
                .collect();
            for &a in &transients {
                let s = slot_of[a].expect("every transient has memory");
                assert!(
                    bytes[s] >= plan.tensors[a].bytes(),
                    "{}",
                    plan.tensors[a].name
                );
                for &b in &transients {
                    if a != b && slot_of[b] == Some(s) {
                        let ((a0, a1), (b0, b1)) = (uses[a].unwrap(), uses[b].unwrap());
                        assert!(
                            a1 < b0 || b1 < a0,
                            "{}: `{}` and `{}` overlap",
                            plan.title,
                            plan.tensors[a].name,
                            plan.tensors[b].name
                        );
                    }
                }
            }
            // Sharing pays: less than half of what a buffer per tensor would take.
            let all: u64 = transients.iter().map(|t| plan.tensors[*t].bytes()).sum();
            assert!(bytes.iter().sum::<u64>() * 2 < all, "{}", plan.title);
        }
    }

    /// Every variant a plan names is in this (native) build, and every op binds what its
    /// kernel declares.
    #[test]
    fn every_key_is_in_the_build() {
        for key in Key::all() {
            assert!(by_key(key).is_some(), "{key:?}");
        }
        for plan in plans() {
            for op in &plan.ops {
                let storage = op
                    .kernel
                    .bindings
                    .iter()
                    .filter(|p| p.kind != Binding::Uniform);
                assert_eq!(storage.count(), op.args.len(), "{}", op.name);
            }
        }
    }

    fn builder() -> Builder {
        Builder {
            tensors: vec![],
            ops: vec![],
            phase: Phase::Model,
            prefix: "block0.".into(),
            unused: None,
            norms: None,
        }
    }

    /// A plan that does not match its kernel is an error naming the op and the parameter.
    #[test]
    fn contract_mismatches_are_errors() {
        let mut b = builder();
        let x = b.temp("x", Scalar::F32, 64);
        let h = b.temp("h", Scalar::F16, 64);
        let w = b.tensor("w", Scalar::F32, 64, TensorKind::Weight);
        let key = Key::AdaLn {
            subgroups: false,
            store: Store::F32,
        };
        let p = || {
            Params::one(&AdaLnParams {
                d: 8,
                rows_per_batch: 8,
                mod_stride: 16,
                scale_at: 0,
                shift_at: 8,
            })
        };
        let err = |b: &mut Builder, args: &[(&'static str, TensorId)], params: Params| {
            b.op(
                "norm1",
                key,
                String::new(),
                args,
                params,
                [1, 1, 1],
                (0.0, 0.0),
            )
            .unwrap_err()
            .to_string()
        };
        let msg = err(&mut b, &[("x", x), ("mods", w), ("out", x)], p());
        assert_eq!(
            msg,
            "forward plan: op `block0.norm1` (kernel `adaln`): the kernel has no parameter `out`"
        );
        let msg = err(&mut b, &[("x", h), ("mods", w), ("y", x)], p());
        assert!(
            msg.ends_with("`x` holds F32, but tensor `block0.h` is F16"),
            "{msg}"
        );
        let msg = err(&mut b, &[("x", x), ("mods", w)], p());
        assert!(msg.ends_with("parameter `y` is not bound"), "{msg}");
        let msg = err(&mut b, &[("x", x), ("mods", x), ("y", w)], p());
        assert!(
            msg.ends_with("`y` is written, but `w` is read-only"),
            "{msg}"
        );
        let msg = err(
            &mut b,
            &[("x", x), ("mods", w), ("y", x)],
            Params::one(&PatchParams {
                channels: 3,
                size: 8,
                patch: 4,
                total: 192,
            }),
        );
        assert!(
            msg.ends_with("the uniform `p` is AdaLnParams, but the op passes PatchParams"),
            "{msg}"
        );
        assert!(b.ops.is_empty());
    }

    /// A transient read before anything writes it is refused when the plan is checked.
    #[test]
    fn reading_an_unwritten_transient_is_an_error() {
        let mut b = builder();
        let (x, y) = (b.temp("x", Scalar::F32, 64), b.temp("y", Scalar::F32, 64));
        let mods = b.tensor("mods", Scalar::F32, 64, TensorKind::State);
        let p = Params::one(&AdaLnParams {
            d: 8,
            rows_per_batch: 8,
            mod_stride: 16,
            scale_at: 0,
            shift_at: 8,
        });
        let key = Key::AdaLn {
            subgroups: false,
            store: Store::F32,
        };
        b.op(
            "norm",
            key,
            String::new(),
            &[("x", x), ("mods", mods), ("y", y)],
            p,
            [1, 1, 1],
            (0.0, 0.0),
        )
        .unwrap();
        let plan = Plan {
            title: String::new(),
            batch: 1,
            tensors: b.tensors,
            ops: b.ops,
            image: mods,
            eps: None,
            x0: None,
            seed: mods,
        };
        let msg = plan.check_lifetimes().unwrap_err().to_string();
        assert!(
            msg.contains("`block0.x` is read by `block0.norm` before anything writes it"),
            "{msg}"
        );
    }
}
