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
                    match elem.element_scalar() {
                        Some(s) => format!("Some(Scalar::{s:?})"),
                        None => "None".to_string(),
                    },
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

/// The WGSL of `kernel`, compiled only if its recorded IR (source locations included) or the
/// `compiler` differs from what `OUT_DIR` last compiled for this variant: an edit to one
/// kernel regenerates only its variants (README "Writing a kernel", the edit loop).
fn compiled(
    out: &std::path::Path,
    compiler: u64,
    name: &str,
    kernel: &Kernel,
) -> std::io::Result<Result<String, webdit_codegen::Error>> {
    let ir = xxhash_rust::xxh3::xxh3_64(format!("{kernel:?}").as_bytes());
    let key = format!("{compiler:016x}{ir:016x}");
    let (wgsl_path, key_path) = (
        out.join(format!("{name}.wgsl")),
        out.join(format!("{name}.ir")),
    );
    if std::fs::read_to_string(&key_path).is_ok_and(|k| k == key) {
        if let Ok(wgsl) = std::fs::read_to_string(&wgsl_path) {
            return Ok(Ok(wgsl));
        }
    }
    let wgsl = match webdit_codegen::compile(kernel) {
        Ok(c) => c.wgsl,
        Err(e) => return Ok(Err(e)),
    };
    std::fs::write(&wgsl_path, &wgsl)?;
    std::fs::write(&key_path, &key)?;
    Ok(Ok(wgsl))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Rerun only when this script or what it is built from (the kernels, the compiler)
    // changes, not on every edit of the runtime; feature changes rerun it anyway.
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let (tile_name, tiles) = tiles();
    // The compiler: its source text and every dependency's version (naga's WGSL writer).
    let lock = std::fs::read("../Cargo.lock").unwrap_or_default();
    let compiler =
        xxhash_rust::xxh3::xxh3_64(&[webdit_codegen::FINGERPRINT.as_bytes(), &lock].concat());
    let mut consts = String::new();
    let mut all = vec![];
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut failed = 0;
    // Browsers get only what runs in every browser (WebGPU's limits, no native extensions),
    // and not the fused attention, which the web build does not plan (slow to compile on a
    // page's first icon for what it gains; `Options::attention_out_fused`).
    let web = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    for v in registry(&tiles) {
        let fused = matches!(v.key, webdit_kernels::Key::AttentionRowsOut { .. });
        if web && (!v.kernel.is_portable() || fused) {
            continue;
        }
        let wgsl = match compiled(&out, compiler, &v.name, &v.kernel)? {
            Ok(wgsl) => wgsl,
            Err(e) => {
                // Every kernel's errors, like rustc's, at the kernel's lines; then fail.
                eprint!("{e}");
                failed += 1;
                continue;
            }
        };
        hash.update(v.name.as_bytes());
        hash.update(wgsl.as_bytes());
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
