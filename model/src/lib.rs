//! Web DiT's runtime: the DiT on wgpu, from kernels written in the DSL and compiled to WGSL
//! at build time; a CPU reference of the same model; checkpoints; samplers.

pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod forward;
pub mod gpu;
pub mod kernels;
pub mod noise;
#[cfg(not(target_arch = "wasm32"))]
pub mod pipeline_cache;
pub mod pixels;
pub mod runtime;
pub mod sampler;
pub mod tiers;
pub mod wts1;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::Config;
pub use gpu::{Compiled, Gpu, GpuError, Kernel};
pub use runtime::{Generator, GpuModel, HostWeights, Precision, RuntimeError};
pub use sampler::{plan, Sampler, Step};

#[cfg(feature = "embedded-weights")]
/// The shipped default model (`favicon-s` trained on emoji; see
/// `model/weights/favicon-s-emoji/ATTRIBUTION.md`), embedded in the binary.
pub fn default_checkpoint() -> Result<Checkpoint, CheckpointError> {
    let files = checkpoint::Files {
        files: webdit_weights::SHARDS
            .iter()
            .map(|&(name, bytes)| (name.into(), bytes))
            .collect(),
        index: Some(webdit_weights::INDEX),
    };
    Checkpoint::from_files(files, None)
}
