// Web DiT's page: loads the wasm module, generates icons on WebGPU, draws every denoising
// step, mirrors the image into the favicon and reports timing. Query parameters: seed,
// steps, sampler (ddpm|ddim), live (0|1), auto (generate on load), embed (image only; also
// generates on load and posts the result to the parent frame).
import init, { WebDit } from "./pkg/webdit_web.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const embed = params.has("embed");
if (embed) document.body.classList.add("embed");

function fail(message) {
  $("status").textContent = message;
  document.body.dataset.state = "error";
  window.webdit = { error: message };
  if (embed) window.parent.postMessage({ type: "webdit-error", message }, "*");
}

function draw(rgba, size) {
  const canvas = $("image");
  canvas.width = canvas.height = size;
  canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), size, size), 0, 0);
  $("favicon").href = canvas.toDataURL("image/png");
}

async function generate(dit) {
  const seed = Number($("seed").value);
  const steps = Number($("steps").value);
  const sampler = $("sampler").value;
  const live = $("live").checked;
  const size = dit.size;
  $("generate").disabled = true;
  document.body.dataset.state = "running";
  const start = performance.now();
  const onStep = live
    ? (step, total, rgba) => {
        draw(rgba, size);
        $("status").textContent = `step ${step} of ${total}`;
      }
    : undefined;
  try {
    const rgba = await dit.generate(seed, steps, sampler, onStep);
    const ms = performance.now() - start;
    draw(rgba, size);
    const result = {
      seed, steps, sampler, live, size,
      totalMs: ms, perStepMs: ms / steps,
      adapter: dit.adapter, precision: dit.precision,
      // A cheap fingerprint of the image, so tests can compare runs.
      checksum: rgba.reduce((a, v, i) => (a + v * (i % 251 + 1)) % 1000000007, 0),
    };
    $("status").textContent = `Done: seed ${seed}, ${steps} ${sampler} steps.`;
    $("timing").textContent =
      `${ms.toFixed(1)} ms in total, ${(ms / steps).toFixed(2)} ms per step` +
      `${live ? " (each step read back to draw it)" : " (no readback between steps)"}\n` +
      `${dit.adapter}, ${dit.precision} kernels`;
    window.webdit = result;
    document.body.dataset.state = "done";
    if (embed) window.parent.postMessage({ type: "webdit", ...result }, "*");
  } catch (e) {
    fail(`Generation failed: ${e.message ?? e}`);
  } finally {
    $("generate").disabled = false;
  }
}

async function main() {
  if (!navigator.gpu) {
    fail("This browser has no WebGPU (navigator.gpu is missing): Web DiT needs it.");
    return;
  }
  await init();
  let dit;
  try {
    dit = await WebDit.create();
  } catch (e) {
    fail(`Could not start the model: ${e.message ?? e}`);
    return;
  }
  $("seed").value = params.get("seed") ?? Math.floor(Math.random() * 1e9);
  $("steps").value = params.get("steps") ?? dit.trainedSteps;
  const sampler = params.get("sampler") ?? "ddpm";
  if (![...$("sampler").options].some((o) => o.value === sampler)) {
    fail(`Unknown sampler "${sampler}": use ddpm or ddim.`);
    return;
  }
  $("sampler").value = sampler;
  $("live").checked = params.get("live") !== "0";
  $("status").textContent = `Ready on ${dit.adapter} (${dit.precision} kernels).`;
  document.body.dataset.state = "ready";
  $("generate").disabled = false;
  $("generate").onclick = () => generate(dit);
  if (embed || params.has("auto")) await generate(dit);
}

main().catch((e) => fail(`Web DiT failed: ${e.message ?? e}`));
