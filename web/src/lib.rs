//! The browser bundle's Rust side (compiled to wasm, glued by wasm-bindgen): a DiT checkpoint
//! that the page fetched (or the user dropped), run on the page's WebGPU device or, where
//! there is no usable GPU, on the CPU reference path compiled to wasm (SIMD128). The page
//! (`web/static/`) draws each step as it denoises; `web/build.sh` writes the deployable
//! bundle to `web/dist/`. The wasm holds code only: the weights are separate files.
//!
//! Where the page is cross-origin isolated, the CPU path runs on several Web Workers, each
//! with its own instance of this module and a [`CpuShard`] (its rows of the batch's tokens);
//! their keys, values and outputs meet in a `SharedArrayBuffer` (`web/static/worker.js`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_time::Instant;
use webdit_model::checkpoint::Files;
use webdit_model::cpu::{CpuModel, Exchange, Shard};
use webdit_model::pixels::to_rgba8;
use webdit_model::{plan, Checkpoint, Config, Generator, Gpu, GpuModel, Precision, Sampler, Step};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &js_sys::Function, ms: i32);
}

/// Lets the browser run its event loop (draw, handle input) before going on.
async fn yield_to_browser() {
    let p = js_sys::Promise::new(&mut |resolve, _| set_timeout(&resolve, 0));
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// Where the model runs.
enum Engine {
    Gpu {
        gpu: Box<Gpu>,
        model: Box<GpuModel>,
        /// One generator per (steps, sampler), reused by every later generation.
        generators: RefCell<HashMap<(u32, String), Rc<Generator>>>,
    },
    Cpu(CpuModel),
}

struct Inner {
    engine: Engine,
    config: Config,
    /// Milliseconds the last generation spent building its generator (pipelines, buffers,
    /// bind groups); 0 when it reused one.
    setup_ms: RefCell<f64>,
}

/// A model ready to generate, on WebGPU or on the CPU.
#[wasm_bindgen]
pub struct WebDit {
    inner: Rc<Inner>,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// What the CPU path runs on, in words.
#[wasm_bindgen(js_name = cpuDescription)]
pub fn cpu_description(threads: u32) -> String {
    let simd = if cfg!(target_feature = "relaxed-simd") {
        "SIMD128 with relaxed FMA"
    } else {
        "SIMD128"
    };
    let s = if threads == 1 { "" } else { "s" };
    format!("CPU reference path (wasm32, {simd}, {threads} thread{s})")
}

/// A checkpoint from its files (`[[name, Uint8Array], ...]`: one `.safetensors`, or the
/// shards that `index`, a `model.safetensors.index.json`, names).
fn load_checkpoint(files: &js_sys::Array, index: Option<String>) -> Result<Checkpoint, JsError> {
    let files = read_files(files)?;
    Checkpoint::from_files(
        Files {
            files: files.iter().map(|(n, b)| (n.clone(), &b[..])).collect(),
            index: index.as_deref(),
        },
        None,
    )
    .map_err(js_error)
}

/// The steps of `sampler` (`"ddpm"` or `"ddim"`).
fn sampling_plan(config: &Config, steps: u32, sampler: &str) -> Result<Vec<Step>, JsError> {
    let kind = match sampler {
        "ddpm" => Sampler::Ddpm,
        "ddim" => Sampler::Ddim,
        other => return Err(js_error(format!("unknown sampler `{other}`"))),
    };
    plan(config, kind, steps as usize).map_err(js_error)
}

/// Reads `[[name, Uint8Array], ...]`.
fn read_files(files: &js_sys::Array) -> Result<Vec<(String, Vec<u8>)>, JsError> {
    files
        .iter()
        .map(|pair| {
            let pair: js_sys::Array = pair
                .dyn_into()
                .map_err(|_| js_error("each file must be a [name, bytes] pair"))?;
            let name = pair
                .get(0)
                .as_string()
                .ok_or_else(|| js_error("a file's name must be a string"))?;
            let bytes: js_sys::Uint8Array = pair
                .get(1)
                .dyn_into()
                .map_err(|_| js_error(format!("`{name}`: the contents must be a Uint8Array")))?;
            Ok((name, bytes.to_vec()))
        })
        .collect()
}

#[wasm_bindgen]
impl WebDit {
    /// Loads a checkpoint from its files (`[[name, Uint8Array], ...]`: one `.safetensors`,
    /// or the shards that `index`, a `model.safetensors.index.json`, names) and readies it
    /// on `device`: `"webgpu"` (f16 kernels where the adapter has `shader-f16`) or `"cpu"`.
    /// Rejects with a readable reason for a bad checkpoint or a missing adapter.
    pub async fn load(
        files: js_sys::Array,
        index: Option<String>,
        device: String,
    ) -> Result<WebDit, JsError> {
        let ckpt = load_checkpoint(&files, index)?;
        let config = ckpt.config.clone();
        let engine = match device.as_str() {
            "webgpu" => {
                let gpu = Gpu::new().await.map_err(js_error)?;
                let model = GpuModel::new(&gpu, &ckpt, None).map_err(js_error)?;
                Engine::Gpu {
                    gpu: Box::new(gpu),
                    model: Box::new(model),
                    generators: RefCell::new(HashMap::new()),
                }
            }
            "cpu" => Engine::Cpu(CpuModel::new(ckpt)),
            other => return Err(js_error(format!("unknown device `{other}` (webgpu, cpu)"))),
        };
        Ok(WebDit {
            inner: Rc::new(Inner {
                engine,
                config,
                setup_ms: RefCell::new(0.0),
            }),
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        match &self.inner.engine {
            Engine::Gpu { .. } => "webgpu".into(),
            Engine::Cpu(_) => "cpu".into(),
        }
    }

    /// What runs the model, in words.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        match &self.inner.engine {
            Engine::Gpu { gpu, .. } => gpu.describe(),
            Engine::Cpu(_) => cpu_description(1),
        }
    }

    /// `"f16"` or `"f32"`: the storage precision of the kernels in use.
    #[wasm_bindgen(getter)]
    pub fn precision(&self) -> String {
        match &self.inner.engine {
            Engine::Gpu { model, .. } if model.precision == Precision::F16 => "f16".into(),
            _ => "f32".into(),
        }
    }

    /// Side of the generated images, in pixels.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.inner.config.input as u32
    }

    /// The model's number of diffusion steps (DDPM uses them all).
    #[wasm_bindgen(getter, js_name = trainedSteps)]
    pub fn trained_steps(&self) -> u32 {
        self.inner.config.steps as u32
    }

    /// Milliseconds the last generation spent before its first step (building a generator:
    /// pipelines, buffers, bind groups); 0 when it reused the previous one's.
    #[wasm_bindgen(getter, js_name = setupMs)]
    pub fn setup_ms(&self) -> f64 {
        *self.inner.setup_ms.borrow()
    }

    /// Generates one icon with `steps` steps of `sampler` (`"ddpm"` or `"ddim"`) from `seed`.
    /// With `on_step`, `on_step(step, steps, rgba)` receives the image after each step
    /// (`size·size·4` bytes); on the GPU that reads each step back, without it the whole
    /// loop runs with no readback. Resolves to the final image's RGBA bytes. The same seed
    /// gives the same image, however often the model has generated.
    pub fn generate(
        &self,
        seed: f64,
        steps: u32,
        sampler: String,
        on_step: Option<js_sys::Function>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let plan = sampling_plan(&inner.config, steps, &sampler)?;
            let seed = seed as u64;
            let image =
                |x: &[f32]| js_sys::Uint8ClampedArray::from(&to_rgba8(&inner.config, x, 0)[..]);
            let report = |k: usize, x: &[f32]| -> Result<(), JsValue> {
                if let Some(f) = &on_step {
                    let (step, total) = (JsValue::from(k), JsValue::from(plan.len()));
                    f.call3(&JsValue::NULL, &step, &total, &image(x))?;
                }
                Ok(())
            };
            let x = match &inner.engine {
                Engine::Gpu {
                    gpu,
                    model,
                    generators,
                } => {
                    let start = Instant::now();
                    let key = (steps, sampler.clone());
                    let cached = generators.borrow().get(&key).cloned();
                    let (g, setup) = match cached {
                        Some(g) => (g, 0.0),
                        None => {
                            let g = Rc::new(model.generator(gpu, 1, &plan).map_err(js_error)?);
                            generators.borrow_mut().insert(key, g.clone());
                            (g, start.elapsed().as_secs_f64() * 1e3)
                        }
                    };
                    *inner.setup_ms.borrow_mut() = setup;
                    if on_step.is_none() {
                        g.generate(gpu, seed).await.map_err(js_error)?
                    } else {
                        g.set_seed(gpu, seed);
                        let mut x = vec![];
                        for k in 0..g.len() {
                            let mut enc = gpu.device.create_command_encoder(&Default::default());
                            g.encode(&mut enc, k..k + 1);
                            gpu.queue.submit([enc.finish()]);
                            x = g.read_image(gpu).await.map_err(js_error)?;
                            report(k + 1, &x)?;
                        }
                        x
                    }
                }
                Engine::Cpu(model) => {
                    *inner.setup_ms.borrow_mut() = 0.0;
                    cpu_generate(model, seed, &plan, &report).await?
                }
            };
            Ok(image(&x).into())
        })
    }
}

