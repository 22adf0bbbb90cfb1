//! Every kernel on a real wgpu device against a plain CPU reference (f64), on fresh random
//! inputs, with outputs poisoned and guarded, at sizes that are and are not tile multiples.

use webdit_dsl::UniformStruct;
use webdit_kernels::elementwise::Len;
use webdit_kernels::matmul::{matmul, MatmulParams, MatmulTiles};
use webdit_kernels::norm::AdaLnParams;
use webdit_kernels::Tiles;
use webdit_model::kernels;
use webdit_tests::*;

fn matmul_ref(a: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|l| a[i * k + l] as f64 * w[j * k + l] as f64)
                .sum();
        }
    }
    c
}

fn check_matmul(src: &'static kernels::KernelSource, t: MatmulTiles, m: u32, n: u32, k: u32) {
    let mut rng = rng(&format!("matmul {} {m}x{n}x{k}", src.name));
    let a = random(&mut rng, (m * k) as usize);
    let w = random(&mut rng, (n * k) as usize);
    let p = MatmulParams { m, n, k }.to_bytes();
    let out = run(
        src,
        &[
            Arg::Input(&a),
            Arg::Input(&w),
            Arg::Output((m * n) as usize),
            Arg::Uniform(p),
        ],
        [groups(n, t.bn), groups(m, t.bm), 1],
    );
    let want = matmul_ref(&a, &w, m as usize, n as usize, k as usize);
    assert_close(
        &format!("matmul {} {m}x{n}x{k}", src.name),
        &out[0],
        &want,
        1e-5,
    );
}

/// The build's variant on the model's shapes and on ragged ones.
#[test]
fn matmul_registered_variant() {
    let t = Tiles::named(kernels::TILES).unwrap().matmul;
    for (m, n, k) in [
        (64, 512, 192),
        (128, 128, 128),
        (1, 1, 1),
        (65, 67, 33),
        (100, 513, 31),
        (256, 96, 512),
    ] {
        check_matmul(&kernels::MATMUL, t, m, n, k);
    }
}

/// Every tile configuration a Cargo feature can pick.
#[test]
fn matmul_every_tile_choice() {
    for (name, tiles) in Tiles::CHOICES {
        let src = compile(&format!("matmul_{name}"), &matmul(tiles.matmul));
        for (m, n, k) in [(130, 70, 40), (64, 128, 64)] {
            check_matmul(src, tiles.matmul, m, n, k);
        }
    }
}

fn adaln_ref(x: &[f32], scale: &[f32], shift: &[f32], d: usize, rows_per_batch: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (r, row) in x.chunks(d).enumerate() {
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (d - 1) as f64;
        let std = var.sqrt() + 1e-5;
        let b = r / rows_per_batch;
        for i in 0..d {
            let (s, h) = (scale[b * d + i] as f64, shift[b * d + i] as f64);
            y[r * d + i] = (row[i] as f64 - mean) / std * (1.0 + s) + h;
        }
    }
    y
}

#[test]
fn adaln_matches_reference() {
    let mut rng = rng("adaln");
    for (d, rows_per_batch, batch) in [(512, 64, 2), (768, 256, 1), (100, 7, 3), (3, 5, 1)] {
        let rows = rows_per_batch * batch;
        let x: Vec<f32> = random(&mut rng, rows * d)
            .iter()
            .map(|v| v * 3.0 + 0.5)
            .collect();
        let scale = random(&mut rng, batch * d);
        let shift = random(&mut rng, batch * d);
        let p = AdaLnParams {
            d: d as u32,
            rows: rows as u32,
            rows_per_batch: rows_per_batch as u32,
        };
        let out = run(
            &kernels::ADALN,
            &[
                Arg::Input(&x),
                Arg::Input(&scale),
                Arg::Input(&shift),
                Arg::Output(rows * d),
                Arg::Uniform(p.to_bytes()),
            ],
            [rows as u32, 1, 1],
        );
        let want = adaln_ref(&x, &scale, &shift, d, rows_per_batch);
        assert_close(&format!("adaln d={d} rows={rows}"), &out[0], &want, 1e-5);
    }
}

#[test]
fn silu_matches_reference() {
    let mut rng = rng("silu");
    for n in [1usize, 255, 256, 1000, 65536 + 3] {
        let x: Vec<f32> = random(&mut rng, n).iter().map(|v| v * 20.0).collect();
        let out = run(
            &kernels::SILU,
            &[
                Arg::Input(&x),
                Arg::Output(n),
                Arg::Uniform(Len { n: n as u32 }.to_bytes()),
            ],
            [groups(n as u32, 256), 1, 1],
        );
        let want: Vec<f64> = x
            .iter()
            .map(|v| *v as f64 / (1.0 + (-*v as f64).exp()))
            .collect();
        assert_close(&format!("silu n={n}"), &out[0], &want, 1e-6);
    }
}
