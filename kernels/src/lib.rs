//! The kernels of Web DiT, written in the DSL.
pub mod elementwise;
pub use elementwise::*;
