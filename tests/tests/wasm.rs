//! The browser side: the model builds for wasm32 (the web bundle compiles this same code, so
//! no native-only dependency or blocking wait may creep in), and the built bundle runs in a
//! real Chromium (`web/tests/browser.mjs`: WebGPU through SwiftShader where there is no
//! GPU). `.ci/run` installs what they need and sets `WEBDIT_REQUIRE_BROWSER`, so that there
//! a missing piece fails them; elsewhere they say what is missing and check nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use webdit_model::cpu::CpuModel;
use webdit_model::pixels::to_rgba8;
use webdit_model::{plan, Sampler};

const TARGET: &str = "wasm32-unknown-unknown";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A command in the workspace root, building into its own target dir (the outer
/// `cargo test` may hold the workspace's lock).
fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root())
        .env("CARGO_TARGET_DIR", root().join("target/wasm-check"));
    c
}

fn succeeds(c: &mut Command) -> bool {
    c.output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(what: &str, c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn wasm_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(TARGET))
        .unwrap_or(false)
}

#[test]
fn web_crate_builds_for_wasm32() {
    if !wasm_target_installed() {
        assert!(
            std::env::var_os("WEBDIT_REQUIRE_BROWSER").is_none(),
            "the {TARGET} target is required but not installed"
        );
        eprintln!("not checked: run `rustup target add {TARGET}` (CI does)");
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        "cargo build -p webdit-web for wasm32",
        command(&cargo).args([
            "build",
            "-q",
            "--release",
            "-p",
            "webdit-web",
            "--target",
            TARGET,
        ]),
    );
}

/// The CPU path's SIMD128 products (what the page runs without a usable GPU) against
/// their f64 reference, compiled to wasm and run in node by `wasm-bindgen-test-runner`
/// (installed with the wasm-bindgen CLI).
#[test]
fn cpu_kernels_pass_in_wasm() {
    if browser_missing(true) {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(
        "the CPU path's unit tests in wasm",
        command(&cargo)
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            )
            .args([
                "test",
                "--release",
                "-p",
                "webdit-model",
                "--target",
                TARGET,
                "--lib",
                "--",
                "cpu::",
            ]),
    );
    assert!(
        out.contains("products_match_reference ... ok"),
        "the kernel test did not run:\n{out}"
    );
}

/// What the browser tests need and this machine lacks (`wasm`: the bundle's toolchain too).
/// Under `WEBDIT_REQUIRE_BROWSER` (CI) anything missing fails the test.
fn browser_missing(wasm: bool) -> bool {
    let chromium =
        std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/lib/chromium/chromium".into());
    let missing: Vec<&str> = [
        ("the wasm32 target", !wasm || wasm_target_installed()),
        (
            "wasm-bindgen",
            !wasm || succeeds(Command::new("wasm-bindgen").arg("--version")),
        ),
        ("node", succeeds(Command::new("node").arg("--version"))),
        ("chromium", Path::new(&chromium).exists()),
        (
            "web/tests/node_modules (npm install)",
            root()
                .join("web/tests/node_modules/playwright-core")
                .exists(),
        ),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(what, _)| what)
    .collect();
    if missing.is_empty() {
        return false;
    }
    let why = format!("missing {} (.ci/run installs them)", missing.join(", "));
    assert!(
        std::env::var_os("WEBDIT_REQUIRE_BROWSER").is_none(),
        "browser test required but {why}"
    );
    eprintln!("not checked: {why}");
    true
}

/// Every variant the build embeds compiles in Chromium's own WGSL compiler and makes a
/// compute pipeline with WebGPU's default limits (f16 variants where the adapter has
/// `shader-f16`; SwiftShader does not). A failure names the kernel's Rust line.
#[test]
fn every_variant_compiles_in_chromium() {
    if browser_missing(false) {
        return;
    }
    let tiles = webdit_kernels::Tiles::named(webdit_model::kernels::TILES).expect("build tiles");
    let dir = root().join("target/wasm-check/wgsl");
    let variants = webdit_kernels::registry(&tiles)
        .into_iter()
        .map(|v| (v.name, v.kernel));
    webdit_codegen::emit(&dir, variants).expect("the registry compiles");
    let report = run(
        "compiling every variant in Chromium",
        command("node").args(["web/tests/wgsl.mjs".as_ref(), dir.as_os_str()]),
    );
    eprintln!("{report}");
}

#[test]
fn bundle_runs_in_chromium() {
    if browser_missing(true) {
        return;
    }
    run("web/build.sh", command("bash").arg("web/build.sh"));
    // What the native CPU path draws for the page's test settings (seed 7, 4 DDIM steps).
    let ckpt = webdit_model::default_checkpoint().expect("shipped weights");
    let steps = plan(&ckpt.config, Sampler::Ddim, 4).expect("plan");
    let x = CpuModel::new(ckpt.clone()).generate(1, 7, &steps, |_| {});
    let expected = root().join("target/wasm-check/expected-seed7-ddim4.rgba");
    std::fs::write(&expected, to_rgba8(&ckpt.config, &x, 0)).expect("write expected image");
    let report = run(
        "the browser test",
        command("node").args([
            "web/tests/browser.mjs".as_ref(),
            "web/dist".as_ref(),
            expected.as_os_str(),
        ]),
    );
    eprintln!("{report}");
}
