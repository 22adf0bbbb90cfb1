//! The matmul tile sweep: candidate tilings compiled on the spot and timed on a few shapes.

use crate::products::model_products;
use crate::timing::{buffer, Bench};
use webdit_dsl::ir::Limits;
use webdit_dsl::UniformStruct;
use webdit_kernels::matmul::{
    matmul, matmul_direct, matmul_wide, matmul_wide_ceiling, Epilogue, MatmulTiles,
};
use webdit_kernels::Tiles;
use webdit_model::kernels::KernelSource;
use webdit_model::tiers::MatmulPlan;
use webdit_model::Config;

/// One matmul kernel on one shape (elements of `e` bytes): "time, TFLOP/s", and the seconds
/// its pipeline took to create. `splits` > 1: the partial products of a split-K over that
/// many slices of K.
pub(crate) fn time_kernel(
    b: &Bench,
    k: &webdit_dsl::ir::Kernel,
    name: &str,
    t: MatmulTiles,
    e: usize,
    (m, n, kk): (usize, usize, usize),
    splits: usize,
) -> (String, f64) {
    let gpu = b.gpu;
    let wgsl = webdit_codegen::compile(k)
        .unwrap_or_else(|e| panic!("{e}"))
        .wgsl;
    let start = std::time::Instant::now();
    let kernel = gpu.kernel(KernelSource::leak(name, k, wgsl)).unwrap();
    let created = start.elapsed().as_secs_f64();
    let (a, w, c) = (
        buffer(gpu, m * kk * e),
        buffer(gpu, n * kk * e),
        buffer(gpu, m * n * 4 * splits),
    );
    let plan = MatmulPlan {
        tier: "sweep",
        tiles: t,
        groups: [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm), 1],
        splits: splits as u32,
        shape: (m, n, kk),
    };
    let p = gpu.uniform("p", &plan.partial_params().to_bytes());
    let extra = buffer(gpu, n * e);
    let bind = kernel.bind(gpu, &[&a, &w, &c, &extra, &p]).unwrap();
    let [gx, gy, _] = plan.groups;
    let secs = b.time(&kernel, &bind, [gx, gy, plan.splits]);
    let rate = 2.0 * (m * n * kk) as f64 / secs / 1e12;
    let cell = if secs < 1e-4 {
        format!("{:.1} µs, {rate:.1} TFLOP/s", secs * 1e6)
    } else {
        format!("{:.2} ms, {rate:.1} TFLOP/s", secs * 1e3)
    };
    (cell, created)
}

/// How far to unroll the K-step's inner loop, per tier: WGSL size, pipeline creation time
/// and kernel time at shapes the tier runs in the model, for every divisor of BK.
pub fn sweep_unroll(b: &Bench, big: (usize, usize, usize)) {
    use webdit_dsl::f16;
    println!("\n## K-step unrolling per tier\n\n| tier | tiles | unroll | WGSL | pipeline creation | shape | time |\n|---|---|---|---|---|---|---|");
    let t = Tiles::default();
    // (tier, tiles, f16 storage, shapes with their slices of K)
    type Shapes = Vec<((usize, usize, usize), usize)>;
    let tiers: [(&str, MatmulTiles, bool, Shapes); 4] = [
        (
            "matmul",
            t.matmul,
            false,
            vec![(big, 1), ((4096, 3072, 768), 1)],
        ),
        (
            "matmul_f16",
            t.matmul_f16,
            true,
            vec![(big, 1), ((4096, 3072, 768), 1)],
        ),
        (
            "matmul_mid",
            t.mid,
            false,
            vec![
                ((1024, 2048, 512), 1),
                ((4096, 768, 3072), 1),
                ((256, 3072, 768), 2),
            ],
        ),
        (
            "matmul_small",
            t.small,
            false,
            vec![
                ((64, 384, 512), 8),
                ((64, 512, 2048), 16),
                ((1024, 512, 192), 1),
            ],
        ),
    ];
    for (name, tiles, half, shapes) in tiers {
        for u in [1, 2, 4, 8, 16].into_iter().filter(|u| tiles.bk % u == 0) {
            let tu = tiles.unrolled(u);
            let k = if half {
                matmul_wide::<f16, f16, f16>(tu, Epilogue::None)
            } else {
                matmul_wide::<f32, f32, f32>(tu, Epilogue::None)
            };
            let bytes = webdit_codegen::compile(&k)
                .map(|c| c.wgsl.len())
                .unwrap_or(0);
            for (shape, splits) in &shapes {
                let e = if half { 2 } else { 4 };
                let (cell, created) =
                    time_kernel(b, &k, &format!("{name}_u{u}"), tu, e, *shape, *splits);
                let split = if *splits > 1 {
                    format!(", K/{splits} partials")
                } else {
                    String::new()
                };
                println!(
                    "| {name} | {}×{}×{} {}×{} | {u} | {:.0} KB | {:.0} ms | {}×{}×{}{split} | {cell} |",
                    tu.bm, tu.bn, tu.bk, tu.tm, tu.tn, bytes as f64 / 1e3, created * 1e3, shape.0, shape.1, shape.2
                );
            }
        }
    }
}

