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
    /// Bytes of workgroup memory (more than WebGPU's 16 KiB only in native-only variants).
    pub workgroup_storage: u32,
    /// Needs subgroups (native only).
    pub subgroups: bool,
    /// Needs cooperative matrices (native only).
    pub coop: bool,
    /// Runs in every WebGPU browser (WebGPU's default limits, no native extensions); the
    /// web build embeds only these.
    pub portable: bool,
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The variant called `name`.
pub fn by_name(name: &str) -> Option<&'static KernelSource> {
    ALL.iter().copied().find(|k| k.name == name)
}

impl KernelSource {
    /// A source for a kernel compiled at run time (tests, tile sweeps): `wgsl` is what
    /// `webdit_codegen::compile` wrote for `kernel`. Leaks, like the embedded ones are static.
    pub fn leak(
        name: &str,
        kernel: &webdit_dsl::ir::Kernel,
        wgsl: String,
    ) -> &'static KernelSource {
        use webdit_dsl::ir::BindingKind;
        let bindings: Vec<Binding> = kernel
            .bindings
            .iter()
            .map(|b| match &b.kind {
                BindingKind::Storage { writable: true, .. } => Binding::StorageReadWrite,
                BindingKind::Storage {
                    writable: false, ..
                } => Binding::Storage,
                BindingKind::Uniform(_) => Binding::Uniform,
            })
            .collect();
        let s = |v: String| -> &'static str { Box::leak(v.into_boxed_str()) };
        Box::leak(Box::new(KernelSource {
            name: s(name.to_string()),
            entry: s(kernel.name.clone()),
            params: s(kernel.params.clone()),
            wgsl: s(wgsl),
            workgroup_size: kernel.workgroup_size,
            bindings: Box::leak(bindings.into_boxed_slice()),
            f16: kernel.uses_f16(),
            workgroup_storage: kernel.workgroup_storage_bytes(),
            subgroups: kernel.uses_subgroups(),
            coop: kernel.uses_coop(),
            portable: kernel.is_portable(),
        }))
    }
}
