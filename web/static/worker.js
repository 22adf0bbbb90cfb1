// One thread of the page's CPU path (see pool.js): its own instance of the wasm module and
// its part of the model (`CpuShard`: a range of the tokens' rows), generating when the page
// asks and meeting the other workers in a SharedArrayBuffer: an Int32 header [arrived,
// generation, aborted, unused], then two alternating regions of `world` parts of at most
// `len` values each.
let wasm, shard, rank, world, ctl, parts, len, calls, waited;
const WAIT_MS = 60_000;

// Waits until every worker has arrived (a generation counter; the last one to arrive
// bumps it and wakes the others). Throws where another worker failed or none comes.
function barrier() {
  const gen = Atomics.load(ctl, 1);
  if (Atomics.add(ctl, 0, 1) === world - 1) {
    Atomics.store(ctl, 0, 0);
    Atomics.add(ctl, 1, 1);
    Atomics.notify(ctl, 1);
    return;
  }
  const start = performance.now();
  while (Atomics.load(ctl, 1) === gen) {
    if (Atomics.load(ctl, 2)) throw new Error("another worker of the CPU path failed");
    if (performance.now() > start + WAIT_MS) throw new Error(`the other workers did not answer in ${WAIT_MS / 1000} s`);
    Atomics.wait(ctl, 1, gen, 100);
  }
  waited += performance.now() - start;
}

// Hands this worker's part over and returns every worker's (a view the model copies at
// once; a region is written again only after the next barrier, which every worker reaches
// after reading it).
function exchange(part) {
  if (part.length > len) throw new Error(`an exchange of ${part.length} values (at most ${len})`);
  const at = (calls++ & 1) * world * len;
  parts.set(part, at + rank * part.length);
  barrier();
  return parts.subarray(at, at + world * part.length);
}

onmessage = async ({ data: m }) => {
  try {
    if (m.type === "init") {
      wasm = await import(m.pkg);
      await wasm.default({ module_or_path: m.module });
      postMessage({ type: "inited" });
    } else if (m.type === "load") {
      ({ rank, world } = m);
      shard?.free();
      shard = wasm.CpuShard.load(m.files, m.index, rank, world);
      postMessage({ type: "loaded", size: shard.size, trainedSteps: shard.trainedSteps, exchangeLen: shard.exchangeLen });
    } else if (m.type === "bind") {
      len = m.len;
      ctl = new Int32Array(m.sab, 0, 4);
      parts = new Float32Array(m.sab, 16, 2 * world * len);
      postMessage({ type: "bound" });
    } else if (m.type === "generate") {
      calls = 0;
      waited = 0;
      const onStep = m.report
        ? (step, total, rgba) => postMessage({ type: "step", step, total, rgba }, [rgba.buffer])
        : undefined;
      const rgba = shard.generate(m.seed, m.steps, m.sampler, exchange, onStep);
      postMessage({ type: "done", rgba, waitedMs: waited }, [rgba.buffer]);
    }
  } catch (e) {
    if (ctl) {
      Atomics.store(ctl, 2, 1);
      Atomics.notify(ctl, 1);
    }
    postMessage({ type: "error", message: e.message ?? String(e) });
  }
};
