//! Every kernel on a real wgpu device against a plain CPU reference (f64), on fresh random
//! inputs, with outputs poisoned and guarded, at sizes that are and are not tile multiples,
//! with batch > 1. f16 variants are compared against the reference on f16-rounded inputs.

use webdit_dsl::ir::Limits;
use webdit_dsl::prelude::{global_id, kernel, vec2, vec4, Uniform};
use webdit_dsl::UniformStruct;
use webdit_kernels::attention::{AttentionParams, BQ, ROWS, ROWS_MAX_N};
use webdit_kernels::elementwise::Len;
use webdit_kernels::layout::{PatchParams, SinusParams};
use webdit_kernels::matmul::{matmul, matmul_wide, Epilogue, MatmulParams, MatmulTiles, DIRECT};
use webdit_kernels::matvec::{MatvecParams, OUTPUTS};
use webdit_kernels::norm::AdaLnParams;
use webdit_kernels::sampler::{philox, StepParams};
use webdit_kernels::Tiles;
use webdit_model::kernels::{self, by_name};
use webdit_model::noise;
use webdit_tests::*;

fn variant(name: &str) -> &'static kernels::KernelSource {
    by_name(name).unwrap_or_else(|| panic!("no variant {name}"))
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

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

#[derive(Clone, Copy)]
struct MatmulCase {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    epilogue: Epilogue,
    f16: bool,
    /// C in f16 (else f32; the tensor-core kernel takes f16 operands into f32).
    out_f16: bool,
}

/// Checks a matmul variant dispatched over `bm`×`bn` tiles of C.
fn check_matmul(src: &'static kernels::KernelSource, (bm, bn): (u32, u32), case: MatmulCase) {
    let MatmulCase {
        m,
        n,
        k,
        batch,
        epilogue,
        f16,
        out_f16,
    } = case;
    let what = format!("{} {m}x{n}x{k} batch {batch}", src.name);
    let mut rng = rng(&what);
    let (mn, mk, nk) = ((m * n) as usize, (m * k) as usize, (n * k) as usize);
    let round = |v: Vec<f32>| if f16 { round_f16(&v) } else { v };
    let a = round(random(&mut rng, mk * batch as usize));
    let w = round(random(&mut rng, nk));
    let period = 7.min(m);
    // The epilogue's operands are in C's type.
    let round_out = |v: Vec<f32>| if out_f16 { round_f16(&v) } else { v };
    let extra = round_out(random(&mut rng, (period * n) as usize));
    let prior = round_out(random(&mut rng, mn * batch as usize));
    let p = MatmulParams {
        a_batch_stride: m * k,
        c_batch_stride: m * n,
        rows_period: period,
        ..MatmulParams::new(m, n, k)
    };
    let arg = |d: &'static [f32]| if f16 { Arg::InputF16(d) } else { Arg::Input(d) };
    let leak = |v: Vec<f32>| -> &'static [f32] { Box::leak(v.into_boxed_slice()) };
    let (a, w, extra, prior) = (leak(a), leak(w), leak(extra), leak(prior));
    let extra_arg = if out_f16 {
        Arg::InputF16(extra)
    } else {
        Arg::Input(extra)
    };
    let out = match (epilogue, out_f16) {
        (Epilogue::Accumulate, false) => Arg::InOut(prior),
        (Epilogue::Accumulate, true) => panic!("covered with f32 outputs"),
        _ if out_f16 => Arg::OutputF16(mn * batch as usize),
        _ => Arg::Output(mn * batch as usize),
    };
    let got = run(
        src,
        &[arg(a), arg(w), out, extra_arg, Arg::Uniform(p.to_bytes())],
        [groups(n, bn), groups(m, bm), batch],
    );
    let mut want = vec![];
    for b in 0..batch as usize {
        let c = matmul_ref(
            &a[b * mk..(b + 1) * mk],
            w,
            m as usize,
            n as usize,
            k as usize,
        );
        want.extend(c.iter().enumerate().map(|(i, v)| {
            let (r, col) = (i / n as usize, i % n as usize);
            match epilogue {
                Epilogue::None => *v,
                Epilogue::Silu => silu(*v),
                Epilogue::Accumulate => v + prior[b * mn + i] as f64,
                Epilogue::AddRows => v + extra[(r % period as usize) * n as usize + col] as f64,
            }
        }));
    }
    // Errors scale with the terms of each sum (|a|·|w| plus the epilogue's addend), not with
    // the result, which can cancel to nearly zero.
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let terms = magnitude(&matmul_ref(
        &abs(a),
        &abs(w),
        m as usize,
        n as usize,
        k as usize,
    ));
    let addend = match epilogue {
        Epilogue::AddRows => abs(extra).iter().fold(0f32, |m, v| m.max(*v)),
        Epilogue::Accumulate => abs(prior).iter().fold(0f32, |m, v| m.max(*v)),
        Epilogue::None | Epilogue::Silu => 0.0,
    };
    let scale = magnitude(&want).max(terms + addend as f64);
    // f16 results round to 11 bits; f16 operands are exact and every sum is in f32.
    let tol = if out_f16 {
        2e-3
    } else if f16 {
        1e-4
    } else {
        1e-5
    };
    assert_close_to(&what, &got[0], &want, scale, tol);
}

fn build_tiles() -> Tiles {
    Tiles::named(kernels::TILES).unwrap()
}

/// Checks `name` (a wide-kernel variant name) and its `_mid`, `_small` and `_scalar` tiers
/// on `case`; the wide tiers read `vec4`s along K, so they get K rounded up to a multiple
/// of 4.
fn check_tiers(name: &str, epilogue: Epilogue, f16: bool, (m, n, k, batch): (u32, u32, u32, u32)) {
    let case = MatmulCase {
        m,
        n,
        k,
        batch,
        epilogue,
        f16,
        out_f16: f16,
    };
    let tiles = build_tiles();
    let wide = MatmulCase {
        k: case.k.next_multiple_of(4),
        ..case
    };
    check_matmul(variant(name), (tiles.matmul.bm, tiles.matmul.bn), wide);
    let mid = name.replace("matmul", "matmul_mid");
    check_matmul(variant(&mid), (tiles.mid.bm, tiles.mid.bn), wide);
    let small = name.replace("matmul", "matmul_small");
    check_matmul(variant(&small), (tiles.small.bm, tiles.small.bn), wide);
    let scalar = name.replace("matmul", "matmul_scalar");
    check_matmul(variant(&scalar), (tiles.scalar.bm, tiles.scalar.bn), case);
    // The software adapters' product (f32, no workgroup memory).
    if !f16 {
        let direct = name.replace("matmul", "matmul_direct");
        let (rows, cols) = DIRECT;
        check_matmul(variant(&direct), (4 * rows, 4 * cols), wide);
    }
}

#[test]
fn matmul_every_epilogue_f32() {
    for (name, epilogue) in [
        ("matmul", Epilogue::None),
        ("matmul_silu", Epilogue::Silu),
        ("matmul_acc", Epilogue::Accumulate),
        ("matmul_addrows", Epilogue::AddRows),
    ] {
        for (m, n, k, batch) in [
            (64, 512, 192, 1),
            (65, 67, 33, 2),
            (1, 1, 1, 1),
            (100, 130, 31, 1),
            (260, 136, 20, 1),
            (130, 140, 52, 1),
        ] {
            check_tiers(name, epilogue, false, (m, n, k, batch));
        }
    }
}

#[test]
fn matmul_f16_variants() {
    if !gpu().f16 {
        eprintln!("adapter lacks shader-f16; f16 variants not run");
        return;
    }
    for (name, epilogue) in [
        ("matmul_f16", Epilogue::None),
        ("matmul_silu_f16", Epilogue::Silu),
        ("matmul_addrows_f16", Epilogue::AddRows),
    ] {
        for (m, n, k, batch) in [(64, 96, 128, 1), (37, 70, 45, 2), (130, 9, 20, 1)] {
            check_tiers(name, epilogue, true, (m, n, k, batch));
        }
    }
}

