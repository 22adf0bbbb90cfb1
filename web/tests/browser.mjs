// End-to-end check of the built bundle (web/dist) in a real Chromium, WebGPU through
// SwiftShader where there is no GPU: the page loads the wasm module and the shipped model,
// generates an icon while drawing every step, mirrors it into the favicon, and reproduces
// the same image from the same seed. Usage: node browser.mjs [path/to/dist]
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const dist = process.argv[2] ?? new URL("../dist", import.meta.url).pathname;
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
// A host page that embeds the bundle in an iframe and keeps what the frame posts.
const host = `<!doctype html><iframe width="128" height="128"
  src="/?embed&seed=8&steps=4&sampler=ddim&live=0"></iframe>
<script>addEventListener("message", (e) => { window.posted = e.data; });</script>`;
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (path === "/host.html") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(host);
    return;
  }
  try {
    const body = await readFile(join(dist, path.endsWith("/") ? path + "index.html" : path));
    res.writeHead(200, { "content-type": types[extname(path)] ?? "text/html" });
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
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push(`page error: ${e.message}`));
  const run = async (query) => {
    await page.goto(base + query);
    await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state), null, {
      timeout: 240_000,
    });
    return page.evaluate(() => ({
      ...window.webdit,
      favicon: document.getElementById("favicon").href,
      status: document.getElementById("status").textContent,
      pixels: (() => {
        const c = document.getElementById("image");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let sum = 0, sq = 0, n = d.length / 4;
        for (let i = 0; i < d.length; i += 4) {
          const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
          sum += v; sq += v * v;
        }
        return { width: c.width, std: Math.sqrt(sq / n - (sum / n) ** 2) };
      })(),
    }));
  };
  const a = await run("?auto&seed=7&steps=4&sampler=ddim&live=1");
  console.log(JSON.stringify({ ...a, favicon: a.favicon.slice(0, 40) }));
  check(!a.error, `generates without error (${a.error ?? a.status})`);
  check(a.size === 64 && a.pixels.width === 64, "draws a 64x64 image");
  check(a.pixels.std > 10, `the image is not flat (pixel std ${a.pixels.std?.toFixed(1)})`);
  check(a.favicon.startsWith("data:image/png"), "the favicon shows the image");
  check(a.totalMs > 0 && a.perStepMs > 0, `reports timing (${a.totalMs?.toFixed(0)} ms)`);
  const b = await run("?auto&seed=7&steps=4&sampler=ddim&live=0");
  check(b.checksum === a.checksum, "the same seed gives the same image, live or not");
  // Embedded in another page: the frame generates on load and posts its result.
  await page.goto(base + "host.html");
  await page.waitForFunction(() => window.posted, null, { timeout: 240_000 });
  const c = await page.evaluate(() => window.posted);
  check(c.type === "webdit" && c.steps === 4, `an embedding page gets the result (${c.type})`);
  check(c.checksum !== a.checksum, "another seed gives another image");
  const e = await run("?auto&seed=7&steps=0");
  check(Boolean(e.error) && /step/.test(e.error), `bad input gets a clear error (${e.error})`);
  if (failed) console.log(logs.join("\n"));
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
