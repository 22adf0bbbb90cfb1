// End-to-end check of the built bundle (web/dist) in a real Chromium: the page streams the
// wasm module, downloads the shipped weights once (a second visit takes them from the Cache
// API), runs on the CPU path where WebGPU is only a software adapter (SwiftShader here) and
// on WebGPU when forced, draws every step, mirrors the image into the favicon, reuses its
// model for a second click, and reports its phases.
// Usage: node browser.mjs DIST EXPECTED
//   EXPECTED: the RGBA bytes the native CPU path writes for seed 7, 4 DDIM steps.
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const dist = process.argv[2] ?? new URL("../dist", import.meta.url).pathname;
const expected = process.argv[3] ? new Uint8Array(await readFile(process.argv[3])) : null;
const types = {
  ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm",
  ".json": "application/json", ".safetensors": "application/octet-stream",
};
// A host page that embeds the bundle in an iframe and keeps what the frame posts.
const host = `<!doctype html><iframe width="128" height="128"
  src="/?embed&seed=8&steps=4&sampler=ddim&live=0"></iframe>
<script>addEventListener("message", (e) => { window.posted = e.data; });</script>`;
const junk = Buffer.from("\x10\x00\x00\x00\x00\x00\x00\x00{not json at all");
const requests = [];
// Cross-origin isolation (what README "Deploying" asks of a host), so the page may share
// memory between the CPU path's workers.
const isolated = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  requests.push(path);
  if (path === "/host.html") {
    res.writeHead(200, { "content-type": "text/html", ...isolated });
    res.end(host);
    return;
  }
  if (path === "/junk.safetensors") {
    res.writeHead(200, { "content-type": types[".safetensors"], ...isolated });
    res.end(junk);
    return;
  }
  try {
    const body = await readFile(join(dist, path.endsWith("/") ? path + "index.html" : path));
    res.writeHead(200, { "content-type": types[extname(path)] ?? "text/html", ...isolated });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const base = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: [
    "--no-sandbox", "--enable-unsafe-webgpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic",
  ],
});
let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  failed ||= !ok;
};
const settled = () => ["done", "error"].includes(document.body.dataset.state);
// Clicks Generate on `p` and waits for that generation (not the previous one) to settle.
const clickAgain = async (p, timeout = 300_000) => {
  await p.evaluate(() => { document.body.dataset.state = "clicked"; document.getElementById("generate").click(); });
  await p.waitForFunction(settled, null, { timeout });
};
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push(`page error: ${e.message}`));
  const result = () => page.evaluate(() => ({
    ...window.webdit,
    favicon: document.getElementById("favicon").href,
    status: document.getElementById("status").textContent,
    timing: document.getElementById("timing").textContent,
    rgba: (() => {
      const c = document.getElementById("image");
      return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    })(),
  }));
  const run = async (query) => {
    await page.goto(base + query);
    await page.waitForFunction(settled, null, { timeout: 300_000 });
    return result();
  };
  // A second generation on the same page: click and wait.
  const again = async () => {
    await clickAgain(page);
    return result();
  };
  const std = (rgba) => {
    let sum = 0, sq = 0;
    const n = rgba.length / 4;
    for (let i = 0; i < rgba.length; i += 4) {
      const v = (rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3;
      sum += v; sq += v * v;
    }
    return Math.sqrt(sq / n - (sum / n) ** 2);
  };
  const maxDiff = (a, b) => (a.length === b.length ? a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) : Infinity);
  const weightRequests = () => requests.filter((p) => p.startsWith("/weights/")).length;
  const show = (name, r) => console.log(`${name}: ${JSON.stringify({ ...r, rgba: undefined, favicon: r.favicon?.slice(0, 30) })}`);

  // 1. The default path: SwiftShader is a software adapter, so the CPU path runs.
  const a = await run("?auto&seed=7&steps=4&sampler=ddim&live=1");
  show("first visit, auto", a);
  check(!a.error, `generates without error (${a.error ?? a.status})`);
  check(a.device === "cpu" && /software/.test(a.why ?? ""), `picks the CPU path on a software adapter (${a.device}: ${a.why})`);
  check(/CPU/.test(a.timing), "the page says what it runs on");
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = Math.min(cores, 4);
  check(a.adapter.includes(`${threads} thread`), `runs on one worker per core where isolated (${cores} cores: ${a.adapter})`);
  check(a.size === 64 && a.rgba.length === 64 * 64 * 4, "draws a 64x64 image");
  check(std(a.rgba) > 10, `the image is not flat (pixel std ${std(a.rgba).toFixed(1)})`);
  check(a.favicon.startsWith("data:image/png"), "the favicon shows the image");
  check(a.totalMs > 0 && a.perStepMs > 0, `reports timing (${a.totalMs?.toFixed(0)} ms)`);
  check(["wasmMs", "weightsMs", "modelMs"].every((k) => a.phases?.[k] >= 0), "reports its phases");
  check(a.phases.downloadedBytes > 1e6, `downloads the weights on a first visit (${a.phases.downloadedBytes} bytes)`);
  if (expected) {
    const d = maxDiff(a.rgba, Array.from(expected));
    check(d <= 1, `the same image as the native CPU path, within 1 level (max diff ${d})`);
  }
  const a2 = await again();
  show("second click", a2);
  check(a2.checksum === a.checksum, "a second click gives the same image");
  // The single-threaded CPU path (as on a page that is not cross-origin isolated).
  const one = await run("?auto&seed=7&steps=4&sampler=ddim&live=1&threads=1");
  show("one thread", one);
  check(!one.error && one.adapter?.includes("1 thread"), `threads=1 runs on the page's thread (${one.error ?? one.adapter})`);
  if (expected) {
    const d = maxDiff(one.rgba, Array.from(expected));
    check(d <= 1, `one thread: the same image as the native CPU path, within 1 level (max diff ${d})`);
  }

  // 2. A second visit downloads no weights: they come from the Cache API.
  const before = weightRequests();
  const b = await run("?auto&seed=7&steps=4&sampler=ddim&live=0");
  show("second visit", b);
  check(weightRequests() === before && b.phases.downloadedBytes === 0,
    `a second visit downloads no weights (${weightRequests() - before} requests)`);
  check(b.checksum === a.checksum, "the same seed gives the same image, live or not");

  // 3. WebGPU forced (on SwiftShader): the GPU kernels, the same picture.
  const g = await run("?auto&device=webgpu&seed=7&steps=4&sampler=ddim&live=1");
  show("webgpu forced", g);
  check(!g.error && g.device === "webgpu", `device=webgpu runs WebGPU (${g.error ?? g.adapter})`);
  if (!g.error) {
    const d = maxDiff(g.rgba, a.rgba);
    check(d <= 2, `WebGPU and the CPU path agree within 2 levels (max diff ${d})`);
    check(g.setupMs > 0, `the first generation builds its pipelines (${g.setupMs?.toFixed(0)} ms)`);
    const g2 = await again();
    show("webgpu second click", g2);
    check(g2.setupMs === 0 && g2.checksum === g.checksum,
      `a second click reuses the generator (setup ${g2.setupMs} ms) and gives the same image`);
  }

  // 4. Embedded in another page: the frame generates on load and posts its result.
  await page.goto(base + "host.html");
  await page.waitForFunction(() => window.posted, null, { timeout: 300_000 });
  const c = await page.evaluate(() => window.posted);
  check(c.type === "webdit" && c.steps === 4, `an embedding page gets the result (${c.type})`);
  check(c.checksum !== a.checksum, "another seed gives another image");

  // 5. Bad input gets a clear error.
  const e = await run("?auto&seed=7&steps=0");
  check(Boolean(e.error) && /step/.test(e.error), `bad steps: ${e.error}`);
  const w = await run("?weights=junk.safetensors");
  check(Boolean(w.error) && /not a valid safetensors file/.test(w.error), `bad checkpoint URL: ${w.error}`);
  const m = await run("?weights=missing/model.safetensors");
  check(Boolean(m.error) && /404/.test(m.error), `missing checkpoint: ${m.error}`);
  await page.goto(base + "?seed=7");
  await page.waitForFunction(() => document.body.dataset.state === "ready", null, { timeout: 300_000 });
  await page.setInputFiles("#file", { name: "dropped.safetensors", mimeType: "application/octet-stream", buffer: junk });
  await page.waitForFunction(() => document.body.dataset.state === "error", null, { timeout: 60_000 });
  const f = await result();
  check(/dropped\.safetensors/.test(f.status) && /not a valid safetensors file/.test(f.status),
    `a bad dropped file: ${f.status}`);

  // 6. What a visitor waits for: a fresh profile, the default 32-step DDPM icon drawn live,
  // then a second click (reported, not asserted: speed is for benchmarks).
  const fresh = await browser.newContext();
  const visitor = await fresh.newPage();
  const start = Date.now();
  await visitor.goto(base + "?auto&seed=2026");
  await visitor.waitForFunction(settled, null, { timeout: 300_000 });
  const first = await visitor.evaluate(() => window.webdit);
  const navToIcon = Date.now() - start;
  await clickAgain(visitor);
  const second = await visitor.evaluate(() => window.webdit);
  check(!first.error && first.steps === 32 && second.checksum === first.checksum, `the default 32-step icon (${first.error ?? first.device})`);
  console.log(`first icon: ${navToIcon} ms from navigation (page load to icon ${first.sinceLoadMs?.toFixed(0)} ms: ` +
    `wasm ${first.phases?.wasmMs?.toFixed(0)}, weights ${first.phases?.weightsMs?.toFixed(0)}, ` +
    `model ${first.phases?.modelMs?.toFixed(0)}, 32 steps ${first.totalMs?.toFixed(0)} ms); ` +
    `second click ${second.totalMs?.toFixed(0)} ms; on ${first.adapter}`);
  await fresh.close();

  // 7. With WEBDIT_MEASURE set: the default icon on WebGPU (SwiftShader here) from a fresh
  // profile, drawing every step and not, for BENCHMARKS.md (minutes; not part of the test).
  if (process.env.WEBDIT_MEASURE) {
    for (const live of [1, 0]) {
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      const t0 = Date.now();
      await p.goto(base + `?auto&device=webgpu&seed=2026&live=${live}`);
      await p.waitForFunction(settled, null, { timeout: 900_000 });
      const r1 = await p.evaluate(() => window.webdit);
      const nav = Date.now() - t0;
      await clickAgain(p, 900_000);
      const r2 = await p.evaluate(() => window.webdit);
      console.log(`webgpu live=${live}: first icon ${nav} ms from navigation (wasm ${r1.phases?.wasmMs?.toFixed(0)}, ` +
        `weights ${r1.phases?.weightsMs?.toFixed(0)}, model ${r1.phases?.modelMs?.toFixed(0)}, setup ${r1.setupMs?.toFixed(0)}, ` +
        `32 steps ${r1.totalMs?.toFixed(0)} ms); second click ${r2.totalMs?.toFixed(0)} ms; checksum ${r1.checksum} ${r2.checksum}`);
      await ctx.close();
    }
  }
  if (failed) console.log(logs.join("\n"));
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