#[test]
fn matmul_every_tile_choice() {
    for (name, tiles) in Tiles::CHOICES {
        let src = compile(
            &format!("matmul_{name}"),
            &matmul_wide::<f32, f32, f32>(tiles.matmul, Epilogue::None).needs(tiles.limits),
        );
        for (m, n, k) in [(130, 70, 40), (64, 128, 64), (257, 129, 12)] {
            let case = MatmulCase {
                m,
                n,
                k,
                batch: 1,
                epilogue: Epilogue::None,
                f16: false,
                out_f16: false,
            };
            check_matmul(src, (tiles.matmul.bm, tiles.matmul.bn), case);
        }
    }
    // The wide kernel at other per-invocation tiles, buffering and prefetching than the
    // registered ones (K = 40 takes an odd number of K-steps of 16, so a double-buffered
    // loop ends half-way).
    for t in [
        MatmulTiles::wide(128, 256, 8, 1).per_thread(8, 16),
        MatmulTiles::wide(128, 128, 16, 2).per_thread(8, 16),
        MatmulTiles::wide(64, 32, 8, 2).per_thread(4, 4),
        MatmulTiles::wide(256, 64, 8, 1).per_thread(16, 4),
        // Loads two K-steps ahead: 40 is 5 K-steps of 8 (an odd count), 12 two of 8.
        MatmulTiles::wide(64, 64, 8, 1).per_thread(4, 8).ahead(2),
        MatmulTiles::wide(128, 128, 16, 2)
            .per_thread(8, 16)
            .ahead(2),
    ] {
        let src = compile(
            &format!(
                "matmul_wide_{}x{}_{}x{}_p{}",
                t.bm, t.bn, t.tm, t.tn, t.prefetch
            ),
            // Double-buffered 128×128 takes 32 KiB of workgroup memory: native only.
            &matmul_wide::<f32, f32, f32>(t, Epilogue::None).needs(Limits {
                max_workgroup_storage_bytes: 32768,
                ..Limits::WEBGPU
            }),
        );
        for (m, n, k) in [(130, 270, 40), (257, 33, 12)] {
            let case = MatmulCase {
                m,
                n,
                k,
                batch: 1,
                epilogue: Epilogue::None,
                f16: false,
                out_f16: false,
            };
            check_matmul(src, (t.bm, t.bn), case);
        }
    }
    // The scalar kernel at other tilings than the registered small one.
    for t in [
        MatmulTiles::scalar(64, 64, 16, 4, 4),
        MatmulTiles::scalar(128, 64, 8, 8, 4),
    ] {
        let src = compile(
            &format!("matmul_{}x{}", t.bm, t.bn),
            &matmul::<f32, f32, f32>(t, Epilogue::None),
        );
        let case = MatmulCase {
            m: 130,
            n: 70,
            k: 40,
            batch: 1,
            epilogue: Epilogue::None,
            f16: false,
            out_f16: false,
        };
        check_matmul(src, (t.bm, t.bn), case);
    }
}

#[test]
fn matvec_matches_reference() {
    let mut rng = rng("matvec");
    for (name, silu_after, f16w) in [
        ("matvec", false, false),
        ("matvec_silu", true, false),
        // f16 weights: compiled here (the model's timestep path keeps f32 weights).
        ("matvec_silu_w16", true, true),
    ] {
        if f16w && !gpu().f16 {
            continue;
        }
        for (m, n, k) in [
            (1usize, 128usize, 256usize),
            (2, 512, 128),
            (16, 37, 100),
            (3, 2304, 128),
        ] {
            let x = random(&mut rng, m * k);
            let mut w = random(&mut rng, n * k);
            if f16w {
                w = round_f16(&w);
            }
            let p = MatvecParams {
                n: n as u32,
                k: k as u32,
            };
            let warg = if f16w {
                Arg::InputF16(&w)
            } else {
                Arg::Input(&w)
            };
            let src = if f16w {
                webdit_tests::compile(
                    name,
                    &webdit_kernels::matvec::matvec::<f32, webdit_dsl::f16>(silu_after),
                )
            } else {
                variant(name)
            };
            let got = run(
                src,
                &[
                    Arg::Input(&x),
                    warg,
                    Arg::Output(m * n),
                    Arg::Uniform(p.to_bytes()),
                ],
                [groups(n as u32, OUTPUTS), m as u32, 1],
            );
            let want: Vec<f64> = matmul_ref(&x, &w, m, n, k)
                .into_iter()
                .map(|v| if silu_after { silu(v) } else { v })
                .collect();
            assert_close(&format!("{name} {m}x{n}x{k}"), &got[0], &want, 1e-5);
        }
    }
}

/// One row of X per workgroup times every weight row (`matvec_rows`), f32 and f16, at
/// several workgroup sizes and outputs per subgroup pass, N not a multiple of them (the
/// last pass clamps its weight rows and skips their stores), K not a multiple of the
/// lanes' stride.
#[test]
fn matvec_rows_matches_reference() {
    use webdit_kernels::matvec::matvec_rows;
    if !has_subgroups() {
        return;
    }
    let mut rng = rng("matvec_rows");
    for (m, n, k) in [(3usize, 37usize, 100usize), (5, 384, 512), (2, 7, 1024)] {
        let x = random(&mut rng, m * k);
        let w = round_f16(&random(&mut rng, n * k));
        let want = matmul_ref(&x, &w, m, n, k);
        let p = MatvecParams {
            n: n as u32,
            k: k as u32,
        };
        for (cols, qu, groups, half) in [
            (1, 1, 1, false),
            (4, 3, 4, false),
            (3, 2, 3, true),
            (8, 1, 1, true),
        ] {
            if half && !gpu().f16 {
                continue;
            }
            let name = format!("matvec_rows {m}x{n}x{k} cols {cols} qu {qu} /{groups} f16 {half}");
            let got = if half {
                let src = compile(
                    &name,
                    &matvec_rows::<webdit_dsl::f16, webdit_dsl::f16, 64>(cols, qu),
                );
                let args = [
                    Arg::InputF16(&x),
                    Arg::InputF16(&w),
                    Arg::OutputF16(m * n),
                    Arg::Uniform(p.to_bytes()),
                ];
                run(src, &args, [m as u32, groups, 1])
            } else {
                let src = compile(&name, &matvec_rows::<f32, f32, 128>(cols, qu));
                let args = [
                    Arg::Input(&x),
                    Arg::Input(&w),
                    Arg::Output(m * n),
                    Arg::Uniform(p.to_bytes()),
                ];
                run(src, &args, [m as u32, groups, 1])
            };
            let want: Vec<f64> = if half {
                // X rounded to f16 as stored; the sum in f32, the output rounded to f16.
                matmul_ref(&round_f16(&x), &w, m, n, k)
            } else {
                want.clone()
            };
            let tol = if half { 2e-3 } else { 1e-5 };
            assert_close(&name, &got[0], &want, tol);
        }
    }
}

