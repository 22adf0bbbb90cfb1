//! `webdit-emit --out DIR`: writes the WGSL of every registered kernel variant to a folder,
//! with its source map and a manifest (`webdit_codegen::emit`). It lives with the registry,
//! so the compiler crate does not depend on the kernels it compiles.

use clap::Parser;
use std::path::PathBuf;
use webdit_kernels::{registry, Tiles};

/// Compile Web DiT's DSL kernels to WGSL: `<variant>.wgsl` for every registered kernel
/// variant, with `<variant>.wgsl.map` (WGSL line -> kernel file:line:column) and
/// `manifest.json`.
#[derive(Parser)]
struct Emit {
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Tile configuration, as the `tile-*` Cargo features name them.
    #[arg(long, default_value = Tiles::CHOICES[0].0)]
    tiles: String,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Kernel errors render like rustc's (they start with `error:`).
            let text = e.to_string();
            if text.starts_with("error") {
                eprint!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Emit { out, tiles } = Emit::parse();
    let tiles = Tiles::named(&tiles).ok_or_else(|| {
        let names: Vec<_> = Tiles::CHOICES.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown tiles `{tiles}`; choose one of {}",
            names.join(", ")
        )
    })?;
    let variants = registry(&tiles).into_iter().map(|v| (v.name, v.kernel));
    for path in webdit_codegen::emit(&out, variants)? {
        println!("{}", path.display());
    }
    Ok(())
}
