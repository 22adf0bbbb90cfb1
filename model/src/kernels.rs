//! The WGSL of every registered kernel variant, compiled from the DSL by `build.rs` and
//! embedded in the binary, with what the runtime needs to bind it.

use webdit_dsl::ir::{self, Scalar};
pub use webdit_kernels::Key;

/// How a kernel parameter is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Storage,
    StorageReadWrite,
    Uniform,
}

/// One parameter of a kernel, as the `#[kernel]` function declares it: the contract the
/// runtime binds by (by name, checking element type and access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The kernel function's parameter name.
    pub name: &'static str,
    pub kind: Binding,
    /// The scalar type of a storage array's elements (of its vectors' components; `None`
    /// for an array of structs).
    pub scalar: Option<Scalar>,
    /// The name of a uniform's `#[derive(Uniform)]` struct.
    pub uniform: Option<&'static str>,
}

impl Param {
    /// The description of a kernel's binding.
    pub fn of(b: &ir::Binding) -> Param {
        let name: &'static str = Box::leak(b.name.clone().into_boxed_str());
        match &b.kind {
            ir::BindingKind::Storage { elem, writable } => Param {
                name,
                kind: if *writable {
                    Binding::StorageReadWrite
                } else {
                    Binding::Storage
                },
                scalar: elem.element_scalar(),
                uniform: None,
            },
            ir::BindingKind::Uniform(layout) => Param {
                name,
                kind: Binding::Uniform,
                scalar: None,
                uniform: Some(Box::leak(layout.name.clone().into_boxed_str())),
            },
        }
    }

    /// Whether the kernel writes the buffer.
    pub fn writes(&self) -> bool {
        self.kind == Binding::StorageReadWrite
    }
}

/// One compiled kernel variant.
#[derive(Debug)]
pub struct KernelSource {
    /// The registry's variant name (`Key::name`).
    pub name: &'static str,
    /// The WGSL entry point.
    pub entry: &'static str,
    /// The compile-time parameters it was built with.
    pub params: &'static str,
    pub wgsl: &'static str,
    pub workgroup_size: [u32; 3],
    /// The kernel's parameters, in binding order.
    pub bindings: &'static [Param],
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

/// The variant `key`, if this build has it (a web build leaves the native-only ones out).
pub fn by_key(key: Key) -> Option<&'static KernelSource> {
    by_name(&key.name())
}

/// Whether every tensor-core variant of this build fits `limits` (they take up to ~48 KiB
/// of workgroup memory and 512 invocations): an adapter with cooperative matrices but less
/// of either runs the f16 kernels instead of failing to build its plan.
pub fn tensor_cores_fit(limits: &wgpu::Limits) -> bool {
    ALL.iter()
        .filter(|k| k.coop)
        .all(|k| k.beyond(limits).is_none())
}

impl KernelSource {
    /// The first need of this kernel that `limits` does not grant, as `(what, needed,
    /// granted)`: its workgroup memory, or its invocations per workgroup.
    pub fn beyond(&self, limits: &wgpu::Limits) -> Option<(&'static str, u32, u32)> {
        let invocations = self.workgroup_size.iter().product::<u32>();
        [
            (
                "bytes of workgroup memory",
                self.workgroup_storage,
                limits.max_compute_workgroup_storage_size,
            ),
            (
                "invocations per workgroup",
                invocations,
                limits.max_compute_invocations_per_workgroup,
            ),
        ]
        .into_iter()
        .find(|(_, needed, granted)| needed > granted)
    }

    /// A source for a kernel compiled at run time (tests, tile sweeps): `wgsl` is what
    /// `webdit_codegen::compile` wrote for `kernel`. Leaks, like the embedded ones are static.
    pub fn leak(
        name: &str,
        kernel: &webdit_dsl::ir::Kernel,
        wgsl: String,
    ) -> &'static KernelSource {
        let bindings: Vec<Param> = kernel.bindings.iter().map(Param::of).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tensor-core variants fit what an H100/H200 grants through Vulkan (48 KiB, 1024
    /// invocations), and an adapter granting less of either plans without them.
    #[test]
    fn tensor_cores_need_their_limits() {
        assert!(
            ALL.iter().any(|k| k.coop),
            "the native build has tensor-core variants"
        );
        let limits = |storage, invocations| wgpu::Limits {
            max_compute_workgroup_storage_size: storage,
            max_compute_invocations_per_workgroup: invocations,
            ..Default::default()
        };
        assert!(tensor_cores_fit(&limits(49152, 1024)));
        assert!(!tensor_cores_fit(&limits(32768, 1024)));
        assert!(!tensor_cores_fit(&limits(49152, 256)));
        // What the first one a plan would lay out lacks, for its error.
        let k = ALL.iter().find(|k| k.coop).unwrap();
        let (what, needed, granted) = k.beyond(&limits(49152, 32)).unwrap();
        assert_eq!((what, granted), ("invocations per workgroup", 32));
        assert!(needed > 32);
    }
}