fn attention_ref(qkv: &[f32], batch: usize, n: usize, heads: usize, dh: usize) -> Vec<f64> {
    let inner = heads * dh;
    let mut out = vec![0.0; batch * n * inner];
    let at = |b: usize, i: usize, part: usize, h: usize, d: usize| {
        qkv[(b * n + i) * 3 * inner + part * inner + h * dh + d] as f64
    };
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..dh)
                            .map(|d| at(b, i, 0, h, d) * at(b, j, 1, h, d))
                            .sum::<f64>()
                            / (dh as f64).sqrt()
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..dh {
                    out[(b * n + i) * inner + h * dh + d] =
                        (0..n).map(|j| e[j] * at(b, j, 2, h, d)).sum::<f64>() / z;
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_reference() {
    let mut rng = rng("attention");
    for f16 in [false, true] {
        if f16 && !gpu().f16 {
            continue;
        }
        for (n, dh, heads, batch) in [
            (64usize, 128u32, 1usize, 1usize),
            (256, 192, 1, 1),
            (33, 40, 3, 2),
            (5, 64, 2, 1),
            (17, 16, 2, 3),
            (70, 64, 1, 2),
            (250, 128, 2, 1),
        ] {
            let width = webdit_kernels::attention_width(dh as usize).unwrap();
            let dh = dh as usize;
            let name = format!("attention_d{width}{}", if f16 { "_f16" } else { "" });
            let mut qkv: Vec<f32> = random(&mut rng, batch * n * 3 * heads * dh)
                .iter()
                .map(|v| v * 2.0)
                .collect();
            if f16 {
                qkv = round_f16(&qkv);
            }
            let (input, output) = if f16 {
                (Arg::InputF16(&qkv), Arg::OutputF16(batch * n * heads * dh))
            } else {
                (Arg::Input(&qkv), Arg::Output(batch * n * heads * dh))
            };
            let want = attention_ref(&qkv, batch, n, heads, dh);
            let tol = if f16 { 2e-3 } else { 1e-5 };
            let what = format!("{name} n={n} dh={dh} heads={heads} batch={batch}");
            // In one pass, and with the keys in slices merged by the combine kernel.
            for chunks in [1, 2, 3] {
                let p = AttentionParams::new(n as u32, dh as u32, heads as u32).split(chunks);
                let rows = batch * heads * p.chunks as usize * n;
                let got = run(
                    variant(&name),
                    &[
                        input.clone(),
                        output.clone(),
                        Arg::Output(rows * dh),
                        Arg::Output(rows * 2),
                        Arg::Uniform(p.to_bytes()),
                    ],
                    [groups(n as u32, BQ) * p.chunks, heads as u32, batch as u32],
                );
                let got = if p.chunks == 1 {
                    got[0].clone()
                } else {
                    let sfx = if f16 { "_f16" } else { "" };
                    run(
                        variant(&format!("attention_combine{sfx}")),
                        &[
                            Arg::Input(&got[1]),
                            Arg::Input(&got[2]),
                            output.clone(),
                            Arg::Uniform(p.to_bytes()),
                        ],
                        [groups((n * heads * dh / 4) as u32, 256), batch as u32, 1],
                    )[0]
                    .clone()
                };
                let what = format!("{what} in {} slices", p.chunks);
                assert_close(&what, &got, &want, tol);
            }
            // A few query rows per workgroup, for short sequences (of the widths built).
            if n as u32 <= ROWS_MAX_N && webdit_kernels::attention_rows_width(dh).is_some() {
                let p = AttentionParams::new(n as u32, dh as u32, heads as u32);
                let got = run(
                    variant(&name.replace("attention_", "attention_rows_")),
                    &[input.clone(), output.clone(), Arg::Uniform(p.to_bytes())],
                    [groups(n as u32, ROWS), heads as u32, batch as u32],
                );
                assert_close(&format!("{what}, rows"), &got[0], &want, tol);
            }
        }
    }
}

/// Attention by rows of one head, its output projection into the residual and the AdaLN of
/// the new residual in one dispatch (`attention_rows_out*`), against attention, a product,
/// the residual rounded as stored and the AdaLN, in f64.
#[test]
fn attention_rows_out_matches_reference() {
    use webdit_kernels::attention::AttentionOutParams;
    let mut rng = rng("attention_rows_out");
    for f16 in [false, true] {
        if f16 && !gpu().f16 {
            continue;
        }
        let round = |v: Vec<f32>| if f16 { round_f16(&v) } else { v };
        // (tokens, head width, model width, batch): favicon-s, then rows and widths that
        // are not multiples of the workgroup's 4 rows and 128 column quads.
        for (n, dh, d, batch) in [
            (64usize, 128usize, 512usize, 1usize),
            (33, 48, 100, 2),
            (5, 64, 12, 3),
            (64, 128, 768, 2),
            (17, 16, 520, 1),
        ] {
            let rows = batch * n;
            let qkv = round(
                random(&mut rng, rows * 3 * dh)
                    .iter()
                    .map(|v| v * 2.0)
                    .collect(),
            );
            let w = round(random(&mut rng, d * dh).iter().map(|v| v * 0.2).collect());
            let w_t: Vec<f32> = (0..dh * d).map(|i| w[(i % d) * dh + i / d]).collect();
            let prior = round(random(&mut rng, rows * d));
            // `mods` is read as quads: offsets that are multiples of 4.
            let mod_stride = 2 * d + 8;
            let mods = random(&mut rng, batch * mod_stride);
            let att = attention_ref(&qkv, batch, n, 1, dh);
            let stored: Vec<f32> = (0..rows * d)
                .map(|i| {
                    let (r, c) = (i / d, i % d);
                    let proj: f64 = (0..dh)
                        .map(|k| att[r * dh + k] * w[c * dh + k] as f64)
                        .sum();
                    (prior[i] as f64 + proj) as f32
                })
                .collect();
            let stored = round(stored);
            let norm = AdaLnParams {
                d: d as u32,
                rows_per_batch: n as u32,
                mod_stride: mod_stride as u32,
                scale_at: 4,
                shift_at: (d + 4) as u32,
            };
            let p = AttentionOutParams {
                n: n as u32,
                dh: dh as u32,
                scale: (dh as f32).powf(-0.5),
                d: d as u32,
                mod_stride: norm.mod_stride,
                scale_at: norm.scale_at,
                shift_at: norm.shift_at,
            };
            let width = webdit_kernels::attention_rows_width(dh).unwrap();
            let name = format!(
                "attention_rows_out_d{width}{}",
                if f16 { "_f16" } else { "" }
            );
            let prior16 = half_bytes(&prior);
            let (inputs, h, y) = if f16 {
                // An f16 residual cannot be read back in place here: its rows are checked
                // through their AdaLN.
                (
                    [Arg::InputF16(&qkv), Arg::InputF16(&w_t)],
                    Arg::InputBytes(&prior16),
                    Arg::OutputF16(rows * d),
                )
            } else {
                (
                    [Arg::Input(&qkv), Arg::Input(&w_t)],
                    Arg::InOut(&prior),
                    Arg::Output(rows * d),
                )
            };
            let [qkv_arg, w_arg] = inputs;
            let got = run(
                variant(&name),
                &[
                    qkv_arg,
                    w_arg,
                    h,
                    Arg::Input(&mods),
                    y,
                    Arg::Uniform(p.to_bytes()),
                ],
                [groups(n as u32, ROWS), 1, batch as u32],
            );
            let what = format!("{name} n={n} dh={dh} d={d} batch={batch}");
            let tol = if f16 { 3e-3 } else { 1e-5 };
            if got.len() == 2 {
                let want: Vec<f64> = stored.iter().map(|v| *v as f64).collect();
                assert_close(&format!("{what} residual"), &got[0], &want, tol);
            }
            let want = adaln_ref(&stored, &mods, &norm);
            assert_close(&what, got.last().unwrap(), &want, tol);
        }
    }
}

fn adaln_ref(x: &[f32], mods: &[f32], p: &AdaLnParams) -> Vec<f64> {
    let d = p.d as usize;
    let mut y = vec![0.0; x.len()];
    for (r, row) in x.chunks(d).enumerate() {
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (d - 1) as f64;
        let std = var.sqrt() + 1e-5;
        let m = (r / p.rows_per_batch as usize) * p.mod_stride as usize;
        for i in 0..d {
            let s = mods[m + p.scale_at as usize + i] as f64;
            let h = mods[m + p.shift_at as usize + i] as f64;
            y[r * d + i] = (row[i] as f64 - mean) / std * (1.0 + s) + h;
        }
    }
    y
}

#[test]
fn adaln_matches_reference() {
    let mut rng = rng("adaln");
    for f16 in [false, true] {
        if f16 && !gpu().f16 {
            continue;
        }
        for (d, rows_per_batch, batch) in [(512, 64, 2), (768, 256, 1), (100, 7, 3), (3, 5, 1)] {
            let rows = rows_per_batch * batch;
            let mut x: Vec<f32> = random(&mut rng, rows * d)
                .iter()
                .map(|v| v * 3.0 + 0.5)
                .collect();
            if f16 {
                x = round_f16(&x);
            }
            let mod_stride = 3 * d + 5;
            let mods = random(&mut rng, batch * mod_stride);
            let p = AdaLnParams {
                d: d as u32,
                rows_per_batch: rows_per_batch as u32,
                mod_stride: mod_stride as u32,
                scale_at: (d + 2) as u32,
                shift_at: 1,
            };
            // The workgroup-memory sums everywhere; the subgroup sums where the adapter has
            // subgroups (lavapipe does, 8 lanes).
            // And, in f32, the software adapters' variant (one invocation per row).
            let mut sgs = vec![""];
            if gpu().subgroups {
                sgs.push("_sg");
            }
            if !f16 {
                sgs.push("_serial");
            }
            for sg in sgs {
                let (name, input, output) = if f16 {
                    (
                        format!("adaln{sg}_f16"),
                        Arg::InputF16(&x),
                        Arg::OutputF16(rows * d),
                    )
                } else {
                    (format!("adaln{sg}"), Arg::Input(&x), Arg::Output(rows * d))
                };
                let got = run(
                    variant(&name),
                    &[input, Arg::Input(&mods), output, Arg::Uniform(p.to_bytes())],
                    [rows as u32, 1, 1],
                );
                let tol = if f16 { 2e-3 } else { 1e-5 };
                assert_close(
                    &format!("{name} d={d} rows={rows}"),
                    &got[0],
                    &adaln_ref(&x, &mods, &p),
                    tol,
                );
            }
        }
    }
}

#[test]
fn silu_matches_reference() {
    let mut rng = rng("silu");
    for n in [1usize, 255, 256, 1000, 65536 + 3] {
        let x: Vec<f32> = random(&mut rng, n).iter().map(|v| v * 20.0).collect();
        let src = webdit_tests::compile("silu", &webdit_kernels::elementwise::silu_map::<256>());
        let out = [run_map(src, &x, 256)];
        let want: Vec<f64> = x.iter().map(|v| silu(*v as f64)).collect();
        assert_close(&format!("silu n={n}"), &out[0], &want, 1e-6);
    }
}

/// Inputs of a split-K reduction with the AdaLN after it, and what it stores: `splits`
/// partial products of `rows_per_batch · batch` rows of `d`, a prior residual and a row
/// table (rounded to f16 with `f16`), modulations, and the rows the reduction stores (the
/// residual accumulated with `acc`, else the row table added), rounded as stored.
struct ReduceCase {
    parts: Vec<f32>,
    prior: Vec<f32>,
    extra: Vec<f32>,
    mods: Vec<f32>,
    stored: Vec<f32>,
    norm: AdaLnParams,
}

/// The reduction of `splits` partial products of `rows` rows (the row table's period: the
/// rows of one batch item) with the AdaLN `norm`.
fn reduce_params(
    norm: &AdaLnParams,
    rows: usize,
    splits: usize,
) -> webdit_kernels::norm::ReduceNormParams {
    webdit_kernels::norm::ReduceNormParams {
        mn: rows as u32 * norm.d,
        n: norm.d,
        splits: splits as u32,
        rows_period: norm.rows_per_batch,
        rows_per_batch: norm.rows_per_batch,
        mod_stride: norm.mod_stride,
        scale_at: norm.scale_at,
        shift_at: norm.shift_at,
    }
}

/// A [`ReduceCase`] of fresh random values.
fn reduce_case(
    rng: &mut rand::rngs::StdRng,
    (f16, acc): (bool, bool),
    (d, rows_per_batch, batch, splits): (usize, usize, usize, usize),
) -> ReduceCase {
    let round = |v: Vec<f32>| if f16 { round_f16(&v) } else { v };
    let rows = rows_per_batch * batch;
    let parts: Vec<f32> = random(rng, splits * rows * d)
        .iter()
        .map(|v| v * 2.0)
        .collect();
    let prior = round(random(rng, rows * d));
    let extra = round(random(rng, rows_per_batch * d));
    let mod_stride = 2 * d + 3;
    let mods = random(rng, batch * mod_stride);
    let stored: Vec<f32> = (0..rows * d)
        .map(|i| {
            let v: f64 = (0..splits).map(|z| parts[z * rows * d + i] as f64).sum();
            let (r, col) = (i / d, i % d);
            let base = if acc {
                prior[i] as f64
            } else {
                extra[(r % rows_per_batch) * d + col] as f64
            };
            (base + v) as f32
        })
        .collect();
    let norm = AdaLnParams {
        d: d as u32,
        rows_per_batch: rows_per_batch as u32,
        mod_stride: mod_stride as u32,
        scale_at: 2,
        shift_at: (d + 3) as u32,
    };
    ReduceCase {
        parts,
        prior,
        extra,
        mods,
        stored: round(stored),
        norm,
    }
}

/// Patchify and unpatchify against the index formulas of the model reference, as a round trip.
/// A split-K reduction through the residual's epilogue fused with the next AdaLN: the
/// stored rows and their AdaLN against the CPU (f32 and f16, tree and subgroup sums,
/// accumulate and row-table epilogues, widths that are not multiples of the workgroup).
#[test]
fn splitk_reduce_adaln_matches_reference() {
    let mut rng = rng("splitk_reduce_adaln");
    let sgs: &[&str] = if gpu().subgroups { &["", "_sg"] } else { &[""] };
    for f16 in [false, true] {
        if f16 && !gpu().f16 {
            continue;
        }
        for (e, acc) in [("_acc", true), ("_addrows", false)] {
            for (d, rows_per_batch, batch, splits) in [
                (512, 64, 1, 16),
                (100, 7, 3, 3),
                (3, 5, 1, 2),
                (40, 9, 2, 7),
            ] {
                let rows = rows_per_batch * batch;
                let ReduceCase {
                    parts,
                    prior,
                    extra,
                    mods,
                    stored,
                    norm,
                } = reduce_case(&mut rng, (f16, acc), (d, rows_per_batch, batch, splits));
                let p = reduce_params(&norm, rows, splits);
                for sg in sgs {
                    let name = format!(
                        "splitk_reduce{e}_adaln{sg}{}",
                        if f16 { "_f16" } else { "" }
                    );
                    let prior16 = half_bytes(&prior);
                    let (c, extra_arg, y) = if f16 {
                        // An f16 accumulator cannot be read back in place here: its rows are
                        // checked through their AdaLN.
                        let c = if acc {
                            Arg::InputBytes(&prior16)
                        } else {
                            Arg::OutputF16(rows * d)
                        };
                        (c, Arg::InputF16(&extra), Arg::OutputF16(rows * d))
                    } else {
                        (
                            Arg::InOut(&prior),
                            Arg::Input(&extra),
                            Arg::Output(rows * d),
                        )
                    };
                    let got = run(
                        variant(&name),
                        &[
                            Arg::Input(&parts),
                            c,
                            extra_arg,
                            Arg::Input(&mods),
                            y,
                            Arg::Uniform(p.to_bytes()),
                        ],
                        [rows as u32, 1, 1],
                    );
                    let what = format!("{name} d={d} rows={rows} splits={splits}");
                    let tol = if f16 { 2e-3 } else { 1e-5 };
                    let want_c: Vec<f64> = stored.iter().map(|v| *v as f64).collect();
                    if got.len() == 2 {
                        assert_close(&format!("{what} rows"), &got[0], &want_c, tol);
                    }
                    assert_close(
                        &what,
                        got.last().unwrap(),
                        &adaln_ref(&stored, &mods, &norm),
                        tol,
                    );
                }
            }
        }
    }
}

/// The reduction with its AdaLN and the product of the normalized rows
/// (`splitk_reduce_*_adaln_linear*`): the new residual (written by each row's first
/// workgroup, to a tensor other than the one it reads) and the product, against the CPU,
/// with more workgroups a row than outputs need (empty ranges) and outputs not a multiple
/// of the workgroups or of the outputs a subgroup takes at a time.
#[test]
fn splitk_reduce_adaln_linear_matches_reference() {
    use webdit_kernels::norm::splitk_reduce_adaln_linear;
    if !has_subgroups() {
        return;
    }
    let mut rng = rng("splitk_reduce_adaln_linear");
    for f16 in [false, true] {
        if f16 && !gpu().f16 {
            continue;
        }
        let round = |v: Vec<f32>| if f16 { round_f16(&v) } else { v };
        for (e, acc) in [("_acc", true), ("_addrows", false)] {
            for (d, rows_per_batch, batch, splits, n_out, groups) in [
                (512, 64, 1, 16, 384, 8),
                (100, 7, 3, 3, 37, 3),
                (40, 9, 2, 7, 9, 8),
            ] {
                let rows = rows_per_batch * batch;
                let ReduceCase {
                    parts,
                    prior,
                    extra,
                    mods,
                    stored,
                    norm,
                } = reduce_case(&mut rng, (f16, acc), (d, rows_per_batch, batch, splits));
                let w = round(random(&mut rng, n_out * d));
                let y: Vec<f32> = adaln_ref(&stored, &mods, &norm)
                    .iter()
                    .map(|v| *v as f32)
                    .collect();
                let want_out = matmul_ref(&round(y), &w, rows, n_out, d);
                let p = reduce_params(&norm, rows, splits).then_linear(n_out as u32);
                let name = format!(
                    "splitk_reduce{e}_adaln_linear{}",
                    if f16 { "_f16" } else { "" }
                );
                // The build has the f16 variants (the plans fuse only there); f32 compiled here.
                let src = if f16 {
                    variant(&name)
                } else {
                    let epilogue = if acc {
                        Epilogue::Accumulate
                    } else {
                        Epilogue::AddRows
                    };
                    compile(&name, &splitk_reduce_adaln_linear::<f32, 256>(epilogue))
                };
                let args = if f16 {
                    [
                        Arg::InputF16(&prior),
                        Arg::InputF16(&extra),
                        Arg::InputF16(&w),
                        Arg::OutputF16(rows * d),
                        Arg::OutputF16(rows * n_out),
                    ]
                } else {
                    [
                        Arg::Input(&prior),
                        Arg::Input(&extra),
                        Arg::Input(&w),
                        Arg::Output(rows * d),
                        Arg::Output(rows * n_out),
                    ]
                };
                let [c, extra_arg, w_arg, h, out] = args;
                let got = run(
                    src,
                    &[
                        Arg::Input(&parts),
                        c,
                        extra_arg,
                        Arg::Input(&mods),
                        w_arg,
                        h,
                        out,
                        Arg::Uniform(p.to_bytes()),
                    ],
                    [rows as u32, groups, 1],
                );
                let what = format!("{name} d={d} rows={rows} splits={splits} n_out={n_out}");
                let tol = if f16 { 2e-3 } else { 1e-5 };
                let want_h: Vec<f64> = stored.iter().map(|v| *v as f64).collect();
                assert_close(&format!("{what} residual"), &got[0], &want_h, tol);
                assert_close(&format!("{what} product"), &got[1], &want_out, tol);
            }
        }
    }
}

/// f16 storage words of `v`.
fn half_bytes(v: &[f32]) -> Vec<u8> {
    let mut h: Vec<u16> = v
        .iter()
        .map(|x| half::f16::from_f32(*x).to_bits())
        .collect();
    if h.len() % 2 == 1 {
        h.push(0);
    }
    bytemuck::cast_slice(&h).to_vec()
}

#[test]
fn patchify_and_unpatchify() {
    let mut rng = rng("patchify");
    for (batch, channels, size, patch) in [(2u32, 3u32, 64u32, 8u32), (1, 3, 64, 4), (3, 2, 12, 3)]
    {
        let total = batch * channels * size * size;
        let image = random(&mut rng, total as usize);
        let p = PatchParams {
            channels,
            size,
            patch,
            total,
        };
        let tokens = run(
            variant("patchify"),
            &[
                Arg::Input(&image),
                Arg::Output(total as usize),
                Arg::Uniform(p.to_bytes()),
            ],
            [groups(total, 256), 1, 1],
        );
        let g = size / patch;
        let mut want = vec![0.0f64; total as usize];
        for b in 0..batch {
            for c in 0..channels {
                for y in 0..size {
                    for x in 0..size {
                        let n = (y / patch) * g + x / patch;
                        let e = (c * patch + y % patch) * patch + x % patch;
                        let o = ((b * g * g + n) * channels * patch * patch + e) as usize;
                        want[o] =
                            image[(((b * channels + c) * size + y) * size + x) as usize] as f64;
                    }
                }
            }
        }
        assert_close("patchify", &tokens[0], &want, 0.0);
        let back = run(
            variant("unpatchify"),
            &[
                Arg::Input(&tokens[0]),
                Arg::Output(total as usize),
                Arg::Uniform(p.to_bytes()),
            ],
            [groups(total, 256), 1, 1],
        );
        let image64: Vec<f64> = image.iter().map(|v| *v as f64).collect();
        assert_close("unpatchify", &back[0], &image64, 0.0);
    }
}

#[test]
fn timestep_embedding_matches_reference() {
    for (width, ts) in [
        (256u32, vec![0.0f32, 31.0, 7.0]),
        (16, vec![3.0, 1.0]),
        (384, vec![15.0]),
    ] {
        let total = width * ts.len() as u32;
        let p = SinusParams { width, total };
        let got = run(
            variant("timestep_embedding"),
            &[
                Arg::Input(&ts),
                Arg::Output(total as usize),
                Arg::Uniform(p.to_bytes()),
            ],
            [groups(total, 256), 1, 1],
        );
        let half = (width / 2) as usize;
        let mut want = vec![];
        for t in &ts {
            for i in 0..width as usize {
                let f = (-((i % half) as f64) * 10000f64.ln() / (half as f64 - 1.0)).exp();
                let a = *t as f64 * f;
                want.push(if i < half { a.sin() } else { a.cos() });
            }
        }
        assert_close(&format!("sinus width={width}"), &got[0], &want, 2e-5);
    }
}

#[derive(Uniform)]
struct PhiloxParams {
    n: u32,
    k0: u32,
    k1: u32,
}

/// Four Philox words per invocation, to compare with the CPU bit for bit.
#[kernel(workgroup_size = [64, 1, 1])]
fn philox_words(out: &mut Array<u32>, p: &Uniform<PhiloxParams>) {
    let i = global_id().x;
    if i < p.n {
        let r = philox(
            vec4(i, i * 7 + 1, 0xdead_beef, i ^ 0x1234_5678),
            vec2(p.k0, p.k1),
        );
        out[4 * i] = r.x;
        out[4 * i + 1] = r.y;
        out[4 * i + 2] = r.z;
        out[4 * i + 3] = r.w;
    }
}

#[test]
fn philox_on_the_gpu_is_bit_exact() {
    let src = compile("philox_words", &philox_words());
    let n = 1000u32;
    let (k0, k1) = (0x9e37_79b9, 0x0bad_cafe);
    let got = run(
        src,
        &[
            Arg::Output(4 * n as usize),
            Arg::Uniform(PhiloxParams { n, k0, k1 }.to_bytes()),
        ],
        [groups(n, 64), 1, 1],
    );
    for i in 0..n {
        let want = noise::philox([i, i * 7 + 1, 0xdead_beef, i ^ 0x1234_5678], [k0, k1]);
        let have: Vec<u32> = got[0][4 * i as usize..4 * i as usize + 4]
            .iter()
            .map(|f| f.to_bits())
            .collect();
        assert_eq!(have, want, "counter {i}");
    }
}

/// The token-layout index of image element `o` (`[b, c, s, s]` → `[b, g·g, c·p·p]`).
fn token_index(o: usize, channels: usize, size: usize, patch: usize) -> usize {
    let g = size / patch;
    let (x, y) = (o % size, (o / size) % size);
    let (ch, b) = ((o / (size * size)) % channels, o / (size * size * channels));
    let n = (y / patch) * g + x / patch;
    let e = (ch * patch + y % patch) * patch + x % patch;
    (b * g * g + n) * (channels * patch * patch) + e
}

/// The sampler update, with noise, against the CPU noise definition: eps read and the new
/// image also written in token layout (f32 and f16 storage); eps stored as the data (f16
/// or f32) or as f32 (f16 data), there also as 3 partial products of a split-K that the
/// sampler sums.
#[test]
fn sampler_step_matches_reference() {
    let mut rng = rng("sampler_step");
    // (f16 data, eps as the sum of that many f32 partial products; 0: eps stored as f16)
    let modes = [
        (false, 1),
        (false, 6),
        (true, 0),
        (true, 1),
        (true, 3),
        (true, 9),
    ];
    // ((batch, channels, size, patch), a, b, c, image estimate (u, v) for a clipped DDIM step)
    for ((f16, parts_of), ((batch, ch, size, patch), a, b, c, x0)) in
        modes.into_iter().flat_map(|f| {
            [
                (
                    (1usize, 3usize, 64usize, 8usize),
                    1.03f32,
                    -0.2f32,
                    0.4f32,
                    None,
                ),
                ((5, 1, 1, 1), 0.0, 0.0, 1.0, None),
                ((7, 1, 100, 10), 0.5, 0.5, 0.0, None),
                ((2, 5, 10, 5), 0.9, 0.3, 0.0, Some([3.0f32, -2.0f32])),
            ]
            .map(|case| (f, case))
        })
    {
        if f16 && !gpu().f16 {
            continue;
        }
        let splits = parts_of.max(1);
        let n = batch * ch * size * size;
        let x = random(&mut rng, n);
        let parts = random(&mut rng, n * splits);
        let parts = if parts_of == 0 {
            round_f16(&parts)
        } else {
            parts
        };
        let eps: Vec<f32> = (0..n)
            .map(|i| (0..splits).map(|z| parts[z * n + i]).sum())
            .collect();
        let seed = 0x1234_5678_9abc_def0u64;
        let [u, v] = x0.unwrap_or([0.0, 0.0]);
        let p = StepParams {
            n: n as u32,
            channels: ch as u32,
            size: size as u32,
            patch: patch as u32,
            stream: 9,
            a,
            b,
            c,
            clip: x0.is_some() as u32,
            u,
            v,
            splits: splits as u32,
            part_len: n as u32,
        };
        let got = run(
            variant(match (f16, parts_of) {
                (false, _) => "sampler_step",
                (true, 0) => "sampler_step_f16",
                (true, _) => "sampler_step_of_parts_f16",
            }),
            &[
                Arg::InOut(&x),
                if parts_of == 0 {
                    Arg::InputF16(&parts)
                } else {
                    Arg::Input(&parts)
                },
                if f16 {
                    Arg::OutputF16(n)
                } else {
                    Arg::Output(n)
                },
                Arg::InputBytes(bytemuck::cast_slice(&[seed as u32, (seed >> 32) as u32])),
                Arg::Uniform(p.to_bytes()),
            ],
            [groups(n as u32, 256), 1, 1],
        );
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let z = noise::gaussian(seed, 9, i as u32) as f64;
                let e = eps[token_index(i, ch, size, patch)] as f64;
                let e = match x0 {
                    // Clipped: u·x + v·eps ranges over ±5 here, so both clamps are hit.
                    Some(_) => (u as f64 * x[i] as f64 + v as f64 * e).clamp(-1.0, 1.0),
                    None => e,
                };
                a as f64 * x[i] as f64 + b as f64 * e + c as f64 * z
            })
            .collect();
        let what =
            format!("sampler_step f16={f16} eps of {parts_of} parts {batch}×{ch}×{size}²/{patch}");
        assert_close(&what, &got[0], &want, 2e-5);
        let mut tokens = vec![0.0; n];
        for (i, w) in want.iter().enumerate() {
            tokens[token_index(i, ch, size, patch)] = *w;
        }
        assert_close(
            &format!("{what} tokens"),
            &got[1],
            &tokens,
            if f16 { 1e-3 } else { 2e-5 },
        );
    }
}

