//! The kernels of Web DiT, written in the DSL, and the registry of every variant the model
//! uses. `model/build.rs` compiles the registry to WGSL at build time.

pub mod elementwise;
pub mod matmul;
pub mod norm;
mod registry;

pub use registry::{registry, Tiles, Variant};