/// Hands the image after step `k` to the page.
type Report<'a> = &'a dyn Fn(usize, &[f32]) -> Result<(), JsValue>;

/// The CPU path, one step at a time, letting the page draw between steps.
async fn cpu_generate(
    model: &CpuModel,
    seed: u64,
    plan: &[Step],
    report: Report<'_>,
) -> Result<Vec<f32>, JsValue> {
    let mut x = model.initial_noise(1, seed);
    for (k, s) in plan.iter().enumerate() {
        model.step(&mut x, seed, s);
        report(k + 1, &x)?;
        yield_to_browser().await;
    }
    Ok(x)
}

/// One Web Worker's part of the CPU path shared by `world` workers (see
/// `webdit_model::cpu::Shard`): every worker loads the same checkpoint and calls `generate`
/// with the same arguments; each computes its rows of the tokens, and they gather their
/// keys, values and outputs through `exchange`.
#[wasm_bindgen]
pub struct CpuShard {
    model: CpuModel,
}

/// The page's exchange: a JavaScript function that takes this worker's part (a
/// `Float32Array`), waits for the others and returns all parts in rank order.
struct JsExchange<'a>(&'a js_sys::Function);

impl Exchange for JsExchange<'_> {
    fn gather(&mut self, part: &[f32], all: &mut [f32]) -> Result<(), String> {
        let describe = |e: JsValue| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .unwrap_or_else(|| format!("{e:?}"))
        };
        let got = self
            .0
            .call1(&JsValue::NULL, &js_sys::Float32Array::from(part))
            .map_err(describe)?;
        let got: js_sys::Float32Array = got
            .dyn_into()
            .map_err(|_| "the exchange must return a Float32Array".to_string())?;
        if got.length() as usize != all.len() {
            return Err(format!(
                "the exchange returned {} values, not {}",
                got.length(),
                all.len()
            ));
        }
        got.copy_to(all);
        Ok(())
    }
}

