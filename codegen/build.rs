//! Fingerprints this compiler's own source text (`FINGERPRINT`), so that a build script that
//! keeps compiled WGSL between builds (`model/build.rs`) knows when the compiler changed.

use std::hash::{Hash, Hasher};

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src");
    let mut files: Vec<_> = std::fs::read_dir("src")?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        f.hash(&mut hasher);
        std::fs::read(f)?.hash(&mut hasher);
    }
    println!(
        "cargo:rustc-env=WEBDIT_CODEGEN_FINGERPRINT={:016x}",
        hasher.finish()
    );
    Ok(())
}