/// Times every candidate tiling on `big` and the model's telling shapes.
pub fn sweep(b: &Bench, big: (usize, usize, usize), only: Option<&str>) {
    let gpu = b.gpu;
    println!("\n## matmul tile sweep (f32)\n\n| tiles | BM×BN×BK, TM×TN, buffers | 4096³ | favicon-b b16 mlp up 4096×3072×768 | favicon-b b16 mlp down 4096×768×3072 | favicon-b b16 qkv 4096×576×768 | favicon-s b1 qkv 64×384×512 | the same, K/8 partials | favicon-s b1 mlp down 64×512×2048, K/8 partials | 4096³, f16 storage |\n|---|---|---|---|---|---|---|---|---|---|");
    // Each tile choice with the limits it declares (double-buffered ones need more workgroup
    // memory than WebGPU guarantees).
    let mut cands: Vec<(String, MatmulTiles, bool, Limits)> = Tiles::CHOICES
        .iter()
        .flat_map(|(n, t)| {
            [
                (format!("wide {n}"), t.matmul, true, t.limits),
                (
                    format!("wide {n}, 2 ahead"),
                    t.matmul.ahead(2),
                    true,
                    t.limits,
                ),
            ]
        })
        .collect();
    for (bm, bn, bk, stages, tm, tn) in [
        (128, 64, 16, 1, 8, 8),
        (64, 64, 16, 1, 8, 8),
        (64, 64, 16, 1, 4, 8),
        (64, 64, 16, 1, 4, 4),
        (32, 64, 16, 1, 4, 8),
        (32, 64, 16, 1, 4, 4),
        (32, 32, 16, 1, 4, 4),
        (32, 32, 8, 1, 4, 4),
        (32, 32, 32, 1, 4, 4),
    ] {
        cands.push((
            format!("wide {bm}x{bn}k{bk}s{stages} {tm}x{tn}"),
            MatmulTiles::wide(bm, bn, bk, stages).per_thread(tm, tn),
            true,
            Limits::WEBGPU,
        ));
    }
    // For the f32 target at 4096³ (≥ 40 TFLOP/s): larger tiles ("big": more outputs per
    // workgroup, double-buffered with native-only limits where they pass 16 KiB, unrolled
    // further) and other shapes of the inner product ("alt": one barrier per K-step of 8
    // within WebGPU's limits, a K-step of 32, 16×8 outputs per invocation, 64-invocation
    // workgroups, less unrolling).
    let native = Limits {
        max_workgroup_storage_bytes: 32768,
        ..Limits::WEBGPU
    };
    for (family, bm, bn, bk, stages, tm, tn, u, ahead) in [
        ("big", 128, 128, 16, 1, 8, 16, 16, 1),
        ("big", 128, 128, 16, 2, 8, 16, 16, 1),
        ("big", 128, 128, 16, 2, 8, 16, 4, 1),
        ("big", 128, 128, 16, 1, 8, 16, 8, 1),
        ("big", 128, 128, 16, 1, 8, 8, 16, 1),
        ("big", 128, 256, 8, 1, 8, 16, 8, 1),
        ("big", 128, 256, 8, 2, 8, 16, 8, 1),
        ("big", 256, 128, 8, 1, 16, 8, 8, 1),
        ("big", 256, 128, 8, 2, 16, 8, 8, 1),
        ("big", 128, 128, 8, 1, 8, 8, 8, 1),
        ("big", 128, 128, 8, 2, 8, 8, 8, 1),
        ("alt", 128, 128, 8, 2, 8, 16, 8, 1),
        ("alt", 128, 128, 32, 1, 8, 16, 4, 1),
        ("alt", 128, 128, 16, 1, 16, 8, 4, 1),
        ("alt", 64, 128, 16, 1, 8, 16, 4, 1),
        ("alt", 128, 64, 16, 1, 8, 16, 4, 1),
        ("alt", 128, 128, 16, 1, 8, 16, 2, 1),
        ("next", 128, 128, 8, 2, 16, 8, 8, 1),
        ("next", 128, 128, 8, 2, 16, 8, 4, 1),
        ("next", 128, 128, 8, 2, 16, 8, 2, 1),
        ("next", 128, 128, 8, 2, 8, 16, 4, 1),
        ("next", 128, 128, 8, 2, 8, 16, 8, 2),
        ("next", 128, 128, 4, 2, 8, 16, 4, 1),
        ("next", 128, 128, 16, 2, 8, 16, 8, 1),
        ("next", 256, 128, 8, 2, 16, 8, 4, 1),
        ("next", 256, 128, 8, 2, 16, 8, 8, 2),
        ("next", 256, 128, 8, 2, 8, 16, 8, 1),
        ("next", 128, 256, 8, 2, 16, 8, 8, 1),
    ] {
        let t = MatmulTiles::wide(bm, bn, bk, stages)
            .per_thread(tm, tn)
            .unrolled(u)
            .ahead(ahead);
        let bytes = stages * (bm + bn) * bk * 4;
        let ahead = if ahead > 1 { ", 2 ahead" } else { "" };
        cands.push((
            format!("{family} {bm}x{bn}k{bk}s{stages} {tm}x{tn} u{u}{ahead}"),
            t,
            true,
            if bytes > 16384 {
                native
            } else {
                Limits::WEBGPU
            },
        ));
    }
    cands.push((
        "scalar 32x32k16".into(),
        MatmulTiles::scalar(32, 32, 16, 2, 2),
        false,
        Limits::WEBGPU,
    ));
    for (name, t, wide, limits) in cands {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let k = if wide {
            matmul_wide::<f32, f32, f32>(t, Epilogue::None).needs(limits)
        } else {
            matmul::<f32, f32, f32>(t, Epilogue::None)
        };
        let mut cells: Vec<String> = [
            (big, 1),
            ((4096, 3072, 768), 1),
            ((4096, 768, 3072), 1),
            ((4096, 576, 768), 1),
            ((64, 384, 512), 1),
            ((64, 384, 512), 8),
            ((64, 512, 2048), 8),
        ]
        .into_iter()
        .map(|(shape, s)| time_kernel(b, &k, &format!("matmul_{name}"), t, 4, shape, s).0)
        .collect();
        if wide && gpu.f16 {
            let k16 =
                matmul_wide::<webdit_dsl::f16, webdit_dsl::f16, webdit_dsl::f16>(t, Epilogue::None)
                    .needs(limits);
            cells.push(time_kernel(b, &k16, &format!("matmul_{name}_f16"), t, 2, big, 1).0);
        } else {
            cells.push(String::new());
        }
        println!(
            "| {name} | {}×{}×{}, {}×{}, {} stage(s) | {} |",
            t.bm,
            t.bn,
            t.bk,
            t.tm,
            t.tn,
            t.stages,
            cells.join(" | ")
        );
    }
    if only.is_some_and(|o| "ceiling".contains(o)) {
        ceiling(b, big);
    }
}

