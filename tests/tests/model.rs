//! The whole model: CPU and GPU paths against the PyTorch fixture (`model/train/fixture.py`),
//! GPU against CPU on the real presets, determinism, and the checkpoint loader's errors.

use rand::Rng;
use std::collections::HashMap;
use webdit_model::checkpoint::Files;
use webdit_model::cpu::CpuModel;
use webdit_model::{
    plan, Checkpoint, CheckpointError, Config, GpuModel, HostWeights, Precision, Sampler,
};
use webdit_tests::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

fn fixture_model() -> Checkpoint {
    webdit_model::checkpoint::load(
        std::path::Path::new(&format!("{FIXTURE}/tiny.safetensors")),
        None,
    )
    .expect("fixture loads")
}

/// The expected tensors of the fixture.
fn expected() -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(format!("{FIXTURE}/tiny-expected.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, bytemuck::pod_collect_to_vec(v.data())))
        .collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

#[test]
fn cpu_forward_matches_pytorch() {
    let e = expected();
    let m = CpuModel::new(fixture_model());
    let (eps, x0) = m.forward(&e["x"], &e["t"]);
    assert_close("cpu eps", &eps, &f64s(&e["eps"]), 1e-4);
    assert_close("cpu x0", &x0, &f64s(&e["x0"]), 1e-4);
}

#[test]
fn gpu_forward_matches_pytorch() {
    let e = expected();
    let ckpt = fixture_model();
    for (precision, tol) in [(Precision::F32, 1e-4), (Precision::F16, 1e-2)] {
        if precision == Precision::F16 && !gpu().f16 {
            continue;
        }
        let m = GpuModel::new(gpu(), &ckpt, Some(precision)).unwrap();
        let (eps, x0) = pollster::block_on(m.forward(gpu(), &e["x"], &e["t"])).unwrap();
        assert_close(
            &format!("gpu eps {precision:?}"),
            &eps,
            &f64s(&e["eps"]),
            tol,
        );
        assert_close(&format!("gpu x0 {precision:?}"), &x0, &f64s(&e["x0"]), tol);
    }
}

/// A 4-step DDPM run from seed 1234 with the sampler's own noise, against PyTorch.
#[test]
fn sampling_matches_pytorch() {
    let e = expected();
    let ckpt = fixture_model();
    let steps = plan(&ckpt.config, Sampler::Ddpm, 4).unwrap();
    let cpu = CpuModel::new(ckpt.clone()).generate(2, 1234, &steps, |_| {});
    assert_close("cpu sampling", &cpu, &f64s(&e["sample_final"]), 1e-4);
    let m = GpuModel::new(gpu(), &ckpt, Some(Precision::F32)).unwrap();
    let g = m.generator(gpu(), 2, &steps).unwrap();
    let x = pollster::block_on(g.generate(gpu(), 1234)).unwrap();
    assert_close("gpu sampling", &x, &f64s(&e["sample_final"]), 1e-4);
}

/// DDIM (with its clipped image estimate) on the GPU against the CPU path, 3 steps.
#[test]
fn ddim_gpu_matches_cpu() {
    let ckpt = fixture_model();
    let steps = plan(&ckpt.config, Sampler::Ddim, 3).unwrap();
    assert!(steps.iter().all(|s| s.x0.is_some()));
    let cpu = CpuModel::new(ckpt.clone()).generate(2, 99, &steps, |_| {});
    let m = GpuModel::new(gpu(), &ckpt, Some(Precision::F32)).unwrap();
    let g = m.generator(gpu(), 2, &steps).unwrap();
    let x = pollster::block_on(g.generate(gpu(), 99)).unwrap();
    assert!(
        cpu.iter().all(|v| (-1.0..=1.0).contains(v)),
        "the last step is the clipped estimate"
    );
    assert_close("ddim gpu vs cpu", &x, &f64s(&cpu), 1e-4);
}

fn random_checkpoint(config: Config, rng: &mut impl Rng) -> Checkpoint {
    Checkpoint::random(config, 1.5, || rng.random_range(-1.0..1.0))
}

/// GPU against CPU on the real presets with random weights, with the GPU plan and with the
/// software adapters' plan (products and AdaLNs without workgroup memory or barriers,
/// nothing split).
#[test]
fn gpu_matches_cpu_on_presets() {
    let mut rng = rng("presets");
    for software in [false, true] {
        for (config, batch) in [(Config::favicon_s(), 2), (Config::favicon_b(), 1)] {
            let ckpt = random_checkpoint(config.clone(), &mut rng);
            let x = random(&mut rng, batch * config.image_len());
            let t: Vec<f32> = (0..batch).map(|i| (7 + 13 * i) as f32).collect();
            let (want_eps, want_x0) = CpuModel::new(ckpt.clone()).forward(&x, &t);
            let m = GpuModel::with_plan(gpu(), &ckpt, Some(Precision::F32), software).unwrap();
            let (eps, x0) = pollster::block_on(m.forward(gpu(), &x, &t)).unwrap();
            let what = format!(
                "dim {} batch {batch}, software plan: {software}",
                config.dim
            );
            assert_close(&format!("eps {what}"), &eps, &f64s(&want_eps), 1e-4);
            assert_close(&format!("x0 {what}"), &x0, &f64s(&want_x0), 1e-4);
        }
    }
}

/// favicon-s attends by rows with one head, so its plan fuses attention with the output
/// projection and the next AdaLN (`attention_rows_out`); fused and unfused (what `webdit
/// generate` runs until the fused kernel is cached, and the web build) both match the CPU.
#[test]
fn attention_fused_and_unfused_match_cpu() {
    let mut rng = rng("attention fusion");
    let config = Config::favicon_s();
    let ckpt = random_checkpoint(config.clone(), &mut rng);
    let batch = 3;
    let x = random(&mut rng, batch * config.image_len());
    let t = [3.0, 17.0, 29.0];
    let (want_eps, want_x0) = CpuModel::new(ckpt.clone()).forward(&x, &t);
    let mut m = GpuModel::new(gpu(), &ckpt, Some(Precision::F32)).unwrap();
    for fused in [true, false] {
        if !fused {
            m.disable_attention_out_fusion();
        }
        let plan = m.plan(batch, &[]).unwrap();
        let fused_ops = plan
            .ops
            .iter()
            .filter(|op| op.kernel.name.starts_with("attention_rows_out"))
            .count();
        assert_eq!(fused_ops, if fused { config.depth } else { 0 });
        let (eps, x0) = pollster::block_on(m.forward(gpu(), &x, &t)).unwrap();
        assert_close(&format!("eps, fused {fused}"), &eps, &f64s(&want_eps), 1e-4);
        assert_close(&format!("x0, fused {fused}"), &x0, &f64s(&want_x0), 1e-4);
    }
}

/// favicon-s at batch 1 (64 rows) with f16 storage plans each block's qkv in the reduction
/// with the AdaLN before it (`splitk_reduce_*_adaln_linear_f16`, where the adapter has
/// subgroups); fused and unfused, and f32 (never fused), all match the CPU.
#[test]
fn qkv_fused_and_unfused_match_cpu() {
    let mut rng = rng("qkv fusion");
    let config = Config::favicon_s();
    let ckpt = random_checkpoint(config.clone(), &mut rng);
    let x = random(&mut rng, config.image_len());
    let (want_eps, want_x0) = CpuModel::new(ckpt.clone()).forward(&x, &[23.0]);
    for precision in [Precision::F32, Precision::F16] {
        if precision == Precision::F16 && !gpu().f16 {
            continue;
        }
        let tol = if precision == Precision::F16 {
            2e-2
        } else {
            1e-4
        };
        let mut m = GpuModel::new(gpu(), &ckpt, Some(precision)).unwrap();
        for fused in [true, false] {
            if !fused {
                m.disable_qkv_fusion();
            }
            let plan = m.plan(1, &[]).unwrap();
            let fused_ops = plan
                .ops
                .iter()
                .filter(|op| op.kernel.name.contains("adaln_linear"))
                .count();
            // f32 plans do not fuse (it does not pay: `Options::norm_linear_fused`).
            let expected = if fused && gpu().subgroups && precision == Precision::F16 {
                config.depth
            } else {
                0
            };
            assert_eq!(fused_ops, expected, "{precision:?}, fused {fused}");
            let (eps, x0) = pollster::block_on(m.forward(gpu(), &x, &[23.0])).unwrap();
            let what = format!("{precision:?}, fused {fused}");
            assert_close(&format!("eps, {what}"), &eps, &f64s(&want_eps), tol);
            assert_close(&format!("x0, {what}"), &x0, &f64s(&want_x0), tol);
        }
    }
}

#[test]
fn gpu_rejects_head_width_it_cannot_run() {
    let mut config = fixture_model().config;
    config.dim_head = 6;
    let ckpt = random_checkpoint(config, &mut rng("odd head"));
    let err = GpuModel::new(gpu(), &ckpt, None).err().expect("rejected");
    assert!(err.to_string().contains("dim_head 6"), "{err}");
}

#[test]
fn same_seed_same_bits() {
    let ckpt = fixture_model();
    let m = GpuModel::new(gpu(), &ckpt, None).unwrap();
    let steps = plan(&ckpt.config, Sampler::Ddim, 3).unwrap();
    let g = m.generator(gpu(), 3, &steps).unwrap();
    // `a` is submitted as it is recorded; `b` and `c` run command buffers recorded during
    // the generation before, so `c`'s seed reaches one recorded before it was known.
    let a = pollster::block_on(g.generate(gpu(), 42)).unwrap();
    let b = pollster::block_on(g.generate(gpu(), 42)).unwrap();
    let c = pollster::block_on(g.generate(gpu(), 43)).unwrap();
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(
        bytemuck::cast_slice::<f32, u32>(&a),
        bytemuck::cast_slice::<f32, u32>(&b)
    );
    assert_ne!(a, c);
    // However the steps are grouped into submissions, the image is the same to the bit
    // (each step reads its own modulations and noise, whatever was submitted before).
    for per_submit in [1, 2, 3] {
        let d = pollster::block_on(g.generate_in(gpu(), 42, per_submit)).unwrap();
        assert_eq!(
            bytemuck::cast_slice::<f32, u32>(&a),
            bytemuck::cast_slice::<f32, u32>(&d),
            "{per_submit} steps per submit"
        );
    }
    // A generator reused after other seeds, and a fresh one, give the same bits too, as do
    // models from weights converted ahead (what the CLI does while the adapter opens), at
    // the model's precision or at the other one (converted again).
    let again = pollster::block_on(g.generate(gpu(), 42)).unwrap();
    let fresh = m.generator(gpu(), 3, &steps).unwrap();
    let new = pollster::block_on(fresh.generate(gpu(), 42)).unwrap();
    let ahead = |p: Precision| {
        let m = GpuModel::with_weights(gpu(), &ckpt, None, Some(HostWeights::new(&ckpt, p)));
        let g = m.unwrap().generator(gpu(), 3, &steps).unwrap();
        pollster::block_on(g.generate(gpu(), 42)).unwrap()
    };
    let (same, other) = match m.precision {
        Precision::F16 => (ahead(Precision::F16), ahead(Precision::F32)),
        Precision::F32 => (ahead(Precision::F32), ahead(Precision::F16)),
    };
    for (what, x) in [
        ("reused", &again),
        ("fresh", &new),
        ("converted ahead", &same),
        ("converted ahead at the other precision", &other),
    ] {
        assert_eq!(
            bytemuck::cast_slice::<f32, u32>(&a),
            bytemuck::cast_slice::<f32, u32>(x),
            "{what}"
        );
    }
}

/// A model compiles only the kernels its generators use, each once.
#[test]
fn pipelines_are_compiled_once_and_only_when_used() {
    let ckpt = fixture_model();
    let m = GpuModel::new(gpu(), &ckpt, Some(Precision::F32)).unwrap();
    assert_eq!(m.pipelines(), 0, "nothing before a generator needs it");
    let steps = plan(&ckpt.config, Sampler::Ddpm, 4).unwrap();
    let g = m.generator(gpu(), 1, &steps).unwrap();
    let used = m.pipelines();
    assert_eq!(g.compiled.times.len(), used);
    // patchify, the products, AdaLN, attention, unpatchify, the sampler and the time path:
    // well under the registry's variants of one precision.
    assert!((6..=20).contains(&used), "{used} pipelines");
    let again = m.generator(gpu(), 1, &steps).unwrap();
    assert_eq!(
        again.compiled.times.len(),
        0,
        "a second generator compiles nothing"
    );
    assert_eq!(m.pipelines(), used);
}

/// The variants one favicon-s generation compiles are at most 250 KB of WGSL, in either
/// precision (the start-up budget: what a page or a fresh process must compile).
#[test]
fn a_favicon_s_generation_compiles_little() {
    let config = Config::favicon_s();
    let ckpt = random_checkpoint(config.clone(), &mut rng("budget"));
    let steps = plan(&config, Sampler::Ddpm, config.steps).unwrap();
    for precision in [Precision::F32, Precision::F16] {
        if precision == Precision::F16 && !gpu().f16 {
            continue;
        }
        let m = GpuModel::new(gpu(), &ckpt, Some(precision)).unwrap();
        m.generator(gpu(), 1, &steps).unwrap();
        let used = m.variants();
        let bytes: usize = used.iter().map(|k| k.wgsl.len()).sum();
        let names: Vec<&str> = used.iter().map(|k| k.name).collect();
        assert!(
            bytes <= 250_000,
            "{precision:?}: {bytes} bytes in {names:?}"
        );
    }
}

#[test]
fn shipped_weights_load() {
    let ckpt = webdit_model::default_checkpoint().expect("shipped weights load");
    assert_eq!(ckpt.config.dim, 512);
    assert_eq!(ckpt.config.depth, 4);
    assert!(ckpt.stored_half());
}

// --- the loader's errors -----------------------------------------------------------------

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(format!("{FIXTURE}/tiny.safetensors")).unwrap()
}

fn load(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::from_files(
        Files {
            files: vec![("test.safetensors".into(), bytes)],
            index: None,
        },
        None,
    )
}

/// Rebuilds the fixture with `edit` applied to its tensors and metadata.
fn rebuilt(
    edit: impl FnOnce(
        &mut Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)>,
        &mut HashMap<String, String>,
    ),
) -> Vec<u8> {
    let bytes = fixture_bytes();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap_or_default();
    let mut ts: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.dtype(), v.data().to_vec()))
        .collect();
    edit(&mut ts, &mut meta);
    let views: Vec<_> = ts
        .iter()
        .map(|(n, s, d, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn loader_rejects_malformed_files() {
    let good = fixture_bytes();
    assert!(load(&good).is_ok());
    // Truncated anywhere: header or data.
    for cut in [0, 4, 8, 100, good.len() / 2, good.len() - 1] {
        let e = load(&good[..cut]).unwrap_err();
        assert!(
            matches!(e, CheckpointError::Format { .. }),
            "cut {cut}: {e}"
        );
    }
    // A header whose offsets point past the data.
    let mut lying = good.clone();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let last = header.rfind("data_offsets\":[").unwrap();
    let fixed = format!(
        "{}data_offsets\":[0,99999999]{}",
        &header[..last],
        &header[header[last..].find(']').unwrap() + last + 1..]
    );
    let padded = format!("{fixed:<n$}");
    if padded.len() == n {
        lying[8..8 + n].copy_from_slice(padded.as_bytes());
        assert!(matches!(
            load(&lying).unwrap_err(),
            CheckpointError::Format { .. }
        ));
    }
    // Garbage.
    assert!(load(b"not a checkpoint at all").is_err());
}

#[test]
fn loader_names_the_bad_tensor() {
    let missing = rebuilt(|t, _| t.retain(|(n, ..)| n != "blocks.1.attn.to_k.weight"));
    let e = load(&missing).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Missing { name, .. } if name == "blocks.1.attn.to_k.weight"),
        "{e}"
    );

    let extra = rebuilt(|t, _| {
        t.push((
            "blocks.9.attn.to_q.weight".into(),
            vec![1],
            safetensors::Dtype::F32,
            vec![0; 4],
        ))
    });
    let e = load(&extra).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Extra { name } if name == "blocks.9.attn.to_q.weight"),
        "{e}"
    );

    let shape = rebuilt(|t, _| {
        let p = t
            .iter_mut()
            .find(|(n, ..)| n == "to_pixels.weight")
            .unwrap();
        p.1 = vec![p.1[1], p.1[0]];
    });
    let e = load(&shape).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Shape { name, .. } if name == "to_pixels.weight"),
        "{e}"
    );

    let dtype = rebuilt(|t, _| {
        t.iter_mut().find(|(n, ..)| n == "proj_fin.bias").unwrap().2 = safetensors::Dtype::I32
    });
    let e = load(&dtype).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Dtype { name, .. } if name == "proj_fin.bias"),
        "{e}"
    );

    let nan = rebuilt(|t, _| {
        let b = &mut t.iter_mut().find(|(n, ..)| n == "proj_fin.bias").unwrap().3;
        b[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert!(matches!(
        load(&nan).unwrap_err(),
        CheckpointError::NotFinite { .. }
    ));

    // A configuration that does not match the tensors.
    let lie = rebuilt(|_, m| {
        let mut c = Config::from_json(&m["webdit_config"]).unwrap();
        c.dim *= 2;
        m.insert("webdit_config".into(), c.to_json());
    });
    let e = load(&lie).unwrap_err();
    assert!(matches!(e, CheckpointError::Shape { .. }), "{e}");

    let bad_config = rebuilt(|_, m| {
        m.insert("webdit_config".into(), "{\"input\": 64".into());
    });
    assert!(matches!(
        load(&bad_config).unwrap_err(),
        CheckpointError::Config(_)
    ));
}

#[test]
fn sharded_index_is_checked() {
    let bytes = fixture_bytes();
    let index = r#"{"weight_map": {"patch_embed.weight": "a.safetensors"}}"#;
    let e = Checkpoint::from_files(
        Files {
            files: vec![("b.safetensors".into(), &bytes)],
            index: Some(index),
        },
        None,
    )
    .unwrap_err();
    assert!(matches!(e, CheckpointError::Index { .. }), "{e}");
    let e = Checkpoint::from_files(
        Files {
            files: vec![],
            index: Some("[1,2"),
        },
        None,
    )
    .unwrap_err();
    assert!(matches!(e, CheckpointError::Index { .. }), "{e}");
}

/// The original's WTS1 format, written from the fixture with its key names, converts back.
#[test]
fn wts1_converts() {
    let ckpt = fixture_model();
    let mut out = b"WTS1".to_vec();
    out.extend((ckpt.tensors.len() as u32).to_le_bytes());
    for (name, t) in &ckpt.tensors {
        let key = name
            .replace("blocks.", "block_")
            .replace(".scale_proj.weight", ".scale.weight")
            .replace(".shift_proj.weight", ".shift.weight");
        out.extend((key.len() as u32).to_le_bytes());
        out.extend(key.as_bytes());
        out.extend(std::iter::repeat_n(0u8, (4 - key.len() % 4) % 4));
        out.extend((t.shape.len() as u32).to_le_bytes());
        for d in &t.shape {
            out.extend((*d as u32).to_le_bytes());
        }
        out.extend((t.data.len() as u32).to_le_bytes());
        out.extend(bytemuck::cast_slice::<f32, u8>(&t.data));
    }
    let back = webdit_model::wts1::parse(&out, Some(&ckpt.config)).unwrap();
    for (name, t) in &ckpt.tensors {
        assert_eq!(back.tensors[name].data, t.data, "{name}");
    }
    let e = webdit_model::wts1::parse(&out[..out.len() - 3], Some(&ckpt.config)).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(webdit_model::wts1::parse(b"WTS2", None).is_err());
}

/// A bounded random-mutation fuzz of the loader (stable Rust has no cargo-fuzz here): flipped
/// bytes, truncations and splices of a valid checkpoint and of a WTS1 file must give errors
/// or a checked checkpoint, never a panic.
#[test]
fn loader_survives_random_mutations() {
    let mut rng = rng("loader fuzz");
    let good = fixture_bytes();
    let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut rejected = 0;
    for i in 0..1500 {
        let mut b = good.clone();
        match i % 4 {
            0 => {
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..header);
                    b[at] = rng.random();
                }
            }
            1 => b.truncate(rng.random_range(0..b.len())),
            2 => {
                let at = rng.random_range(0..header);
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(at..at, junk);
            }
            _ => {
                let at = rng.random_range(0..8);
                b[at] = rng.random();
            }
        }
        if load(&b).is_err() {
            rejected += 1;
        }
        let _ = webdit_model::wts1::parse(&b, None);
    }
    assert!(
        rejected > 1000,
        "only {rejected} of 1500 mutations were rejected"
    );
}

