// Web DiT's page: streams the wasm module, fetches the checkpoint's files (with a progress
// bar, verified against the bundle's manifest, kept in the Cache API so a second visit
// downloads nothing), picks WebGPU or the CPU path, generates icons, draws every denoising
// step, mirrors the image into the favicon and reports where the time went.
//
// Query parameters: seed, steps, sampler (ddpm|ddim), live (0|1), auto (generate on load),
// embed (image only; generates on load and posts the result to the parent frame),
// device (auto|webgpu|cpu), threads (of the CPU path; several only where the page is
// cross-origin isolated), weights (URL of a .safetensors file or of a
// model.safetensors.index.json). A dropped (or chosen) checkpoint replaces the model.
// The wasm build with relaxed SIMD (fused multiply-add) where the browser validates a
// relaxed-SIMD instruction (i8x16.relaxed_swizzle), else the plain SIMD128 build.
const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3,
  2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11]);
const pkg = WebAssembly.validate(RELAXED_SIMD_PROBE) ? "./pkg-relaxed/webdit_web.js" : "./pkg/webdit_web.js";
import { WorkerPool } from "./pool.js";
let wasm, module;

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const embed = params.has("embed");
if (embed) document.body.classList.add("embed");
const DEFAULT_WEIGHTS = "weights/favicon-s-emoji/model.safetensors.index.json";
const CACHE = "webdit-weights-v1";
const pageStart = performance.now();
const phases = {}; // milliseconds, in the order they happen
let dit;

function fail(message) {
  $("status").textContent = message;
  document.body.dataset.state = "error";
  window.webdit = { error: message, phases };
  if (embed) window.parent.postMessage({ type: "webdit-error", message }, "*");
}

// The favicon follows the canvas at most every FAVICON_MS while steps arrive (a PNG
// encoding and the browser's icon update each time, on the thread the page shares with the
// CPU path's workers: drawn every step they cost ~10% of a second icon on two cores).
const FAVICON_MS = 250;
let faviconAt = -Infinity;

function draw(rgba, size, final = true) {
  const canvas = $("image");
  if (canvas.width !== size) canvas.width = canvas.height = size;
  canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), size, size), 0, 0);
  const now = performance.now();
  if (final || now - faviconAt >= FAVICON_MS) {
    $("favicon").href = canvas.toDataURL("image/png");
    faviconAt = now;
  }
}

function progress(done, total, what) {
  $("progress").hidden = false;
  $("progress").max = total || 1;
  $("progress").value = done;
  const mb = (b) => (b / 1e6).toFixed(1);
  $("status").textContent = `${what}: ${mb(done)} of ${mb(total)} MB`;
}

async function sha256(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// The body of `response`, reporting bytes as they arrive.
async function readAll(response, onBytes) {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    onBytes(value.length);
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

// The files of the checkpoint at `url` (a .safetensors, or an index naming shards beside it):
// from the Cache API where they are kept, else downloaded with progress and, where the
// bundle's manifest lists them, checked against their SHA-256 before they are kept.
async function fetchCheckpoint(url) {
  const cache = "caches" in self ? await caches.open(CACHE) : null;
  const abs = (u) => new URL(u, location.href).href;
  const get = async (u) => {
    const hit = cache && (await cache.match(abs(u)));
    if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), cached: true };
    const r = await fetch(u);
    if (!r.ok) throw new Error(`${u}: HTTP ${r.status}`);
    return { response: r, cached: false };
  };
  const keep = async (u, bytes) => {
    if (cache) await cache.put(abs(u), new Response(bytes));
  };
  const text = async (u) => {
    const f = await get(u);
    const bytes = f.cached ? f.bytes : await readAll(f.response, () => {});
    return { bytes, text: new TextDecoder().decode(bytes), cached: f.cached };
  };
  let names, index = null, manifest = {}, base = url;
  if (url.endsWith(".json")) {
    const idx = await text(url);
    let map;
    try {
      map = JSON.parse(idx.text).weight_map;
    } catch (e) {
      throw new Error(`${url} is not a shard index (${e.message})`);
    }
    if (!map) throw new Error(`${url} has no weight_map: not a model.safetensors.index.json`);
    index = idx.text;
    names = [...new Set(Object.values(map))];
    // The bundle lists its own files' sizes and hashes beside the index.
    try {
      const m = await text(new URL("manifest.json", abs(url)).href);
      manifest = JSON.parse(m.text);
      if (!m.cached) await keep(new URL("manifest.json", abs(url)).href, m.bytes);
    } catch { manifest = {}; }
    if (!idx.cached) await keep(url, idx.bytes);
  } else {
    names = [url.split("/").pop()];
    base = url;
  }
  const urls = names.map((n) => (index ? new URL(n, abs(url)).href : abs(base)));
  const pending = await Promise.all(urls.map(get));
  const total = names.reduce((s, n, i) =>
    s + (pending[i].cached ? 0 : Number(pending[i].response.headers.get("content-length")) || manifest[n]?.size || 0), 0);
  let done = 0;
  const files = [];
  let downloaded = 0;
  for (let i = 0; i < names.length; i++) {
    const p = pending[i];
    let bytes = p.bytes;
    if (!p.cached) {
      bytes = await readAll(p.response, (n) => { done += n; progress(done, total, "Downloading the weights"); });
      downloaded += bytes.length;
      const want = manifest[names[i]];
      if (want && (bytes.length !== want.size || (await sha256(bytes)) !== want.sha256)) {
        throw new Error(`${names[i]} is corrupt (size or SHA-256 differs from the manifest); reload to fetch it again`);
      }
      await keep(urls[i], bytes);
    }
    files.push([names[i], bytes]);
  }
  $("progress").hidden = true;
  return { files, index, downloaded };
}

