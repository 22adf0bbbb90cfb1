//! `codegen emit --out DIR`: writes the WGSL of every registered kernel variant to a folder.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use webdit_kernels::{registry, Tiles};

#[derive(Parser)]
#[command(about = "Compile Web DiT's DSL kernels to WGSL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write `<variant>.wgsl` for every registered kernel variant, with `<variant>.wgsl.map`
    /// (WGSL line -> kernel file:line:column) and `manifest.json`.
    Emit {
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Tile configuration, as the `tile-*` Cargo features name them.
        #[arg(long, default_value = Tiles::CHOICES[0].0)]
        tiles: String,
    },
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
    let Command::Emit { out, tiles } = Cli::parse().command;
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
