//! The tensor-core matmul (`matmul_coop`, f16 operands accumulated in f32 by cooperative
//! matrices) against the f16 wide kernel, at the large square and at the model's shapes.

use crate::sweep::time_kernel;
use crate::timing::Bench;
use webdit_dsl::f16;
use webdit_kernels::matmul::{matmul_wide, Epilogue, MatmulTiles};
use webdit_kernels::matmul_coop::{
    matmul_coop, CoopTiles, COOP_TILES, COOP_TILES_FILL, COOP_TILES_LARGE, COOP_TILES_SPLIT,
};
use webdit_kernels::Tiles;

pub fn coop(b: &Bench, big: (usize, usize, usize)) {
    println!("\n## Tensor cores (cooperative matrices, 16x16x16 f16 -> f32)\n");
    if !has_coop(b) {
        return;
    }
    let tiles = [
        COOP_TILES,
        COOP_TILES_LARGE,
        COOP_TILES_FILL,
        COOP_TILES_SPLIT,
    ];
    print!("| shape (M×N×K) | wide kernel, f16 | default tile, f32 out |");
    for t in &tiles {
        print!(
            " {}×{} k{} {}×{} s{}, f16 out |",
            t.bm, t.bn, t.bk, t.warps_m, t.warps_n, t.stages
        );
    }
    println!("\n|---|---|---|{}", "---|".repeat(tiles.len()));
    let wide = Tiles::default().matmul_f16;
    let k_wide = matmul_wide::<f16, f16, f16>(wide, Epilogue::None);
    let t = COOP_TILES;
    let k32 = matmul_coop::<f16, f32>(t, Epilogue::None, 0).needs(t.limits());
    let grid = |t: CoopTiles| MatmulTiles::wide(t.bm, t.bn, t.bk, 1);
    // 4096³, favicon-b batch 16 (MLP in and out), favicon-s batch 16 and 1 (MLP in).
    for shape in [
        big,
        (4096, 3072, 768),
        (4096, 768, 3072),
        (1024, 2048, 512),
        (64, 2048, 512),
    ] {
        let (m, n, k) = shape;
        let (wide_cell, _) = time_kernel(b, &k_wide, "wide_f16", wide, 2, shape, 1);
        let (c32, _) = time_kernel(b, &k32, "coop_f32", grid(t), 2, shape, 1);
        print!("| {m}×{n}×{k} | {wide_cell} | {c32} |");
        for t in tiles {
            if !fits(b, t) {
                print!(" beyond this adapter's limits |");
                continue;
            }
            let k16 = matmul_coop::<f16, f16>(t, Epilogue::None, 0).needs(t.limits());
            let (cell, _) = time_kernel(b, &k16, "coop_f16", grid(t), 2, shape, 1);
            print!(" {cell} |");
        }
        println!();
    }
}

/// Candidate tiles for [`matmul_coop`] (f16 out), one row each: which fit the adapter's
/// workgroup memory, and their rate at 4096³ and at the MLP products of favicon-b and
/// favicon-s at batch 16.
pub fn sweep(b: &Bench, big: (usize, usize, usize)) {
    println!("\n## Tensor-core tile sweep (f16 out)\n");
    if !has_coop(b) {
        return;
    }
    let tile = |bm, bn, bk, warps_m, warps_n, stages| CoopTiles {
        bm,
        bn,
        bk,
        warps_m,
        warps_n,
        stages,
        prefetch: 1,
    };
    // The shipped tiles, each next to the same tile with loads one or two K-steps ahead,
    // and the tiles tried before.
    let candidates = [
        COOP_TILES_LARGE,
        COOP_TILES_LARGE.ahead(1),
        tile(256, 128, 32, 8, 2, 1),
        tile(256, 128, 32, 8, 2, 1).ahead(2),
        tile(256, 128, 16, 8, 2, 1),
        tile(256, 128, 16, 8, 2, 1).ahead(2),
        tile(256, 128, 32, 4, 2, 1),
        tile(256, 128, 16, 4, 2, 2),
        tile(128, 256, 16, 2, 4, 2),
        tile(128, 256, 32, 2, 8, 1),
        tile(256, 64, 16, 4, 2, 2),
        tile(256, 128, 64, 4, 2, 1),
        COOP_TILES,
        COOP_TILES.ahead(1),
        tile(128, 128, 32, 2, 4, 2),
        tile(128, 128, 32, 2, 4, 2).ahead(2),
        tile(128, 128, 32, 2, 4, 1).ahead(2),
        tile(128, 128, 32, 4, 2, 1).ahead(2),
        tile(128, 128, 64, 2, 4, 1),
        tile(128, 128, 16, 2, 4, 2),
        COOP_TILES_FILL,
        COOP_TILES_FILL.ahead(2),
        tile(192, 128, 32, 4, 4, 1),
        tile(192, 128, 32, 4, 4, 1).ahead(2),
        tile(192, 128, 16, 6, 2, 2),
    ];
    let shapes = [
        big,
        (4096, 3072, 768),
        (4096, 768, 3072),
        (1024, 2048, 512),
        (1024, 512, 2048),
    ];
    println!("| tile (bm×bn×bk, subgroups, stages, K-steps loaded ahead) | workgroup memory | pipeline | {}×{}×{} | 4096×3072×768 | 4096×768×3072 | 1024×2048×512 | 1024×512×2048 |", big.0, big.1, big.2);
    println!("|---|---|---|---|---|---|---|---|");
    for t in candidates {
        let bytes = t.limits().max_workgroup_storage_bytes;
        let name = format!(
            "{}×{}×{}, {}×{}, {}{}",
            t.bm,
            t.bn,
            t.bk,
            t.warps_m,
            t.warps_n,
            t.stages,
            if t.prefetch == 2 { ", 2 ahead" } else { "" }
        );
        if !fits(b, t) {
            println!("| {name} | {bytes} B | beyond this adapter's limits | | | | | |");
            continue;
        }
        let k = matmul_coop::<f16, f16>(t, Epilogue::None, 0).needs(t.limits());
        if let Err(e) = webdit_codegen::compile(&k) {
            println!("| {name} | {bytes} B | does not compile: {e} | | | | | |");
            continue;
        }
        let grid = MatmulTiles::wide(t.bm, t.bn, t.bk, 1);
        let timed: Vec<(String, f64)> = shapes
            .into_iter()
            .map(|shape| time_kernel(b, &k, "coop_sweep", grid, 2, shape, 1))
            .collect();
        // The first creation compiles; the driver's cache serves the others.
        let created = timed[0].1;
        let cells: Vec<String> = timed.into_iter().map(|(cell, _)| cell).collect();
        println!(
            "| {name} | {bytes} B | {:.0} ms | {} |",
            created * 1e3,
            cells.join(" | ")
        );
    }
}

