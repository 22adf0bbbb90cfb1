//! What a first icon waits for on a driver without a shader cache: pipeline creation per
//! kernel variant, and the fused attention's projection at other unrollings (creation
//! against kernel time).

use crate::timing::{buffer, Bench};
use webdit_dsl::{f16, ir::Kernel, UniformStruct};
use webdit_kernels::attention::{attention_rows_out, AttentionOutParams};
use webdit_kernels::{registry, Tiles};
use webdit_model::kernels::{KernelSource, TILES};

/// Seconds to create `kernel`'s pipeline (compiled to WGSL first, untimed), or why not.
fn create(
    b: &Bench,
    name: &str,
    kernel: &Kernel,
) -> Result<(usize, f64, webdit_model::Kernel), String> {
    let wgsl = webdit_codegen::compile(kernel)
        .map_err(|e| e.to_string())?
        .wgsl;
    let bytes = wgsl.len();
    let start = std::time::Instant::now();
    let k = b
        .gpu
        .kernel(KernelSource::leak(name, kernel, wgsl))
        .map_err(|e| e.to_string())?;
    Ok((bytes, start.elapsed().as_secs_f64(), k))
}

/// Every variant of the build, slowest to create first; then `attention_rows_out` at 1–8
/// groups of four k per projection step, created and timed at favicon-s batch 1. Run it
/// with the driver's own cache off (NVIDIA: `__GL_SHADER_DISK_CACHE=0`), else a second run
/// measures cache hits.
pub fn compile_times(b: &Bench) {
    let tiles = Tiles::named(TILES).expect("the build's tiles are registered");
    let mut rows = vec![];
    for v in registry(&tiles) {
        match create(b, &v.name, &v.kernel) {
            Ok((bytes, secs, _)) => rows.push((secs, v.name, bytes)),
            Err(_) => println!("{}: not on this adapter", v.name),
        }
    }
    rows.sort_by(|x, y| y.0.total_cmp(&x.0));
    println!("\n## Pipeline creation per variant (one at a time)\n\n| variant | WGSL | creation |\n|---|---|---|");
    for (secs, name, bytes) in rows {
        println!("| {name} | {bytes} B | {:.1} ms |", secs * 1e3);
    }
    println!("\n## attention_rows_out: loads in flight against creation (favicon-s batch 1)\n\n| store | groups of 4 k | WGSL | creation | time |\n|---|---|---|---|---|");
    let (n, dh, d) = (64usize, 128usize, 512usize);
    let p = AttentionOutParams {
        n: n as u32,
        dh: dh as u32,
        scale: (dh as f32).powf(-0.5),
        d: d as u32,
        mod_stride: 2 * d as u32,
        scale_at: 0,
        shift_at: d as u32,
    };
    for (store, e) in [("f32", 4), ("f16", 2)] {
        for groups in [1, 2, 4, 8] {
            let kernel = match store {
                "f32" => attention_rows_out::<f32, 128>(groups),
                _ => attention_rows_out::<f16, 128>(groups),
            };
            let name = format!("attention_rows_out_{store}_g{groups}");
            let Ok((bytes, secs, k)) = create(b, &name, &kernel) else {
                println!("| {store} | {groups} | not on this adapter | | |");
                continue;
            };
            let bufs = [
                buffer(b.gpu, n * 3 * dh * e),
                buffer(b.gpu, dh * d * e),
                buffer(b.gpu, n * d * e),
                buffer(b.gpu, 2 * d * 4),
                buffer(b.gpu, n * d * e),
            ];
            let u = b.gpu.uniform("p", &p.to_bytes());
            let args: Vec<&wgpu::Buffer> = bufs.iter().chain([&u]).collect();
            let bind = k.bind(b.gpu, &args).unwrap();
            let t = b.time(&k, &bind, [(n as u32).div_ceil(4), 1, 1]);
            println!(
                "| {store} | {groups} | {bytes} B | {:.1} ms | {:.1} µs |",
                secs * 1e3,
                t * 1e6
            );
        }
    }
}