// Which device to run on: WebGPU unless there is none, or only a software adapter
// (SwiftShader), where the CPU path compiled to wasm is faster; `device=` overrides.
async function pickDevice() {
  const asked = params.get("device") ?? "auto";
  if (!["auto", "webgpu", "cpu"].includes(asked)) throw new Error(`unknown device "${asked}": use auto, webgpu or cpu`);
  const cpu = (why) => ({ device: "cpu", why: `${why}; ${cpuThreads().why}` });
  if (asked === "cpu") return cpu("device=cpu");
  if (!navigator.gpu) {
    if (asked === "webgpu") throw new Error("This browser has no WebGPU (navigator.gpu is missing).");
    return cpu("this browser has no WebGPU");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    if (asked === "webgpu") throw new Error("WebGPU found no adapter.");
    return cpu("WebGPU found no adapter");
  }
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "unnamed adapter";
  const software = info.isFallbackAdapter || adapter.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(name);
  if (software && asked !== "webgpu") {
    return cpu(`the only WebGPU adapter is a software one (${name}); the CPU path is faster (device=webgpu forces it)`);
  }
  return { device: "webgpu", why: `WebGPU: ${name}${software ? " (software)" : ""}` };
}

// How many threads the CPU path uses: where the page is cross-origin isolated (which
// SharedArrayBuffer needs) one Web Worker per core, at most 4; else 1, on the page's own
// thread. `threads=` overrides (within what isolation allows).
function cpuThreads() {
  const asked = params.get("threads");
  if (!crossOriginIsolated) return { threads: 1, why: "1 thread: the page is not cross-origin isolated" };
  if (asked === null) return { threads: Math.min(navigator.hardwareConcurrency || 1, 4), why: "one per core" };
  const n = Number(asked);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`threads=${asked}: use a whole number from 1 to 64`);
  return { threads: n, why: `threads=${n}` };
}

// The CPU path's workers where it runs on several threads (else null), started at once so
// that they get ready while the weights download.
function startWorkers(device) {
  const { threads } = device.device === "cpu" ? cpuThreads() : { threads: 1 };
  return threads > 1 ? WorkerPool.start({ pkg, module, world: threads, adapter: wasm.cpuDescription(threads) }) : null;
}

async function loadModel(source, device) {
  const pool = startWorkers(device);
  const t0 = performance.now();
  let got;
  try {
    got = await source();
  } catch (e) {
    pool?.free();
    throw e;
  }
  const { files, index, downloaded } = got;
  phases.weightsMs = performance.now() - t0;
  phases.downloadedBytes = downloaded;
  $("status").textContent = "Preparing the model…";
  const t1 = performance.now();
  const model = pool ? await pool.load(files, index) : await wasm.WebDit.load(files, index, device.device);
  phases.modelMs = performance.now() - t1;
  return model;
}

