// Compiles WGSL in Chromium's own WebGPU implementation (Tint's WGSL compiler, then a
// compute pipeline), with WebGPU's default limits: what passes here compiles in every
// WebGPU browser that implements the spec's checks (uniformity, limits, types).
// Usage: node wgsl.mjs DIR
//   DIR/manifest.json: [{ "name", "entry", "f16", "portable", "map" }]; DIR/<name>.wgsl the
//   source (native-only variants are skipped);
//   "map" (optional) lists [wgslLine, "file:line:col"] pairs, to name the kernel's Rust
//   line of an error.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

const dir = process.argv[2];
const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
const shaders = [];
for (const m of manifest) shaders.push({ ...m, code: await readFile(join(dir, `${m.name}.wgsl`), "utf8") });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--no-first-run", "--disable-background-networking"],
});
let failed = 0;
try {
  const page = await browser.newPage();
  // WebGPU needs a secure context: an empty page from localhost.
  const server = createServer((_, res) => { res.writeHead(200, { "content-type": "text/html" }); res.end("<!doctype html>"); });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  server.close();
  const results = await page.evaluate(async (shaders) => {
    if (!navigator.gpu) return { error: "navigator.gpu is missing" };
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { error: "no WebGPU adapter" };
    const f16 = adapter.features.has("shader-f16");
    // Default limits on purpose: what every WebGPU adapter grants.
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
    return { adapter: `${info.vendor ?? ""} ${info.architecture ?? ""} ${info.description ?? ""}`.trim(), f16, out };
  }, shaders.map(({ name, entry, f16, portable, code }) => ({ name, entry, f16, portable, code })));
  if (results.error) {
    console.log(`FAIL ${results.error}`);
    failed++;
  } else {
    console.log(`adapter: ${results.adapter || "unnamed"}, shader-f16: ${results.f16}`);
    let ok = 0, skipped = 0;
    for (const r of results.out) {
      if (r.skipped) { skipped++; console.log(`skip ${r.name}: ${r.skipped}`); continue; }
      if (r.errors.length === 0) { ok++; continue; }
      failed++;
      const map = shaders.find((s) => s.name === r.name).map ?? [];
      for (const e of r.errors) {
        // The kernel statement that wrote this WGSL line: the last mapped line at or before it.
        const rust = e.line ? map.filter(([l]) => l <= e.line).at(-1)?.[1] : undefined;
        console.log(`FAIL ${r.name}${e.line ? `:${e.line}:${e.col}` : ""}${rust ? ` (kernel ${rust})` : ""}: ${e.message}`);
      }
    }
    console.log(`${ok} of ${results.out.length} variants compile in Chromium, ${skipped} skipped, ${failed} failed`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
