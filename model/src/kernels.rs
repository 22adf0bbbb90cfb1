//! The WGSL of every registered kernel variant, compiled from the DSL by `build.rs` and
//! embedded in the binary, with what the runtime needs to bind it.

/// How a kernel parameter is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Storage,
    StorageReadWrite,
    Uniform,
}

/// One compiled kernel variant.
#[derive(Debug)]
pub struct KernelSource {
    /// The registry's variant name.
    pub name: &'static str,
    /// The WGSL entry point.
    pub entry: &'static str,
    /// The compile-time parameters it was built with.
    pub params: &'static str,
    pub wgsl: &'static str,
    pub workgroup_size: [u32; 3],
    pub bindings: &'static [Binding],
    /// Needs `shader-f16`.
    pub f16: bool,
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The variant called `name`.
pub fn by_name(name: &str) -> Option<&'static KernelSource> {
    ALL.iter().copied().find(|k| k.name == name)
}