/// The inner product's ceiling at `big` (f32): the shipped large tile and two others, each
/// against [`matmul_wide_ceiling`] on the same tiles (every K-step multiplied from tiles
/// staged once: no global loads or barriers), so that the table shows what staging costs
/// and what the FMA loop alone reaches as the driver compiles it.
fn ceiling(b: &Bench, big: (usize, usize, usize)) {
    println!("\n## The inner product's ceiling (f32, {}×{}×{})\n\n| tiles | kernel | tiles staged once |\n|---|---|---|", big.0, big.1, big.2);
    for (shipped, t) in [
        (true, Tiles::default().matmul),
        (false, MatmulTiles::wide(128, 128, 16, 1).unrolled(8)),
        (
            false,
            MatmulTiles::wide(128, 128, 16, 1)
                .per_thread(8, 16)
                .unrolled(16),
        ),
    ] {
        let kernel = matmul_wide::<f32, f32, f32>(t, Epilogue::None);
        let bound = matmul_wide_ceiling::<f32, f32>(t);
        println!(
            "| {}{}×{}×{}, {}×{}, u{} | {} | {} |",
            if shipped { "shipped " } else { "" },
            t.bm,
            t.bn,
            t.bk,
            t.tm,
            t.tn,
            t.k_unroll,
            time_kernel(b, &kernel, "matmul_wide", t, 4, big, 1).0,
            time_kernel(b, &bound, "matmul_wide_ceiling", t, 4, big, 1).0
        );
    }
}

