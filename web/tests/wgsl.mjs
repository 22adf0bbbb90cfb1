// Compiles WGSL in Chromium's own WebGPU implementation (Dawn, with Tint's WGSL compiler,
// then a compute pipeline), with WebGPU's default limits: what passes here compiles in every
// WebGPU browser that implements the spec's checks (uniformity, limits, types).
// Chromium here runs WebGPU on SwiftShader, which lacks `shader-f16`; the f16 variants are
// compiled by the same Dawn and Tint outside the browser instead (the `webgpu` npm package,
// Dawn's node bindings, on Dawn's null backend: shader module, compilation info and compute
// pipeline go through Dawn's front end and Tint as in Chromium, without a driver).
// Usage: node wgsl.mjs DIR
//   DIR/manifest.json: [{ "name", "entry", "f16", "portable", "map" }]; DIR/<name>.wgsl the
//   source (native-only variants are skipped);
//   "map" (optional) lists [wgslLine, "file:line:col"] pairs, to name the kernel's Rust
//   line of an error.
import { chromium } from "playwright-core";
import { create as dawnNode, globals as dawnGlobals } from "webgpu";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

const dir = process.argv[2];
const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
const shaders = [];
for (const m of manifest) shaders.push({ ...m, code: await readFile(join(dir, `${m.name}.wgsl`), "utf8") });

// Compiles `shaders` on a device of `gpu` (a `navigator.gpu`) with WebGPU's default limits:
// per shader, its errors (none: it compiles), or why it was skipped. Runs in the page and in
// node, so it refers to nothing outside itself.
async function compileAll(gpu, shaders) {
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { error: "no WebGPU adapter" };
  const f16 = adapter.features.has("shader-f16");
  const device = await adapter.requestDevice({ requiredFeatures: f16 ? ["shader-f16"] : [] });
  const out = [];
  for (const s of shaders) {
    if (s.portable === false) { out.push({ name: s.name, skipped: "native-only" }); continue; }
    if (s.f16 && !f16) { out.push({ name: s.name, skipped: "adapter lacks shader-f16" }); continue; }
    const errors = [];
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: s.code, label: s.name });
    const info = await module.getCompilationInfo();
    for (const m of info.messages) {
      if (m.type === "error") errors.push({ line: m.lineNum, col: m.linePos, message: m.message });
    }
    try {
      await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: s.entry } });
    } catch (e) {
      errors.push({ message: `pipeline: ${e.message}` });
    }
    const scope = await device.popErrorScope();
    if (scope) errors.push({ message: scope.message });
    out.push({ name: s.name, errors });
  }
  const info = adapter.info ?? {};
  const name = `${info.vendor ?? ""} ${info.architecture ?? ""} ${info.description ?? ""}`.trim();
  return { adapter: name, f16, out };
}

let failed = 0;
// Prints one compiler's results; returns the names it skipped for lack of shader-f16.
function report(compiler, results) {
  if (results.error) {
    console.log(`FAIL ${compiler}: ${results.error}`);
    failed++;
    return [];
  }
  console.log(`${compiler}: adapter ${results.adapter || "unnamed"}, shader-f16: ${results.f16}`);
  let ok = 0, bad = 0;
  const lackF16 = [];
  for (const r of results.out) {
    if (r.skipped) {
      if (r.skipped === "adapter lacks shader-f16") lackF16.push(r.name);
      continue;
    }
    if (r.errors.length === 0) { ok++; continue; }
    bad++;
    const map = shaders.find((s) => s.name === r.name).map ?? [];
    for (const e of r.errors) {
      // The kernel statement that wrote this WGSL line: the last mapped line at or before it.
      const rust = e.line ? map.filter(([l]) => l <= e.line).at(-1)?.[1] : undefined;
      console.log(`FAIL ${r.name}${e.line ? `:${e.line}:${e.col}` : ""}${rust ? ` (kernel ${rust})` : ""}: ${e.message}`);
    }
  }
  failed += bad;
  const skipped = results.out.length - ok - bad;
  console.log(`${ok} of ${results.out.length} variants compile in ${compiler}, ${skipped} skipped (native-only or no shader-f16), ${bad} failed`);
  return lackF16;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--no-first-run", "--disable-background-networking"],
});
let lackF16 = [];
try {
  const page = await browser.newPage();
  // WebGPU needs a secure context: an empty page from localhost.
  const server = createServer((_, res) => { res.writeHead(200, { "content-type": "text/html" }); res.end("<!doctype html>"); });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  server.close();
  const results = await page.evaluate(async ([compile, shaders]) => {
    if (!navigator.gpu) return { error: "navigator.gpu is missing" };
    return (0, eval)(`(${compile})`)(navigator.gpu, shaders);
  }, [compileAll.toString(), shaders.map(({ name, entry, f16, portable, code }) => ({ name, entry, f16, portable, code }))]);
  lackF16 = report("Chromium", results);
} finally {
  await browser.close();
}

// What Chromium's adapter could not take: the f16 variants, through Dawn and Tint in node.
if (lackF16.length > 0) {
  Object.assign(globalThis, dawnGlobals);
  const rest = shaders.filter((s) => lackF16.includes(s.name));
  const results = await compileAll(dawnNode(["backend=null"]), rest);
  const lacking = report("Dawn's null backend (node)", results);
  if (lacking.length > 0) {
    console.log(`FAIL Dawn's null backend lacks shader-f16 for ${lacking.length} variants`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
