//! Compiles every registered kernel variant to WGSL (lowered and validated by naga) into
//! OUT_DIR, and writes `kernels.rs`, which embeds them with their binding layouts.
//! Tile sizes come from the `tile-*` Cargo features.

use std::fmt::Write;
use webdit_dsl::ir::{BindingKind, Kernel};
use webdit_kernels::{registry, Tiles};

fn tiles() -> (&'static str, Tiles) {
    for (name, tiles) in Tiles::CHOICES {
        let feature = format!(
            "CARGO_FEATURE_TILE_{}",
            name.to_uppercase().replace('-', "_")
        );
        if std::env::var_os(feature).is_some() {
            return (name, *tiles);
        }
    }
    Tiles::CHOICES[0]
}

/// `kernels.rs`'s description of one variant: what `KernelSource::leak` builds at run time.
fn source(variant: &str, k: &Kernel) -> String {
    let bindings: Vec<String> = k
        .bindings
        .iter()
        .map(|b| {
            let (kind, scalar, uniform) = match &b.kind {
                BindingKind::Storage { elem, writable } => (
                    if *writable {
                        "StorageReadWrite"
                    } else {
                        "Storage"
                    },
                    format!("Some(Scalar::{:?})", elem.scalar()),
                    "None".to_string(),
                ),
                BindingKind::Uniform(l) => ("Uniform", "None".into(), format!("Some({:?})", l.name)),
            };
            format!(
                "Param {{ name: {:?}, kind: Binding::{kind}, scalar: {scalar}, uniform: {uniform} }}",
                b.name
            )
        })
        .collect();
    format!(
        "KernelSource {{ name: {variant:?}, entry: {:?}, params: {:?}, \
         wgsl: include_str!(concat!(env!(\"OUT_DIR\"), \"/{variant}.wgsl\")), \
         workgroup_size: {:?}, bindings: &[{}], f16: {}, workgroup_storage: {}, subgroups: {}, coop: {}, portable: {} }}",
        k.name,
        k.params,
        k.workgroup_size,
        bindings.join(", "),
        k.uses_f16(),
        k.workgroup_storage_bytes(),
        k.uses_subgroups(),
        k.uses_coop(),
        k.is_portable()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Rerun only when this script or what it is built from (the kernels, the compiler)
    // changes, not on every edit of the runtime; feature changes rerun it anyway.
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let (tile_name, tiles) = tiles();
    let mut consts = String::new();
    let mut all = vec![];
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut failed = 0;
    // Browsers get only what runs in every browser (WebGPU's limits, no native extensions).
    let web = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    for v in registry(&tiles) {
        if web && !v.kernel.is_portable() {
            continue;
        }
        let compiled = match webdit_codegen::compile(&v.kernel) {
            Ok(c) => c,
            Err(e) => {
                // Every kernel's errors, like rustc's, at the kernel's lines; then fail.
                eprint!("{e}");
                failed += 1;
                continue;
            }
        };
        hash.update(v.name.as_bytes());
        hash.update(compiled.wgsl.as_bytes());
        std::fs::write(out.join(format!("{}.wgsl", v.name)), compiled.wgsl)?;
        let id = v.name.to_uppercase();
        let src = source(&v.name, &v.kernel);
        writeln!(
            consts,
            "/// The `{}` variant.\npub const {id}: KernelSource = {src};",
            v.name
        )?;
        all.push(format!("&{id}"));
    }
    if failed > 0 {
        eprintln!("error: {failed} kernel variant(s) could not be compiled to WGSL (see above)");
        std::process::exit(1);
    }
    writeln!(
        consts,
        "/// Every registered variant.\npub const ALL: &[&KernelSource] = &[{}];",
        all.join(", ")
    )?;
    writeln!(
        consts,
        "/// Hash of every variant's name and WGSL (keys the pipeline cache).\npub const SOURCE_HASH: u64 = {:#x};",
        hash.digest()
    )?;
    writeln!(consts, "/// The tile configuration chosen by Cargo features.\npub const TILES: &str = {tile_name:?};")?;
    std::fs::write(out.join("kernels.rs"), consts)?;
    Ok(())
}
