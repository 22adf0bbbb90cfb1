//! Compiles every registered kernel variant to WGSL (lowered and validated by naga) into
//! OUT_DIR, and writes `kernels.rs`, which embeds them with their binding layouts.
//! Tile sizes come from the `tile-*` Cargo features.

use std::fmt::Write;
use webdit_dsl::ir::{BindingKind, Kernel};
use webdit_kernels::{registry, Tiles};

fn tiles() -> (&'static str, Tiles) {
    for (name, tiles) in Tiles::CHOICES {
        let feature = format!("CARGO_FEATURE_TILE_{}", name.to_uppercase());
        if std::env::var_os(feature).is_some() {
            return (name, *tiles);
        }
    }
    Tiles::CHOICES[0]
}

fn source(variant: &str, k: &Kernel) -> String {
    let bindings: Vec<&str> = k
        .bindings
        .iter()
        .map(|b| match &b.kind {
            BindingKind::Storage { writable: true, .. } => "Binding::StorageReadWrite",
            BindingKind::Storage {
                writable: false, ..
            } => "Binding::Storage",
            BindingKind::Uniform(_) => "Binding::Uniform",
        })
        .collect();
    format!(
        "KernelSource {{ name: {variant:?}, entry: {:?}, params: {:?}, \
         wgsl: include_str!(concat!(env!(\"OUT_DIR\"), \"/{variant}.wgsl\")), \
         workgroup_size: {:?}, bindings: &[{}], f16: {} }}",
        k.name,
        k.params,
        k.workgroup_size,
        bindings.join(", "),
        k.uses_f16()
    )
}

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let (tile_name, tiles) = tiles();
    let mut consts = String::new();
    let mut all = vec![];
    for v in registry(&tiles) {
        let compiled = match webdit_codegen::compile(&v.kernel) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        std::fs::write(out.join(format!("{}.wgsl", v.name)), compiled.wgsl)
            .expect("writing OUT_DIR");
        let id = v.name.to_uppercase();
        let src = source(&v.name, &v.kernel);
        writeln!(
            consts,
            "/// The `{}` variant.\npub const {id}: KernelSource = {src};",
            v.name
        )
        .unwrap();
        all.push(format!("&{id}"));
    }
    writeln!(
        consts,
        "/// Every registered variant.\npub const ALL: &[&KernelSource] = &[{}];",
        all.join(", ")
    )
    .unwrap();
    writeln!(consts, "/// The tile configuration chosen by Cargo features.\npub const TILES: &str = {tile_name:?};").unwrap();
    std::fs::write(out.join("kernels.rs"), consts).expect("writing OUT_DIR");
}