async function generate() {
  const seed = Number($("seed").value);
  const steps = Number($("steps").value);
  const sampler = $("sampler").value;
  const live = $("live").checked;
  const size = dit.size;
  $("generate").disabled = true;
  document.body.dataset.state = "running";
  const start = performance.now();
  let firstStep;
  const onStep = (step, total, rgba) => {
    firstStep ??= performance.now();
    if (live) draw(rgba, size, step === total);
    $("status").textContent = `step ${step} of ${total}`;
  };
  try {
    // Without `live` the GPU runs all steps without readback (no per-step callback).
    const rgba = await dit.generate(seed, steps, sampler, live || dit.device === "cpu" ? onStep : undefined);
    const ms = performance.now() - start;
    draw(rgba, size);
    const sinceLoad = performance.now() - pageStart;
    const result = {
      seed, steps, sampler, live, size,
      totalMs: ms, perStepMs: ms / steps, setupMs: dit.setupMs, sinceLoadMs: sinceLoad,
      waitedMs: dit.waitedMs, // the CPU path's workers: time each spent waiting for the others
      device: dit.device, adapter: dit.adapter, precision: dit.precision, why: window.webditDevice?.why,
      phases: { ...phases },
      // A cheap fingerprint of the image, so tests can compare runs.
      checksum: rgba.reduce((a, v, i) => (a + v * (i % 251 + 1)) % 1000000007, 0),
    };
    phases.firstIconMs ??= sinceLoad;
    $("status").textContent = `Done: seed ${seed}, ${steps} ${sampler} steps.`;
    $("timing").textContent =
      `${ms.toFixed(1)} ms for this icon, ${(ms / steps).toFixed(2)} ms per step` +
      `${dit.device === "webgpu" ? (live ? " (each step read back to draw it)" : " (no readback between steps)") : ""}` +
      (dit.setupMs > 0 ? `, of which ${dit.setupMs.toFixed(0)} ms building pipelines and buffers` : "") +
      `\nPage load to this icon: ${sinceLoad.toFixed(0)} ms (wasm ${phases.wasmMs.toFixed(0)} ms, ` +
      `weights ${phases.weightsMs.toFixed(0)} ms${phases.downloadedBytes ? "" : " from the cache"}, ` +
      `model ${phases.modelMs.toFixed(0)} ms)` +
      `\nRunning on ${dit.device === "cpu" ? `the ${dit.adapter}: ${window.webditDevice?.why}` : `${window.webditDevice?.why}, ${dit.precision} kernels`}`;
    window.webdit = result;
    document.body.dataset.state = "done";
    if (embed) window.parent.postMessage({ type: "webdit", ...result }, "*");
  } catch (e) {
    fail(`Generation failed: ${e.message ?? e}`);
  } finally {
    $("generate").disabled = false;
  }
}

function ready(origin) {
  $("steps").value = params.get("steps") ?? dit.trainedSteps;
  $("status").textContent = `Ready: ${origin}, on ${dit.adapter} (${dit.precision}).`;
  document.body.dataset.state = "ready";
  $("generate").disabled = false;
}

// A checkpoint the user dropped or chose: one .safetensors, or shards with their index.
async function loadDropped(fileList) {
  const list = [...fileList];
  if (!list.length) return;
  $("generate").disabled = true;
  document.body.dataset.state = "loading";
  try {
    const idx = list.find((f) => f.name.endsWith(".json"));
    const source = async () => ({
      files: await Promise.all(list.filter((f) => f !== idx).map(async (f) => [f.name, new Uint8Array(await f.arrayBuffer())])),
      index: idx ? await idx.text() : null,
      downloaded: 0,
    });
    const device = window.webditDevice ?? (await pickDevice());
    const model = await loadModel(source, device);
    dit?.free();
    dit = model;
    ready(list.map((f) => f.name).join(", "));
  } catch (e) {
    fail(`Could not load ${list.map((f) => f.name).join(", ")}: ${e.message ?? e}`);
  }
}

async function main() {
  $("seed").value = params.get("seed") ?? Math.floor(Math.random() * 1e9);
  const sampler = params.get("sampler") ?? "ddpm";
  if (![...$("sampler").options].some((o) => o.value === sampler)) {
    fail(`Unknown sampler "${sampler}": use ddpm or ddim.`);
    return;
  }
  $("sampler").value = sampler;
  $("live").checked = params.get("live") !== "0";
  $("generate").onclick = () => generate();
  $("file").onchange = (e) => loadDropped(e.target.files);
  addEventListener("dragover", (e) => e.preventDefault());
  addEventListener("drop", (e) => { e.preventDefault(); loadDropped(e.dataTransfer.files); });

  const t0 = performance.now();
  wasm = await import(pkg);
  // Compiled while it streams in, once: the CPU path's workers instantiate the same module.
  module = await WebAssembly.compileStreaming(fetch(new URL(pkg.replace(/\.js$/, "_bg.wasm"), location.href)));
  await wasm.default({ module_or_path: module });
  phases.wasmMs = performance.now() - t0;
  let device;
  try {
    device = await pickDevice();
  } catch (e) {
    fail(e.message ?? String(e));
    return;
  }
  window.webditDevice = device;
  const url = params.get("weights") ?? DEFAULT_WEIGHTS;
  try {
    dit = await loadModel(() => fetchCheckpoint(url), device);
  } catch (e) {
    fail(`Could not load the model from ${url}: ${e.message ?? e}`);
    return;
  }
  ready(url === DEFAULT_WEIGHTS ? "favicon-s (emoji)" : url);
  if (embed || params.has("auto")) await generate();
}

main().catch((e) => fail(`Web DiT failed: ${e.message ?? e}`));