/// A split-K: partial products over K slices (f32 even from f16 inputs), then the reduction
/// with each epilogue, against the reference.
#[test]
fn split_k_matches_reference() {
    use webdit_kernels::matmul::SplitParams;
    use webdit_kernels::{Key, Store, Tier};
    use webdit_model::tiers::slice_len;
    let tiles = build_tiles();
    let mut rng = rng("split-k");
    // (partial products' variant, its tile, f16 operands, cases: m, n, k, slices, epilogue)
    type Case = (usize, usize, usize, u32, Epilogue, &'static str);
    type Run = (String, (u32, u32), bool, Vec<Case>);
    // Even slices, and an uneven split (slices of 160, 160 and 72).
    let cases: [Case; 4] = [
        (64, 96, 512, 4, Epilogue::Accumulate, "_acc"),
        (33, 70, 256, 8, Epilogue::Silu, "_silu"),
        (20, 40, 384, 6, Epilogue::None, ""),
        (20, 40, 392, 3, Epilogue::None, ""),
    ];
    let mut runs: Vec<Run> = [false, true]
        .into_iter()
        .filter(|f16| !f16 || gpu().f16)
        .flat_map(|f16| {
            let store = if f16 { Store::F16 } else { Store::F32 };
            [
                (Tier::Mid, tiles.mid),
                (Tier::Small, tiles.small),
                (Tier::Scalar, tiles.scalar),
            ]
            .map(|(tier, t)| {
                (
                    Key::partial(tier, store).name(),
                    (t.bm, t.bn),
                    f16,
                    cases.to_vec(),
                )
            })
        })
        .collect();
    // The tensor-core partial products at the slice counts and lengths the planner takes:
    // 3, 6 and 16 slices of 32 to 256, ragged edges, and uneven splits (10 slices of 320
    // and one of 192 as favicon-b batch 1's MLP out; 11 of 288 and one of 192).
    if coop_runs() {
        use webdit_kernels::matmul_coop::{COOP_TILES, COOP_TILES_SPLIT};
        for (small, t) in [(true, COOP_TILES_SPLIT), (false, COOP_TILES)] {
            let coop_cases = vec![
                (64, 384, 512, 16, Epilogue::None, ""),
                (200, 136, 192, 6, Epilogue::Silu, "_silu"),
                (130, 70, 768, 3, Epilogue::None, ""),
                (70, 520, 128, 4, Epilogue::None, ""),
                (140, 130, 3072, 10, Epilogue::None, ""),
                (64, 136, 3072, 11, Epilogue::None, ""),
            ];
            runs.push((
                Key::CoopPartial { small }.name(),
                (t.bm, t.bn),
                true,
                coop_cases,
            ));
        }
    }
    for (partial, (bm, bn), f16, cases) in runs {
        let sfx = if f16 { "_f16" } else { "" };
        for (m, n, k, splits, epilogue, e) in cases {
            let round = |v: Vec<f32>| if f16 { round_f16(&v) } else { v };
            let a = round(random(&mut rng, m * k));
            let w = round(random(&mut rng, n * k));
            let prior = round(random(&mut rng, m * n));
            let part = slice_len(k, splits);
            assert_eq!(k.div_ceil(part), splits as usize, "{k} in {splits} slices");
            let part = part as u32;
            let p = MatmulParams {
                a_batch_stride: part,
                w_batch_stride: part,
                c_batch_stride: (m * n) as u32,
                k_stride: k as u32,
                k_total: k as u32,
                ..MatmulParams::new(m as u32, n as u32, part)
            };
            let input = |d: &'static [f32]| if f16 { Arg::InputF16(d) } else { Arg::Input(d) };
            let leak = |v: Vec<f32>| -> &'static [f32] { Box::leak(v.into_boxed_slice()) };
            let (a, w, prior) = (leak(a), leak(w), leak(prior));
            let parts = run(
                variant(&partial),
                &[
                    input(a),
                    input(w),
                    Arg::Output(splits as usize * m * n),
                    Arg::Input(&[0.0; 4]),
                    Arg::Uniform(p.to_bytes()),
                ],
                [groups(n as u32, bn), groups(m as u32, bm), splits],
            );
            let sp = SplitParams {
                mn: (m * n) as u32,
                n: n as u32,
                splits,
                rows_period: 1,
            };
            let out = match (epilogue, f16) {
                (Epilogue::Accumulate, true) => continue,
                (Epilogue::Accumulate, false) => Arg::InOut(prior),
                (_, true) => Arg::OutputF16(m * n),
                (_, false) => Arg::Output(m * n),
            };
            let got = run(
                variant(&format!("splitk_reduce{e}{sfx}")),
                &[
                    Arg::Input(&parts[0]),
                    out,
                    input(&[0.0; 4]),
                    Arg::Uniform(sp.to_bytes()),
                ],
                [groups((m * n) as u32, 256), 1, 1],
            );
            let want: Vec<f64> = matmul_ref(a, w, m, n, k)
                .iter()
                .enumerate()
                .map(|(i, v)| match epilogue {
                    Epilogue::Accumulate => v + prior[i] as f64,
                    Epilogue::Silu => silu(*v),
                    _ => *v,
                })
                .collect();
            assert_close(
                &format!("split-k {partial} {m}x{n}x{k}/{splits}"),
                &got[0],
                &want,
                if f16 { 2e-3 } else { 1e-5 },
            );
        }
    }
}

#[test]
fn short_circuit_logic_and_if_expressions_match_reference() {
    let src = compile("logic_and_if_values", &logic_and_if_values());
    // The reads on the right of `&&`/`||` sit under an `if` in the WGSL.
    assert!(src.wgsl.matches("if ").count() >= 4, "{}", src.wgsl);
    let mut rng = rng("logic");
    for n in [1usize, 63, 64, 1000] {
        let x = random(&mut rng, n);
        let out = [run_map(src, &x, 64)];
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let v = x[i] as f64;
                if i + 1 < n && x[i + 1] > 0.0 {
                    v * 2.0
                } else if i == 0 || x[i - 1] < 0.0 {
                    -v
                } else {
                    0.5
                }
            })
            .collect();
        assert_close(&format!("logic n={n}"), &out[0], &want, 1e-6);
    }
}