/// Whether the adapter runs the tensor-core kernels; where not, says so.
fn tensor_cores() -> bool {
    let info = &gpu().adapter;
    let runs = gpu().coop && (info.subgroup_min_size, info.subgroup_max_size) == (32, 32);
    if !runs {
        eprintln!(
            "not checked: {} runs no tensor cores (the f16/f32 kernels are checked elsewhere)",
            gpu().describe()
        );
    }
    runs
}

/// The model on tensor cores (f16 storage on an adapter with cooperative matrices: every
/// tensor-core tile, favicon-b batch 16's MLP out on the 192-row one) against the CPU
/// reference; elsewhere it says so.
#[test]
fn tensor_core_model_matches_cpu() {
    if !tensor_cores() {
        return;
    }
    let mut rng = rng("tensor cores");
    // Batch 16: whole products and split-K on tensor cores; batch 1: split-K (the larger
    // products) and the f16 kernels (the rest).
    for (config, batch) in [
        (Config::favicon_s(), 16),
        (Config::favicon_b(), 16),
        (Config::favicon_s(), 1),
        (Config::favicon_b(), 1),
    ] {
        let ckpt = random_checkpoint(config.clone(), &mut rng);
        let x = random(&mut rng, batch * config.image_len());
        let t: Vec<f32> = (0..batch).map(|i| (7 + 13 * i) as f32).collect();
        let (want_eps, _) = CpuModel::new(ckpt.clone()).forward(&x, &t);
        let m = GpuModel::new(gpu(), &ckpt, Some(Precision::F16)).unwrap();
        let (eps, _) = pollster::block_on(m.forward(gpu(), &x, &t)).unwrap();
        assert_close(
            &format!("eps dim {} batch {batch}, tensor cores", config.dim),
            &eps,
            &f64s(&want_eps),
            2e-2,
        );
    }
}

