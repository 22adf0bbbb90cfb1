//! The `webdit` command end to end: it writes valid PNGs of the right size, and bad inputs
//! exit non-zero with a one-line reason.

use std::path::PathBuf;
use std::process::Command;

fn webdit(args: &[&str]) -> (bool, String, String) {
    webdit_cached(args, &tmp("cache"))
}

/// `webdit args` keeping compiled pipelines in `cache`.
fn webdit_cached(args: &[&str], cache: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_webdit"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env(webdit_model::pipeline_cache::DIR_VAR, cache)
        .output()
        .expect("webdit runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).to_string();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// A path under cargo's scratch directory for integration tests (`target/tmp`), not the
/// system's temporary directory, which the tests would otherwise fill run after run.
fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("webdit-cli-{}", std::process::id()));
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

/// Several seeds from one start-up: one file per seed, each the same bits as a run of that
/// seed alone; `--timings` names the phases.
#[test]
fn several_seeds_from_one_start_match_single_runs() {
    let out = tmp("seeds.png");
    let base = ["generate", "--device", "gpu", "--weights"];
    let fixture = fixture();
    let (ok, stdout, stderr) = webdit(
        &[
            &base[..],
            &[&fixture, "--seeds", "7,8", "--timings", "--out"],
            &[out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    for phase in [
        "process start",
        "adapter",
        "weights",
        "pipelines",
        "record and submit",
        "steps on the GPU",
        "readback",
        "PNG",
        "total",
    ] {
        assert!(stdout.contains(phase), "no {phase:?} in {stdout}");
    }
    let single = tmp("single.png");
    let (ok, _, stderr) = webdit(
        &[
            &base[..],
            &[&fixture, "--seed", "8", "--out"],
            &[single.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    let pixels = |p: &PathBuf| image::open(p).unwrap().to_rgb8().into_raw();
    assert_eq!(pixels(&out.with_file_name("seeds-8.png")), pixels(&single));
    assert_ne!(
        pixels(&out.with_file_name("seeds-7.png")),
        pixels(&single),
        "seed 7 differs from 8"
    );
    // --count N is seeds seed..seed+N.
    let count = tmp("count.png");
    let (ok, _, stderr) = webdit(
        &[
            &base[..],
            &[&fixture, "--seed", "7", "--count", "2", "--out"],
            &[count.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        pixels(&count.with_file_name("count-8.png")),
        pixels(&single)
    );
}

/// The compiled-pipeline cache: written on the first run; a corrupt, truncated or foreign
/// file is one line of warning, ignored and rewritten; `--no-cache` touches nothing.
#[test]
fn pipeline_cache_survives_bad_files() {
    use webdit_model::pipeline_cache::{decode, encode};
    let dir = tmp("pipeline-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let out = tmp("cached.png");
    let fixture = fixture();
    let args = [
        "generate",
        "--device",
        "gpu",
        "--weights",
        &fixture,
        "--sampler",
        "ddim",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = |extra: &[&str]| -> String {
        let (ok, _, stderr) = webdit_cached(&[&args[..], extra].concat(), &dir);
        assert!(ok, "{stderr}");
        stderr
    };
    let stderr = run(&[]);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let Some(file) = files.first().cloned() else {
        // Only adapters with a pipeline cache (Vulkan) write one.
        eprintln!("no pipeline cache written (adapter without one): {stderr}");
        return;
    };
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let good = std::fs::read(&file).unwrap();
    let key = cache_key(&good);
    let decoded = decode(&key, &good).expect("valid");
    assert!(
        !decoded.kernels.is_empty() && decoded.kernels.iter().all(|k| is_variant_name(k)),
        "the cache names its kernels: {:?}",
        decoded.kernels
    );
    let data = decoded.data.to_vec();
    let bad: [(&str, Vec<u8>); 4] = [
        ("not a Web DiT pipeline cache", b"\x00garbage".to_vec()),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("another adapter", encode("some other GPU", [], &data)),
        ("checksum", {
            let mut v = good.clone();
            *v.last_mut().unwrap() ^= 0xff;
            v
        }),
    ];
    for (why, bytes) in bad {
        std::fs::write(&file, &bytes).unwrap();
        let stderr = run(&[]);
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(
            warnings[0].contains(why) && warnings[0].contains("rewritten"),
            "{why}: {stderr}"
        );
        let now = std::fs::read(&file).unwrap();
        assert!(decode(&key, &now).is_ok(), "{why}: not rewritten");
    }
    std::fs::remove_file(&file).unwrap();
    run(&["--no-cache"]);
    assert!(!file.exists(), "--no-cache wrote {}", file.display());
}

/// The key a pipeline cache file was written for: the part between its header and the data.
fn cache_key(file: &[u8]) -> String {
    let key_len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    std::str::from_utf8(&file[16..16 + key_len])
        .unwrap()
        .to_string()
}

/// A kernel variant's name as the registry spells them.
fn is_variant_name(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `adapter: ` line of a two-step generation with `--tensor-cores mode`, the pipeline
/// cache in `dir`.
fn adapter_line(dir: &std::path::Path, out: &std::path::Path, mode: &str) -> String {
    let args = [
        "generate",
        "--device",
        "gpu",
        "--sampler",
        "ddim",
        "--steps",
        "2",
        "--tensor-cores",
        mode,
        "--out",
        out.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = webdit_cached(&args, dir);
    assert!(ok, "{stderr}");
    let line = stdout.lines().find(|l| l.starts_with("adapter: "));
    line.unwrap_or_else(|| panic!("{stdout}")).to_string()
}

/// The kernels the one pipeline-cache file in `dir` lists.
fn cached_kernels(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    use webdit_model::pipeline_cache::decode;
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let file = std::fs::read(&files[0]).unwrap();
    decode(&cache_key(&file), &file).expect("valid").kernels
}

/// `--tensor-cores auto` skips tensor-core kernels that are not in the pipeline cache (a
/// cold compile costs more than a small job gains), `on` compiles and caches them, and
/// `auto` then uses them. Checked only on adapters with cooperative matrices.
#[test]
fn tensor_cores_follow_the_pipeline_cache() {
    let dir = tmp("tensor-cores-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let out = tmp("tensor-cores.png");
    let run = |mode: &str| adapter_line(&dir, &out, mode);
    let first = run("auto");
    if !first.contains("cooperative matrices") {
        eprintln!("adapter without cooperative matrices, nothing to check: {first}");
        return;
    }
    assert!(
        first.contains("tensor cores off (matmul_coop") && first.contains("not compiled yet"),
        "{first}"
    );
    let on = run("on");
    assert!(on.contains("F16 kernels, tensor cores, tiles"), "{on}");
    let kernels = cached_kernels(&dir);
    assert!(
        kernels.iter().any(|k| k.starts_with("matmul_coop")),
        "{kernels:?}"
    );
    let again = run("auto");
    assert!(
        again.contains("F16 kernels, tensor cores, tiles"),
        "{again}"
    );
    let off = run("off");
    assert!(
        off.contains("F16 kernels, tensor cores off, tiles"),
        "{off}"
    );
}

/// The fused attention (`attention_rows_out`, slow to compile for what it gains) follows
/// the same rule: `auto` runs attention unfused until the cache holds the fused kernel, `on`
/// compiles and caches it, and `auto` then uses it. favicon-s attends by rows with one head,
/// so every adapter with f16 or f32 row kernels checks this (lavapipe too).
#[test]
fn fused_attention_follows_the_pipeline_cache() {
    let dir = tmp("fused-attention-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let out = tmp("fused-attention.png");
    let run = |mode: &str| adapter_line(&dir, &out, mode);
    let first = run("auto");
    assert!(
        first.contains("attention unfused (attention_rows_out_d128")
            && first.contains("not compiled yet"),
        "{first}"
    );
    let on = run("on");
    assert!(!on.contains("attention unfused"), "{on}");
    let kernels = cached_kernels(&dir);
    assert!(
        kernels.iter().any(|k| k.starts_with("attention_rows_out")),
        "{kernels:?}"
    );
    let again = run("auto");
    assert!(!again.contains("attention unfused"), "{again}");
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

/// `webdit plan` prints a model's forward plan without a GPU; `--software` the software
/// adapters' plan: f32, products and AdaLNs without barriers, nothing split.
#[test]
fn plan_prints_the_gpu_and_the_software_plans() {
    let (ok, gpu, stderr) = webdit(&["plan", "--model", "favicon-s"]);
    assert!(ok, "{stderr}");
    assert!(gpu.contains("f16") && gpu.contains(".partial"), "{gpu}");
    let (ok, sw, stderr) = webdit(&["plan", "--model", "favicon-s", "--software"]);
    assert!(ok, "{stderr}");
    let first = sw.lines().next().unwrap_or_default();
    assert!(first.contains("f32"), "{first}");
    assert!(
        sw.contains("matmul_direct") && sw.contains("adaln_serial"),
        "{sw}"
    );
    assert!(!sw.contains(".partial") && !sw.contains("combine"), "{sw}");
}
