//! Web DiT's runtime: the DiT on wgpu, from kernels written in the DSL and compiled to WGSL
//! at build time.

pub mod gpu;
pub mod kernels;
pub mod noise;

pub use gpu::{Gpu, GpuError, Kernel};