/// The barrier-free product for software adapters against the software plan's kernel (the
/// wide kernel on its mid tiles, unsplit) at every product shape of the models at batch 1.
pub fn software(b: &Bench, models: &[(String, Config)]) {
    let t = Tiles::default();
    println!("\n## Products for software adapters (f32, unsplit)\n\n| shape | {}×{} tiles | direct 8×8 | direct 4×16 | direct 16×4 | direct 2×32 |\n|---|---|---|---|---|---|", t.mid.bm, t.mid.bn);
    let mut shapes = vec![];
    for (_, c) in models {
        for (_, s) in model_products(c, 1) {
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
    }
    for shape in shapes {
        let mut cells = vec![
            time_kernel(
                b,
                &matmul_wide::<f32, f32, f32>(t.mid, Epilogue::None),
                "mid",
                t.mid,
                4,
                shape,
                1,
            )
            .0,
        ];
        for (rows, cols) in [(8, 8), (4, 16), (16, 4), (2, 32)] {
            let tiles = MatmulTiles::scalar(4 * rows, 4 * cols, 4, 4, 4);
            let k = matmul_direct(rows, cols, Epilogue::None);
            cells.push(time_kernel(b, &k, "direct", tiles, 4, shape, 1).0);
        }
        println!(
            "| {}×{}×{} | {} |",
            shape.0,
            shape.1,
            shape.2,
            cells.join(" | ")
        );
    }
}

/// Candidate K-steps, buffering and per-invocation tiles for the mid (64×64) and small
/// (32×32) tiers, at the shapes and slices of K the model's plans run them with (f32, and
/// f16 storage at the first shape). The tier's BM×BN stays, so every plan stays as it is.
pub fn sweep_tiers(b: &Bench) {
    let t = Tiles::default();
    type Shapes = [((usize, usize, usize), usize); 5];
    let mid: Shapes = [
        ((1024, 2048, 512), 1),
        ((1024, 512, 2048), 4),
        ((4096, 768, 3072), 1),
        ((4096, 576, 768), 1),
        ((256, 3072, 768), 2),
    ];
    let small: Shapes = [
        ((64, 2048, 512), 4),
        ((64, 384, 512), 8),
        ((64, 512, 2048), 16),
        ((256, 576, 768), 4),
        ((1024, 512, 192), 1),
    ];
    let w = MatmulTiles::wide;
    let tiers: [(&str, Shapes, Vec<MatmulTiles>); 2] = [
        (
            "mid",
            mid,
            vec![
                t.mid,
                w(64, 64, 8, 2).unrolled(8),
                w(64, 64, 8, 2).unrolled(4),
                w(64, 64, 8, 2).unrolled(2),
                w(64, 64, 8, 2).per_thread(8, 4).unrolled(8),
                w(64, 64, 8, 2).per_thread(4, 8).unrolled(8),
                w(64, 64, 16, 2).unrolled(8),
                w(64, 64, 16, 2).unrolled(16),
                w(64, 64, 16, 2).per_thread(4, 8).unrolled(4),
                w(64, 64, 16, 1).per_thread(4, 8).unrolled(4),
                w(64, 64, 8, 2).per_thread(4, 4).unrolled(8),
            ],
        ),
        (
            "small",
            small,
            vec![
                t.small,
                w(32, 32, 8, 2).per_thread(4, 4).unrolled(8),
                w(32, 32, 16, 2).per_thread(4, 4).unrolled(4),
                w(32, 32, 16, 2).per_thread(4, 4).unrolled(16),
                w(32, 32, 16, 1).per_thread(4, 4).unrolled(4),
                w(32, 32, 32, 2).per_thread(4, 4).unrolled(4),
                w(32, 32, 16, 2).per_thread(4, 4),
            ],
        ),
    ];
    for (tier, shapes, cands) in tiers {
        let head: Vec<String> = shapes
            .iter()
            .map(|((m, n, k), s)| match s {
                1 => format!("{m}×{n}×{k}"),
                s => format!("{m}×{n}×{k}, K/{s} partials"),
            })
            .collect();
        println!(
            "\n## {tier} tier candidates (f32 unless named)\n\n| tiles | {} | {}, f16 storage | WGSL |\n|---|---|---|---|---|---|---|---|",
            head.join(" | "),
            head[0]
        );
        for (i, tiles) in cands.into_iter().enumerate() {
            let k = matmul_wide::<f32, f32, f32>(tiles, Epilogue::None);
            let bytes = webdit_codegen::compile(&k)
                .map(|c| c.wgsl.len())
                .unwrap_or(0);
            let name = format!("{tier}_{i}");
            let mut cells: Vec<String> = shapes
                .iter()
                .map(|(shape, s)| time_kernel(b, &k, &name, tiles, 4, *shape, *s).0)
                .collect();
            if b.gpu.f16 {
                let k16 = matmul_wide::<webdit_dsl::f16, webdit_dsl::f16, webdit_dsl::f16>(
                    tiles,
                    Epilogue::None,
                );
                let (shape, s) = shapes[0];
                cells.push(time_kernel(b, &k16, &format!("{name}_f16"), tiles, 2, shape, s).0);
            } else {
                cells.push(String::new());
            }
            println!(
                "| {}{}×{}×{}, {}×{}, {} stage(s), u{} | {} | {:.0} KB |",
                if i == 0 { "shipped " } else { "" },
                tiles.bm,
                tiles.bn,
                tiles.bk,
                tiles.tm,
                tiles.tn,
                tiles.stages,
                tiles.k_unroll,
                cells.join(" | "),
                bytes as f64 / 1e3
            );
        }
    }
}

/// `matvec_rows` (one workgroup per row of X, every output of the row) at favicon-s batch
/// 1's qkv shape and others of its batch-1 products, at several workgroup sizes and outputs
/// per subgroup pass, f32 and f16: what a reduction with the AdaLN would add if it also
/// multiplied its row by the next product's weights.
pub fn row_products(b: &Bench) {
    use webdit_dsl::f16;
    use webdit_kernels::matvec::{matvec_rows, MatvecParams};
    let gpu = b.gpu;
    println!("\n## One row per workgroup (`matvec_rows`)\n\n| shape | storage | workgroups a row | workgroup | outputs a pass | strides unrolled | time | achieved |\n|---|---|---|---|---|---|---|---|");
    for (m, n, k) in [(64, 384, 512), (64, 192, 512), (256, 576, 768)] {
        for half in [true, false] {
            if half && !gpu.f16 {
                continue;
            }
            for groups in [1u32, 4, 8] {
                for (wg, cols, qu) in [
                    (256, 4, 1),
                    (256, 4, 4),
                    (256, 2, 4),
                    (128, 4, 4),
                    (128, 2, 4),
                ] {
                    let kern = match (half, wg) {
                        (true, 256) => matvec_rows::<f16, f16, 256>(cols, qu),
                        (true, _) => matvec_rows::<f16, f16, 128>(cols, qu),
                        (false, 256) => matvec_rows::<f32, f32, 256>(cols, qu),
                        (false, _) => matvec_rows::<f32, f32, 128>(cols, qu),
                    };
                    let wgsl = webdit_codegen::compile(&kern)
                        .unwrap_or_else(|e| panic!("{e}"))
                        .wgsl;
                    let name = format!("matvec_rows_{wg}_{cols}_{qu}");
                    let kernel = gpu.kernel(KernelSource::leak(&name, &kern, wgsl)).unwrap();
                    let e = if half { 2 } else { 4 };
                    let (x, w, y) = (
                        buffer(gpu, m * k * e),
                        buffer(gpu, n * k * e),
                        buffer(gpu, m * n * e),
                    );
                    let p = MatvecParams {
                        n: n as u32,
                        k: k as u32,
                    };
                    let p = gpu.uniform("p", &p.to_bytes());
                    let bind = kernel.bind(gpu, &[&x, &w, &y, &p]).unwrap();
                    let secs = b.time(&kernel, &bind, [m as u32, groups, 1]);
                    println!(
                        "| {m}×{n}×{k} | {} | {groups} | {wg} | {cols} | {qu} | {:.1} µs | {:.0} GFLOP/s |",
                        if half { "f16" } else { "f32" },
                        secs * 1e6,
                        2.0 * (m * n * k) as f64 / secs / 1e9
                    );
                }
            }
        }
    }
}
