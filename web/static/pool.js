// The CPU path on several threads: `world` Web Workers (worker.js), each running its part
// of the model in its own instance of the wasm module, their partial results meeting in a
// SharedArrayBuffer, which needs a cross-origin isolated page (README "Deploying"). It
// looks to the page like the wasm module's `WebDit`.
export class WorkerPool {
  // Starts `world` workers, each instantiating `module` (the compiled wasm module of the
  // glue at `pkg`), while the page goes on (e.g. downloads the weights).
  static start({ pkg, module, world, adapter }) {
    const url = new URL("worker.js", import.meta.url);
    const pool = new WorkerPool([...Array(world)].map(() => new Worker(url, { type: "module" })), adapter);
    pool.started = pool.all(() => ({ type: "init", pkg: new URL(pkg, location.href).href, module }), "inited");
    pool.started.catch(() => {}); // reported by `load`
    return pool;
  }

  constructor(workers, adapter) {
    this.workers = workers;
    this.adapter = adapter;
    this.device = "cpu";
    this.precision = "f32";
    this.setupMs = 0;
  }

  // Loads the checkpoint's `files` (`[[name, Uint8Array], ...]`, with the shard `index` or
  // null) into every worker, each keeping its part. On failure the workers stop.
  async load(files, index) {
    try {
      await this.started;
      const world = this.workers.length;
      const loaded = await this.all((rank) => ({ type: "load", files, index, rank, world }), "loaded");
      const len = loaded[0].exchangeLen;
      this.sab = new SharedArrayBuffer(16 + 2 * world * len * 4);
      await this.all(() => ({ type: "bind", sab: this.sab, len }), "bound");
      Object.assign(this, { size: loaded[0].size, trainedSteps: loaded[0].trainedSteps });
    } catch (e) {
      this.free();
      throw e;
    }
    return this;
  }

  // Sends `message(rank)` to every worker and resolves with their `want` replies (passing
  // `step` replies to `onStep`); rejects with the first worker's error.
  all(message, want, onStep) {
    return Promise.all(this.workers.map((w, rank) => new Promise((ok, fail) => {
      w.onmessage = ({ data: m }) => {
        if (m.type === want) ok(m);
        else if (m.type === "step") onStep?.(m.step, m.total, m.rgba);
        else if (m.type === "error") fail(new Error(m.message));
      };
      w.onerror = (e) => fail(new Error(`a worker of the CPU path failed: ${e.message ?? e}`));
      w.postMessage(message(rank));
    })));
  }

  // As `WebDit.generate`: every worker runs the same steps; the first one reports them.
  async generate(seed, steps, sampler, onStep) {
    new Int32Array(this.sab, 0, 4).fill(0);
    const done = await this.all((rank) => ({ type: "generate", seed, steps, sampler, report: rank === 0 }), "done", onStep);
    // Milliseconds each worker spent waiting for the others.
    this.waitedMs = done.map((d) => d.waitedMs);
    return done[0].rgba;
  }

  free() {
    for (const w of this.workers) w.terminate();
  }
}
