//! The WGSL of every registered kernel variant (and of the matmul at every tile choice),
//! snapshotted so that every change to generated code is reviewed as a diff
//! (`cargo insta review`).

use webdit_kernels::matmul::{matmul_wide, Epilogue};
use webdit_kernels::{registry, Tiles};
use webdit_model::kernels;

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn wgsl(kernel: &webdit_dsl::ir::Kernel) -> String {
    webdit_codegen::compile(kernel)
        .unwrap_or_else(|e| panic!("{e}"))
        .wgsl
}

#[test]
fn wgsl_of_every_registered_variant() {
    settings().bind(|| {
        for v in registry(&Tiles::default()) {
            insta::assert_snapshot!(v.name.clone(), wgsl(&v.kernel));
        }
    });
}

#[test]
fn wgsl_of_matmul_at_every_tile_choice() {
    settings().bind(|| {
        for (name, tiles) in Tiles::CHOICES {
            let k = matmul_wide::<f32, f32, f32>(tiles.matmul, Epilogue::None).needs(tiles.limits);
            insta::assert_snapshot!(format!("matmul_tiles_{name}"), wgsl(&k));
        }
    });
}

/// What the build embedded is what the registry compiles to with the build's tiles.
#[test]
fn build_embeds_the_registry() {
    let tiles = Tiles::named(kernels::TILES).unwrap();
    let variants = registry(&tiles);
    assert_eq!(variants.len(), kernels::ALL.len());
    for v in variants {
        let embedded =
            kernels::by_name(&v.name).unwrap_or_else(|| panic!("{} not embedded", v.name));
        assert_eq!(embedded.wgsl, wgsl(&v.kernel), "{}", v.name);
        assert_eq!(embedded.workgroup_size, v.kernel.workgroup_size);
    }
}

/// The start-up budget (README "Tuning"): every variant of the default build together
/// (native-only ones included; the web build ships only the portable ones) is at most
/// 1.5 MB of WGSL, so shipping and parsing them stays cheap; loops stay loops unless
/// `#[unroll]`ed where it pays.
#[test]
fn wgsl_fits_the_size_budget() {
    let total: usize = kernels::ALL.iter().map(|k| k.wgsl.len()).sum();
    assert!(total <= 1_500_000, "{total} bytes of WGSL in the build");
}

/// Every embedded variant goes through what wgpu does with it on Vulkan: naga parses and
/// validates the WGSL and writes SPIR-V, with each bounds-check policy wgpu picks for
/// storage buffers (`Unchecked` where the device has robust buffer access 2, NVIDIA's case;
/// `Restrict` elsewhere). A machine without a GPU (CI) never creates the tensor-core
/// pipelines, so this is where their translation is checked: naga 30's SPIR-V writer
/// panicked on an H100 for a tried variant's cooperative store into a storage buffer whose
/// index was an unnamed expression (`&c[base + r * n + col]`; a named `let` index works),
/// which this test reproduces without a GPU.
#[test]
fn every_variant_translates_to_spirv() {
    for k in kernels::ALL {
        translate_to_spirv(k.name, k.wgsl);
    }
    // The large-product tiles of the other build configurations too.
    for (name, tiles) in Tiles::CHOICES {
        let k = matmul_wide::<f32, f32, f32>(tiles.matmul, Epilogue::None).needs(tiles.limits);
        translate_to_spirv(&format!("matmul_tiles_{name}"), &wgsl(&k));
    }
}

/// naga's path from WGSL to SPIR-V for one kernel, panicking with the kernel's name.
fn translate_to_spirv(name: &str, source: &str) {
    use naga::back::spv;
    use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    for buffer in [BoundsCheckPolicy::Unchecked, BoundsCheckPolicy::Restrict] {
        let options = spv::Options {
            lang_version: (1, 3),
            bounds_check_policies: BoundsCheckPolicies {
                index: BoundsCheckPolicy::Restrict,
                buffer,
                image_load: BoundsCheckPolicy::Restrict,
                binding_array: BoundsCheckPolicy::Unchecked,
            },
            ..spv::Options::default()
        };
        let pipeline = spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: module.entry_points[0].name.clone(),
        };
        let words = spv::write_vec(&module, &info, &options, Some(&pipeline))
            .unwrap_or_else(|e| panic!("{name} ({buffer:?}): {e}"));
        assert!(words.len() > 5, "{name}");
    }
}

/// Every emitted variant maps its WGSL back to the kernel's Rust lines, and every barrier
/// line of the WGSL maps to a `workgroup_barrier()` in the kernel source.
#[test]
fn every_variant_maps_its_wgsl_to_kernel_lines() {
    let tiles = Tiles::named(kernels::TILES).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for v in registry(&tiles) {
        let c = webdit_codegen::compile(&v.kernel).unwrap();
        assert!(!c.source_map.is_empty(), "{}: empty source map", v.name);
        for (i, line) in c.wgsl.lines().enumerate() {
            if !line.contains("workgroupBarrier()") {
                continue;
            }
            let loc = webdit_codegen::source_map::lookup(&c.source_map, i as u32 + 1)
                .unwrap_or_else(|| panic!("{}: WGSL line {} is not mapped", v.name, i + 1));
            let text = std::fs::read_to_string(root.join(loc.file)).unwrap();
            let rust = text.lines().nth(loc.line as usize - 1).unwrap();
            assert!(
                rust.contains("workgroup_barrier()"),
                "{}: WGSL line {} maps to {loc}: {rust}",
                v.name,
                i + 1
            );
        }
    }
}

/// The DSL's constructs, each in a kernel: short-circuit `&&`/`||` (reads under an `if`) and
/// `if` as an expression.
#[test]
fn wgsl_of_dsl_constructs() {
    settings().bind(|| {
        insta::assert_snapshot!(
            "dsl_short_circuit_and_if_values",
            wgsl(&webdit_tests::logic_and_if_values())
        );
        insta::assert_snapshot!("dsl_subgroups", wgsl(&webdit_tests::subgroup_ops()));
        insta::assert_snapshot!("dsl_atomics", wgsl(&webdit_tests::histogram()));
        insta::assert_snapshot!(
            "dsl_emitted_functions",
            wgsl(&webdit_tests::emitted_helpers())
        );
        insta::assert_snapshot!("dsl_mut_helper", wgsl(&webdit_tests::sum_squares()));
        insta::assert_snapshot!("dsl_storage_structs", wgsl(&webdit_tests::summarize()));
        // Cooperative matrices: the registry's `matmul_coop*` variants.
        // One generic helper, instantiated in f16.
        insta::assert_snapshot!(
            "dsl_generic_helper_f16",
            wgsl(&webdit_tests::generic_cube::<webdit_dsl::f16>())
        );
    });
}
