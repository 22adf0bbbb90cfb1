//! The tensor-core matmul (`matmul_coop`, f16 operands accumulated in f32 by cooperative
//! matrices) against the f16 wide kernel, at the large square and at the model's shapes.

use crate::sweep::time_kernel;
use crate::timing::Bench;
use webdit_dsl::f16;
use webdit_kernels::matmul::{matmul_wide, Epilogue, MatmulTiles};
use webdit_kernels::matmul_coop::{
    matmul_coop, CoopTiles, COOP_TILES, COOP_TILES_LARGE, COOP_TILES_SPLIT,
};
use webdit_kernels::Tiles;

pub fn coop(b: &Bench, big: (usize, usize, usize)) {
    println!("\n## Tensor cores (cooperative matrices, 16x16x16 f16 -> f32)\n");
    if !b.gpu.coop {
        println!(
            "not measured: {} has no cooperative matrices at 16x16x16 f16 -> f32",
            b.gpu.describe()
        );
        return;
    }
    let tiles = [COOP_TILES, COOP_TILES_LARGE, COOP_TILES_SPLIT];
    let limits = b.gpu.device.limits();
    let granted = limits.max_compute_workgroup_storage_size;
    print!("| shape (M×N×K) | wide kernel, f16 | default tile, f32 out |");
    for t in &tiles {
        print!(
            " {}×{} k{} {}×{} s{}, f16 out |",
            t.bm, t.bn, t.bk, t.warps_m, t.warps_n, t.stages
        );
    }
    println!("\n|---|---|---|---|---|---|");
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
            if t.limits().max_workgroup_storage_bytes > granted
                || t.threads() > limits.max_compute_invocations_per_workgroup
            {
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