/// Whether the adapter has the cooperative matrices the kernels use; if not, says so.
fn has_coop(b: &Bench) -> bool {
    if !b.gpu.coop {
        println!(
            "not measured: {} has no cooperative matrices at 16x16x16 f16 -> f32",
            b.gpu.describe()
        );
    }
    b.gpu.coop
}

/// Whether tile `t`'s kernels fit the adapter's workgroup memory and invocations.
fn fits(b: &Bench, t: CoopTiles) -> bool {
    let limits = b.gpu.device.limits();
    t.limits().max_workgroup_storage_bytes <= limits.max_compute_workgroup_storage_size
        && t.threads() <= limits.max_compute_invocations_per_workgroup
}

/// Every split of K on tensor cores for the model's products that split there (fewer than
/// [`COOP_MIN_GROUPS`] workgroups whole): the 64×128 and the 128×128 tile at each slice
/// count [`coop_slice`] allows (beyond one wave too), partial products alone
/// and with their reduction (f16 out), next to the planner's choice. Measures what
/// [`plan_coop_split`] picks from.
pub fn splits(b: &Bench, models: &[(String, webdit_model::Config)]) {
    use crate::products::{model_products, split_ops};
    use crate::timing::{buffer, source};
    use webdit_model::tiers::{
        coop_slice, plan_coop, plan_coop_split, MatmulPlan, COOP_MIN_GROUPS, SCRATCH_FLOATS,
    };
    println!(
        "\n## Split-K on tensor cores: every slice count (f16 operands, f32 partials, f16 out)\n"
    );
    if !has_coop(b) {
        return;
    }
    println!("| product | shape | planned | tile | slices: workgroups, partials / with reduction (µs) |\n|---|---|---|---|---|");
    let gpu = b.gpu;
    let reduce = gpu.kernel(source("splitk_reduce_f16")).expect("pipeline");
    for (name, c) in models {
        for batch in [1usize, 4, 16] {
            for (what, (m, n, k)) in model_products(c, batch) {
                let whole = plan_coop((m, n, k), Epilogue::None, COOP_MIN_GROUPS);
                if whole.is_some() || !k.is_multiple_of(4) {
                    continue;
                }
                let planned = match plan_coop_split((m, n, k), SCRATCH_FLOATS) {
                    Some((s, _, small)) => {
                        format!("{} K/{s}", if small { "64×128" } else { "128×128" })
                    }
                    None => "f16 kernels".into(),
                };
                let (a, w, out, extra) = (
                    buffer(gpu, m * k * 2),
                    buffer(gpu, n * k * 2),
                    buffer(gpu, m * n * 2),
                    buffer(gpu, n * 2),
                );
                for (tile, t, small) in [
                    ("64×128", COOP_TILES_SPLIT, true),
                    ("128×128", COOP_TILES, false),
                ] {
                    let partial = gpu
                        .kernel(source(&webdit_kernels::Key::CoopPartial { small }.name()))
                        .expect("pipeline");
                    let groups = [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm)];
                    // Even slices, and uneven ones (whole K-steps, a shorter last one).
                    let cells: Vec<String> = (1..=16usize)
                        .filter(|s| *s == 1 || coop_slice(k, *s as u32).is_some())
                        .filter(|s| m * n * s <= SCRATCH_FLOATS)
                        .map(|s| {
                            let plan = MatmulPlan {
                                tier: "coop",
                                tiles: MatmulTiles::wide(t.bm, t.bn, t.bk, 1),
                                groups: [groups[0], groups[1], 1],
                                splits: s as u32,
                                shape: (m, n, k),
                            };
                            let bufs = [&a, &w, &out, &extra];
                            let [(pk, pb, pg), (rk, rb, rg)] =
                                split_ops(b, [&partial, &reduce], &plan, bufs);
                            let alone = b.time(pk, &pb, pg);
                            let both = b.time_ops(&[(pk, &pb, pg), (rk, &rb, rg)]);
                            format!(
                                "{s}: {}, {:.1} / {:.1}",
                                groups[0] * groups[1] * s as u32,
                                alone * 1e6,
                                both * 1e6
                            )
                        })
                        .collect();
                    println!(
                        "| {name} b{batch} {what} | {m}×{n}×{k} | {planned} | {tile} | {} |",
                        cells.join("; ")
                    );
                }
            }
        }
    }
}