/// MLP in's reduction moved into MLP out's loads (tensor cores, favicon-s batch 1) gives the
/// same bits as the two ops it replaces; elsewhere it says so.
#[test]
fn fused_mlp_gives_the_same_bits() {
    if !tensor_cores() {
        return;
    }
    let mut rng = rng("fused mlp");
    let config = Config::favicon_s();
    let ckpt = random_checkpoint(config.clone(), &mut rng);
    let x = random(&mut rng, config.image_len());
    let mut m = GpuModel::new(gpu(), &ckpt, Some(Precision::F16)).unwrap();
    let fused = |m: &GpuModel| {
        let plan = m.plan(1, &[]).unwrap();
        plan.ops.iter().any(|op| op.kernel.name.contains("of_silu"))
    };
    assert!(fused(&m), "favicon-s batch 1 plans the fused MLP");
    let (eps, x0) = pollster::block_on(m.forward(gpu(), &x, &[11.0])).unwrap();
    m.disable_mlp_fusion();
    assert!(!fused(&m));
    let (eps2, x02) = pollster::block_on(m.forward(gpu(), &x, &[11.0])).unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&eps), bits(&eps2));
    assert_eq!(bits(&x0), bits(&x02));
}

/// The to-pixels product's reduction moved into the sampler (favicon-s batch 1, where that
/// product splits K) gives the same bits as the two ops it replaces (which keep eps in f32
/// too), f32 and f16, over DDPM steps with noise.
#[test]
fn fused_eps_gives_the_same_bits() {
    let mut rng = rng("fused eps");
    let config = Config::favicon_s();
    let ckpt = random_checkpoint(config.clone(), &mut rng);
    let steps = plan(&config, Sampler::Ddpm, 32).unwrap();
    let steps = &steps[steps.len() - 3..];
    for precision in [Precision::F32, Precision::F16] {
        if precision == Precision::F16 && !gpu().f16 {
            continue;
        }
        let mut m = GpuModel::new(gpu(), &ckpt, Some(precision)).unwrap();
        let fused = |m: &GpuModel| {
            let plan = m.plan(1, steps).unwrap();
            let reduce = plan
                .ops
                .iter()
                .any(|op| op.name == "final.to_pixels.reduce");
            let parts = plan
                .ops
                .iter()
                .any(|op| op.name == "final.to_pixels.partial");
            parts && !reduce
        };
        assert!(
            fused(&m),
            "favicon-s batch 1 {precision:?} fuses the reduction"
        );
        let g = m.generator(gpu(), 1, steps).unwrap();
        let x = pollster::block_on(g.generate(gpu(), 5)).unwrap();
        m.disable_eps_fusion();
        assert!(!fused(&m));
        let g = m.generator(gpu(), 1, steps).unwrap();
        let x2 = pollster::block_on(g.generate(gpu(), 5)).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert!(x.iter().all(|v| v.is_finite()), "{precision:?}");
        assert_eq!(bits(&x), bits(&x2), "{precision:?}");
    }
}

