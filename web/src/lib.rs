//! The browser bundle's Rust side (compiled to wasm, glued by wasm-bindgen): the shipped
//! `favicon-s` DiT on the page's WebGPU device. The page (`web/static/`) draws each step's
//! image as it denoises; `web/build.sh` writes the deployable bundle to `web/dist/`.

use std::rc::Rc;
use wasm_bindgen::prelude::*;
use webdit_model::pixels::to_rgba8;
use webdit_model::{default_checkpoint, plan, Config, Gpu, GpuModel, Precision, Sampler};

struct Inner {
    gpu: Gpu,
    model: GpuModel,
    config: Config,
}

/// The model on a WebGPU device, ready to generate.
#[wasm_bindgen]
pub struct WebDit {
    inner: Rc<Inner>,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen]
impl WebDit {
    /// Opens the browser's WebGPU adapter and uploads the shipped weights (f16 where the
    /// adapter has `shader-f16`). Rejects with a readable reason when there is no adapter.
    pub async fn create() -> Result<WebDit, JsError> {
        let gpu = Gpu::new().await.map_err(js_error)?;
        let ckpt = default_checkpoint().map_err(js_error)?;
        let model = GpuModel::new(&gpu, &ckpt, None).map_err(js_error)?;
        Ok(WebDit {
            inner: Rc::new(Inner {
                gpu,
                model,
                config: ckpt.config,
            }),
        })
    }

    /// The adapter, as wgpu describes it.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.gpu.describe()
    }

    /// `"f16"` or `"f32"`: the storage precision of the kernels in use.
    #[wasm_bindgen(getter)]
    pub fn precision(&self) -> String {
        match self.inner.model.precision {
            Precision::F16 => "f16".into(),
            Precision::F32 => "f32".into(),
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

    /// Generates one icon with `steps` steps of `sampler` (`"ddpm"` or `"ddim"`) from `seed`.
    /// With `on_step`, each step is submitted on its own and `on_step(step, steps, rgba)`
    /// receives the image so far (`size·size·4` bytes); without it, the whole loop runs on
    /// the GPU with no readback (`Generator::generate`). Resolves to the final image's RGBA
    /// bytes.
    pub fn generate(
        &self,
        seed: f64,
        steps: u32,
        sampler: String,
        on_step: Option<js_sys::Function>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let sampler = match sampler.as_str() {
                "ddpm" => Sampler::Ddpm,
                "ddim" => Sampler::Ddim,
                other => return Err(js_error(format!("unknown sampler `{other}`")).into()),
            };
            let plan = plan(&inner.config, sampler, steps as usize).map_err(js_error)?;
            let g = inner
                .model
                .generator(&inner.gpu, 1, &plan)
                .map_err(js_error)?;
            let image =
                |x: &[f32]| js_sys::Uint8ClampedArray::from(&to_rgba8(&inner.config, x, 0)[..]);
            let x = match on_step {
                None => g
                    .generate(&inner.gpu, seed as u64)
                    .await
                    .map_err(js_error)?,
                Some(f) => {
                    g.set_seed(&inner.gpu, seed as u64);
                    let mut x = vec![];
                    for k in 0..g.len() {
                        let mut enc = inner.gpu.device.create_command_encoder(&Default::default());
                        g.encode(&mut enc, k..k + 1);
                        inner.gpu.queue.submit([enc.finish()]);
                        x = g.read_image(&inner.gpu).await.map_err(js_error)?;
                        let (step, total) = (JsValue::from(k + 1), JsValue::from(g.len()));
                        f.call3(&JsValue::NULL, &step, &total, &image(&x))?;
                    }
                    x
                }
            };
            Ok(image(&x).into())
        })
    }
}