#[wasm_bindgen]
impl CpuShard {
    /// Worker `rank` of `world`'s part of the checkpoint in `files` (as [`WebDit::load`]).
    pub fn load(
        files: js_sys::Array,
        index: Option<String>,
        rank: u32,
        world: u32,
    ) -> Result<CpuShard, JsError> {
        if rank >= world {
            return Err(js_error(format!("worker {rank} of {world} does not exist")));
        }
        let ckpt = load_checkpoint(&files, index)?;
        let shard = Shard {
            rank: rank as usize,
            world: world as usize,
        };
        Ok(CpuShard {
            model: CpuModel::sharded(ckpt, shard),
        })
    }

    /// Side of the generated images, in pixels.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.model.config.input as u32
    }

    /// The model's number of diffusion steps.
    #[wasm_bindgen(getter, js_name = trainedSteps)]
    pub fn trained_steps(&self) -> u32 {
        self.model.config.steps as u32
    }

    /// How many values an exchange hands over at most (one image).
    #[wasm_bindgen(getter, js_name = exchangeLen)]
    pub fn exchange_len(&self) -> u32 {
        self.model.exchange_len(1) as u32
    }

    /// Generates one icon as [`WebDit::generate`] does, blocking the worker; `exchange`
    /// (`Float32Array` → `Float32Array`) meets the other workers, and `on_step(step, steps,
    /// rgba)`, where given, receives the image after each step.
    pub fn generate(
        &self,
        seed: f64,
        steps: u32,
        sampler: String,
        exchange: js_sys::Function,
        on_step: Option<js_sys::Function>,
    ) -> Result<js_sys::Uint8ClampedArray, JsError> {
        let config = &self.model.config;
        let plan = sampling_plan(config, steps, &sampler)?;
        let seed = seed as u64;
        let image = |x: &[f32]| js_sys::Uint8ClampedArray::from(&to_rgba8(config, x, 0)[..]);
        let mut x = self.model.initial_noise(1, seed);
        let mut ex = JsExchange(&exchange);
        for (k, s) in plan.iter().enumerate() {
            self.model
                .step_sharded(&mut x, seed, s, &mut ex)
                .map_err(|e| js_error(format!("step {}: {e}", k + 1)))?;
            if let Some(f) = &on_step {
                let (step, total) = (JsValue::from(k + 1), JsValue::from(plan.len()));
                f.call3(&JsValue::NULL, &step, &total, &image(&x))
                    .map_err(|_| js_error("on_step failed"))?;
            }
        }
        Ok(image(&x))
    }
}