/// The exchange of workers that are threads here (Web Workers in the browser): each writes
/// its part into its slot of one of two alternating buffers, waits for all, reads them all.
struct ThreadExchange {
    rank: usize,
    calls: usize,
    barrier: std::sync::Arc<std::sync::Barrier>,
    slots: std::sync::Arc<[std::sync::Mutex<Vec<Vec<f32>>>; 2]>,
}

impl webdit_model::cpu::Exchange for ThreadExchange {
    fn gather(&mut self, part: &[f32], all: &mut [f32]) -> Result<(), String> {
        let slots = &self.slots[self.calls % 2];
        self.calls += 1;
        slots.lock().unwrap()[self.rank] = part.to_vec();
        self.barrier.wait();
        for (out, p) in all.chunks_mut(part.len()).zip(slots.lock().unwrap().iter()) {
            out.copy_from_slice(p);
        }
        Ok(())
    }
}

/// The CPU path split over several workers (the browser's threads), each computing its rows
/// of the batch's tokens: every worker ends with the whole model's image, bit for bit; with
/// rows that do not divide evenly (2 images of 16 tokens over 5 and 7 workers: a worker whose
/// rows straddle the two images, a last worker with fewer rows) and more workers than rows
/// (40: the last 8 have none).
#[test]
fn sharded_cpu_matches_whole() {
    use webdit_model::cpu::Shard;
    let config = fixture_model().config;
    assert_eq!(config.tokens(), 16, "{config:?}");
    let ckpt = random_checkpoint(config.clone(), &mut rng("sharded"));
    let steps = plan(&config, Sampler::Ddpm, 4).unwrap();
    let whole = CpuModel::new(ckpt.clone()).generate(2, 5, &steps, |_| {});
    for world in [2, 3, 5, 7, 40] {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(world));
        let slots =
            std::sync::Arc::new([(); 2].map(|_| std::sync::Mutex::new(vec![vec![]; world])));
        let images: Vec<Vec<f32>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..world)
                .map(|rank| {
                    let (ckpt, steps) = (ckpt.clone(), &steps);
                    let mut ex = ThreadExchange {
                        rank,
                        calls: 0,
                        barrier: barrier.clone(),
                        slots: slots.clone(),
                    };
                    s.spawn(move || {
                        let m = CpuModel::sharded(ckpt, Shard { rank, world });
                        let mut x = m.initial_noise(2, 5);
                        for step in steps {
                            m.step_sharded(&mut x, 5, step, &mut ex).unwrap();
                        }
                        x
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (rank, x) in images.iter().enumerate() {
            assert!(
                x.iter()
                    .zip(&whole)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "worker {rank} of {world} differs from the whole model"
            );
        }
    }
}