#[test]
fn generic_helper_matches_reference() {
    let src = compile("generic_cube", &generic_cube::<f32>());
    let mut rng = rng("generic");
    let n = 1000;
    let x = random(&mut rng, n);
    let out = [run_map(src, &x, 64)];
    let want: Vec<f64> = x.iter().map(|v| (*v as f64).powi(3)).collect();
    assert_close("generic cube", &out[0], &want, 1e-6);
}

/// Runs an elementwise kernel `(x, y, Len)` over `x` with `wg`-wide workgroups.
fn run_map(src: &'static kernels::KernelSource, x: &[f32], wg: u32) -> Vec<f32> {
    let n = x.len();
    let mut out = run(
        src,
        &[
            Arg::Input(x),
            Arg::Output(n),
            Arg::Uniform(Len { n: n as u32 }.to_bytes()),
        ],
        [groups(n as u32, wg), 1, 1],
    );
    out.remove(0)
}

/// Subgroup operations against the CPU, for whatever subgroup size the adapter runs (read
/// back with the lanes): lavapipe offers subgroups; an adapter without them says so.
#[test]
fn subgroup_operations_match_reference() {
    if !has_subgroups() {
        return;
    }
    let src = compile("subgroup_ops", &subgroup_ops());
    let n = 256;
    let x = random(&mut rng("subgroups"), n);
    let out = run(
        src,
        &[Arg::Input(&x), Arg::Output(4 * n), Arg::Output(2 * n)],
        [(n / 64) as u32, 1, 1],
    );
    let lanes: Vec<u32> = out[1].iter().map(|v| v.to_bits()).collect();
    let size = lanes[1] as usize;
    assert!(size.is_power_of_two() && size <= 64, "subgroup size {size}");
    let mut want = vec![0.0f64; 4 * n];
    for i in 0..n {
        let lane = lanes[2 * i] as usize;
        assert_eq!(lanes[2 * i + 1] as usize, size);
        assert_eq!(
            lane,
            i % size,
            "lanes follow local_index in a 1-D workgroup here"
        );
        let first = i - lane;
        let group = &x[first..first + size];
        want[4 * i] = group.iter().map(|v| *v as f64).sum();
        want[4 * i + 1] = group.iter().fold(f32::MIN, |m, v| m.max(*v)) as f64;
        want[4 * i + 2] = group[0] as f64;
        want[4 * i + 3] = group[lane ^ 1] as f64;
    }
    assert_close("subgroup ops", &out[0], &want, 1e-5);
}

