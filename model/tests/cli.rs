//! The `webdit` command end to end: it writes valid PNGs of the right size, and bad inputs
//! exit non-zero with a one-line reason.

use std::path::PathBuf;
use std::process::Command;

fn webdit(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_webdit"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("webdit runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).to_string();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("webdit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn fixture() -> String {
    format!(
        "{}/../tests/fixtures/tiny.safetensors",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn png_size(path: &PathBuf) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

#[test]
fn generate_writes_a_grid_on_the_gpu() {
    let out = tmp("grid.png");
    let (ok, stdout, stderr) = webdit(&[
        "generate",
        "--device",
        "gpu",
        "--weights",
        &fixture(),
        "--out",
        out.to_str().unwrap(),
        "--batch",
        "3",
        "--grid",
        "--seed",
        "5",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("adapter:") && stdout.contains("ms/step"),
        "{stdout}"
    );
    // 3 images of 16 px in a 2-column grid.
    assert_eq!(png_size(&out), (32, 32));
}

#[test]
fn generate_with_shipped_weights_on_the_cpu() {
    let out = tmp("icon.png");
    let (ok, stdout, stderr) = webdit(&[
        "generate",
        "--device",
        "cpu",
        "--sampler",
        "ddim",
        "--steps",
        "4",
        "--batch",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("CPU reference"), "{stdout}");
    assert_eq!(png_size(&out.with_file_name("icon-0.png")), (64, 64));
    assert_eq!(png_size(&out.with_file_name("icon-1.png")), (64, 64));
}

fn fails_with(args: &[&str], needle: &str) {
    let (ok, _, stderr) = webdit(args);
    assert!(!ok, "{args:?} succeeded");
    let line = stderr.trim();
    assert!(
        line.starts_with("error: ") && !line.contains('\n'),
        "not one line: {stderr:?}"
    );
    assert!(line.contains(needle), "{line:?} lacks {needle:?}");
}

#[test]
fn bad_inputs_exit_with_a_reason() {
    let out = tmp("x.png");
    let out = out.to_str().unwrap();
    fails_with(
        &[
            "generate",
            "--weights",
            "/nonexistent/model.safetensors",
            "--out",
            out,
        ],
        "cannot read",
    );
    let junk = tmp("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    fails_with(
        &[
            "generate",
            "--weights",
            junk.to_str().unwrap(),
            "--out",
            out,
        ],
        "not a valid safetensors file",
    );
    fails_with(
        &["generate", "--steps", "0", "--out", out],
        "--steps must be at least 1",
    );
    fails_with(
        &["generate", "--steps", "8", "--out", out],
        "DDPM runs the model's 32 training steps",
    );
    let gpu_batch = [
        "generate", "--device", "gpu", "--batch", "200000", "--out", out,
    ];
    fails_with(&gpu_batch, "use a smaller --batch");
    let cpu_batch = [
        "generate", "--device", "cpu", "--batch", "200000", "--out", out,
    ];
    fails_with(&cpu_batch, "too large for the CPU path");
    fails_with(&["generate", "--out", "/tmp/x.jpg"], ".png");
    fails_with(
        &["info", junk.to_str().unwrap()],
        "not a valid safetensors file",
    );
    fails_with(
        &["convert", junk.to_str().unwrap(), "/tmp/y.safetensors"],
        "bad magic",
    );
}

#[test]
fn info_prints_config_and_tensors() {
    let (ok, stdout, stderr) = webdit(&["info", &fixture()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("\"dim\":32") && stdout.contains("blocks.1.attn.to_q.weight"),
        "{stdout}"
    );
}
