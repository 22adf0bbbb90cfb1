//! The kernels of Web DiT, written in the DSL, and the registry of every variant the model
//! uses. `model/build.rs` compiles the registry to WGSL at build time.

pub mod attention;
pub mod attention_coop;
pub mod elementwise;
pub mod layout;
pub mod matmul;
pub mod matmul_coop;
pub mod matvec;
pub mod norm;
mod registry;
pub mod sampler;

pub use registry::{
    attention_rows_width, attention_width, registry, CoopTile, Key, Store, Tier, Tiles, Variant,
    ATTENTION_COOP_WIDTHS, ATTENTION_ROWS_WIDTHS, ATTENTION_WIDTHS, COOP_FILL_EPILOGUES,
    COOP_LARGE_EPILOGUES, COOP_SILU_PARTS, MATMUL_TIERS,
};