/// The tensor-core matmul (f16 operands, f32 accumulation) against the CPU, at tile
/// multiples, ragged edges and batches; where the adapter lacks cooperative matrices or
/// 32-lane subgroups, the test says so and checks nothing.
/// Whether the adapter runs the tensor-core kernels (cooperative matrices, 32-lane
/// subgroups); where not, says so.
fn coop_runs() -> bool {
    use webdit_kernels::matmul_coop::LANES;
    let gpu = gpu();
    let info = &gpu.adapter;
    let runs = gpu.coop
        && gpu.subgroups
        && info.subgroup_min_size == LANES
        && info.subgroup_max_size == LANES;
    if !runs {
        eprintln!(
            "not checked: {} lacks cooperative matrices (16x16x16, f16 into f32) or 32-lane subgroups; the f32/f16 kernels run there",
            gpu.describe()
        );
    }
    runs
}

#[test]
fn coop_matmul_matches_reference() {
    use webdit_kernels::matmul_coop::{
        matmul_coop, COOP_TILES, COOP_TILES_FILL, COOP_TILES_LARGE, COOP_TILES_SPLIT,
    };
    if !coop_runs() {
        return;
    }
    // The registered tiles (large and base load two K-steps ahead, fill and split one),
    // and large and base loading one ahead.
    let tiles = [
        (COOP_TILES, Epilogue::None),
        (COOP_TILES_LARGE, Epilogue::None),
        (COOP_TILES_FILL, Epilogue::None),
        (COOP_TILES_SPLIT, Epilogue::None),
        (COOP_TILES_LARGE.ahead(1), Epilogue::None),
        (COOP_TILES.ahead(1), Epilogue::None),
    ];
    let epilogues = [
        (COOP_TILES, Epilogue::Silu),
        (COOP_TILES, Epilogue::AddRows),
        (COOP_TILES_FILL, Epilogue::Accumulate),
    ];
    for (t, epilogue) in tiles.into_iter().chain(epilogues) {
        let src = compile(
            &format!("matmul_coop_{}x{}_p{}_{epilogue:?}", t.bm, t.bn, t.prefetch),
            &matmul_coop::<webdit_dsl::f16, f32>(t, epilogue, 0).needs(t.limits()),
        );
        for (m, n, k, batch) in [
            (128, 128, 64, 1),
            (200, 136, 44, 2),
            (64, 384, 1024, 1),
            (257, 129, 12, 1),
            (300, 140, 96, 1),
        ] {
            let case = MatmulCase {
                m,
                n,
                k,
                batch,
                epilogue,
                f16: true,
                out_f16: false,
            };
            check_matmul(src, (t.bm, t.bn), case);
        }
    }
}

