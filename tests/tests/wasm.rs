//! The model crate (runtime, kernels, checkpoint loading) builds for the browser's target:
//! the web bundle compiles this same code, so no native-only dependency or blocking wait
//! may creep in.

use std::path::Path;
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

#[test]
fn model_builds_for_wasm32() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(TARGET))
        .unwrap_or(false);
    if !installed {
        eprintln!("not checked: run `rustup target add {TARGET}` (CI does)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "-q",
            "-p",
            "webdit-model",
            "--lib",
            "--target",
            TARGET,
        ])
        // Its own target dir: the outer `cargo test` may hold the workspace's lock.
        .env("CARGO_TARGET_DIR", root.join("target/wasm-check"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "webdit-model does not build for {TARGET}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