/// The tensor-core partial products whose A is `silu` of the sum of another split-K's
/// partial products (MLP out reading MLP in's, unreduced) against the CPU: A summed in f32
/// in the reduction's order, through SiLU, rounded to f16 as the reduction would store it;
/// ragged shapes, K split or not, the sums of the output's partials compared.
#[test]
fn coop_matmul_of_silu_parts_matches_reference() {
    use webdit_kernels::matmul_coop::{matmul_coop, COOP_TILES, COOP_TILES_SPLIT};
    if !coop_runs() {
        return;
    }
    // The registered split tile, and the base tile, which loads two K-steps ahead (its
    // second set of registers holds partial products too).
    let tiles = [COOP_TILES_SPLIT, COOP_TILES];
    for (t, parts) in tiles
        .into_iter()
        .flat_map(|t| webdit_kernels::COOP_SILU_PARTS.map(|parts| (t, parts)))
    {
        let src = compile(
            &format!("matmul_coop_{}x{}_of_silu{parts}", t.bm, t.bn),
            &matmul_coop::<f32, f32>(t, Epilogue::None, parts).needs(t.limits()),
        );
        for (m, n, k, splits) in [
            (64usize, 512usize, 2048usize, 16usize),
            (37, 136, 96, 2),
            (130, 70, 44, 1),
            (200, 129, 64, 4),
        ] {
            let what = format!("{} {m}x{n}x{k} K/{splits}", src.name);
            let mut rng = rng(&what);
            let (mk, mn) = (m * k, m * n);
            // Partial products of a size that makes SiLU's negative side matter.
            let a_parts: Vec<f32> = random(&mut rng, parts as usize * mk)
                .iter()
                .map(|v| 3.0 * v)
                .collect();
            let w = round_f16(&random(&mut rng, n * k));
            let a: Vec<f32> = (0..mk)
                .map(|i| {
                    let s = (0..parts as usize).fold(0.0f32, |acc, z| acc + a_parts[z * mk + i]);
                    s / (1.0 + (-s).exp())
                })
                .collect();
            let a = round_f16(&a);
            let part = k / splits;
            let p = MatmulParams {
                a_batch_stride: part as u32,
                w_batch_stride: part as u32,
                c_batch_stride: mn as u32,
                k_stride: k as u32,
                ..MatmulParams::new(m as u32, n as u32, part as u32)
            };
            let got = run(
                src,
                &[
                    Arg::Input(&a_parts),
                    Arg::InputF16(&w),
                    Arg::Output(mn * splits),
                    Arg::Input(&[0.0; 4]),
                    Arg::Uniform(p.to_bytes()),
                ],
                [
                    groups(n as u32, t.bn),
                    groups(m as u32, t.bm),
                    splits as u32,
                ],
            );
            let sum: Vec<f32> = (0..mn)
                .map(|i| (0..splits).map(|z| got[0][z * mn + i]).sum())
                .collect();
            let want = matmul_ref(&a, &w, m, n, k);
            let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
            let terms = magnitude(&matmul_ref(&abs(&a), &abs(&w), m, n, k));
            // A's f16 rounding may differ by one unit where the GPU's `exp` and the CPU's
            // differ in the last bit before it.
            assert_close_to(&what, &sum, &want, terms, 2e-3);
        }
    }
}

/// Attention on tensor cores (f16 Q, K, V and probabilities, f32 accumulation) against the
/// CPU: the registered 192-wide variant and a 128-wide build of the kernel, sequences of 16
/// to 256 tokens (most not multiples of 16, where the last key fragment overlaps the one
/// before it), several heads and batch items; where the adapter lacks cooperative matrices,
/// the test says so and checks nothing.
#[test]
fn coop_attention_matches_reference() {
    use webdit_kernels::attention_coop::{attention_coop, coop_attention_limits, COOP_BQ};
    if !coop_runs() {
        return;
    }
    let d128 = compile(
        "attention_coop_d128_f16",
        &attention_coop::<128>().needs(coop_attention_limits(128)),
    );
    for (n, dh, heads, batch) in [
        (256usize, 192usize, 1usize, 1usize),
        (256, 192, 1, 3),
        (250, 192, 2, 1),
        (100, 192, 1, 2),
        (17, 192, 3, 2),
        (16, 192, 1, 1),
        (64, 128, 2, 2),
        (143, 128, 1, 1),
    ] {
        let src = if dh == 128 {
            d128
        } else {
            variant("attention_coop_d192_f16")
        };
        let what = format!("{} n={n} heads={heads} batch={batch}", src.name);
        let mut rng = rng(&what);
        let qkv: Vec<f32> = random(&mut rng, batch * n * 3 * heads * dh)
            .iter()
            .map(|v| v * 2.0)
            .collect();
        let qkv = round_f16(&qkv);
        let p = AttentionParams::new(n as u32, dh as u32, heads as u32);
        let got = run(
            src,
            &[
                Arg::InputF16(&qkv),
                Arg::OutputF16(batch * n * heads * dh),
                Arg::Uniform(p.to_bytes()),
            ],
            [groups(n as u32, COOP_BQ), heads as u32, batch as u32],
        );
        let want = attention_ref(&qkv, batch, n, heads, dh);
        assert_close(&what, &got[0], &want, 2e-3);
    }
}

#[test]
fn mut_helper_parameters_match_reference() {
    let src = compile("sum_squares", &sum_squares());
    let n = 300;
    let x = random(&mut rng("sum_squares"), 4 * n);
    let out = run(
        src,
        &[
            Arg::Input(&x),
            Arg::Output(n),
            Arg::Uniform(Len { n: n as u32 }.to_bytes()),
        ],
        [groups(n as u32, 64), 1, 1],
    );
    let want: Vec<f64> = (0..n)
        .map(|i| (0..4).map(|j| (x[4 * i + j] as f64).powi(2)).sum())
        .collect();
    assert_close("sum of squares", &out[0], &want, 1e-6);
}

/// Workgroup and storage atomics against a CPU count.
#[test]
fn atomics_match_reference() {
    let src = compile("histogram", &histogram());
    let n = 1000usize;
    let mut rng = rng("histogram");
    let x: Vec<u32> = (0..n)
        .map(|_| rand::Rng::random_range(&mut rng, 0..1000u32))
        .collect();
    let zeros = vec![0.0f32; 17];
    let out = run(
        src,
        &[
            Arg::InputBytes(bytemuck::cast_slice(&x)),
            Arg::InOut(&zeros),
            Arg::Uniform(Len { n: n as u32 }.to_bytes()),
        ],
        [groups(n as u32, 64), 1, 1],
    );
    let got: Vec<u32> = out[0].iter().map(|v| v.to_bits()).collect();
    let mut want = vec![0u32; 17];
    for v in &x {
        want[(v % 16) as usize] += 1;
    }
    want[16] = *x.iter().max().unwrap();
    assert_eq!(got, want);
}

/// Storage arrays of structs (a 12-byte input struct, a 32-byte output one with a `vec3` at
/// offset 16) against the CPU; the padding the kernel must not write stays poisoned.
#[test]
fn storage_structs_match_reference() {
    use webdit_dsl::{ir::Type, Element};
    use webdit_tests::{Segment, Summary};
    let (Type::Struct(seg), Type::Struct(sum)) = (Segment::TYPE, Summary::TYPE) else {
        unreachable!("structs")
    };
    assert_eq!((seg.offsets(), seg.size()), (vec![0, 4, 8], 12));
    assert_eq!((sum.offsets(), sum.size()), (vec![0, 16], 32));
    let src = compile("summarize", &summarize());
    let mut rng = rng("summarize");
    let n = 150; // not a multiple of the workgroup's 64
    let x = random(&mut rng, 1000);
    let segments: Vec<(u32, u32, f32)> = (0..n)
        .map(|_| {
            let start = rand::Rng::random_range(&mut rng, 0..990u32);
            let len = rand::Rng::random_range(&mut rng, 0..10u32); // empty ones too
            (start, len, rand::Rng::random_range(&mut rng, -2.0..2.0f32))
        })
        .collect();
    let words: Vec<u32> = segments
        .iter()
        .flat_map(|&(start, len, weight)| [start, len, weight.to_bits()])
        .collect();
    let out = run(
        src,
        &[
            Arg::InputBytes(bytemuck::cast_slice(&words)),
            Arg::Input(&x),
            Arg::Output(8 * n),
            Arg::Uniform(Len { n: n as u32 }.to_bytes()),
        ],
        [groups(n as u32, 64), 1, 1],
    );
    let (mut got, mut want) = (vec![], vec![]);
    for (i, &(start, len, weight)) in segments.iter().enumerate() {
        let o = &out[0][8 * i..8 * i + 8];
        assert_eq!(o[0].to_bits(), len, "segment {i}: count");
        for pad in [1, 2, 3, 7] {
            assert_eq!(
                o[pad].to_bits(),
                webdit_tests::POISON,
                "segment {i}: padding written"
            );
        }
        let xs = &x[start as usize..(start + len) as usize];
        let total: f64 = xs.iter().map(|&v| v as f64).sum();
        let big = xs.iter().fold(-3.0e38f32, |m, &v| m.max(v));
        got.extend_from_slice(&o[4..7]);
        want.extend([
            total,
            big as f64,
            total * weight as f64 / (len.max(1) as f64),
        ]);
    }
    assert_close("segment summaries", &got, &want, 1e-6);
}

/// Helpers emitted as WGSL functions (not inlined) against the CPU.
#[test]
fn emitted_functions_match_reference() {
    let k = emitted_helpers();
    assert_eq!(k.functions.len(), 3, "silu_fn once, mean_silu per n");
    let src = compile("emitted_helpers", &k);
    let n = 500;
    let x: Vec<f32> = random(&mut rng("emitted"), n)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let out = run(
        src,
        &[
            Arg::Input(&x),
            Arg::Output(2 * n),
            Arg::Uniform(Len { n: n as u32 }.to_bytes()),
        ],
        [groups(n as u32, 64), 1, 1],
    );
    let mean = |v: f64, m: u32| (0..m).map(|i| silu(v * i as f64)).sum::<f64>() / m as f64;
    let want: Vec<f64> = x
        .iter()
        .flat_map(|v| {
            let v = *v as f64;
            [silu(v) + silu(2.0 * v), mean(v, 4) + mean(v, 3)]
        })
        .collect();
    assert_close("emitted helpers", &out[0], &want, 1e-5);
}
