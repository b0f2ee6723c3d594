// ort_latency.js times ONNX Runtime (onnxruntime-node) on one model, one
// intra-op thread, for the integer engine's same-run comparison
// (intengine/vsort_test.go). It serves timing requests so that the Go side
// can interleave them with its own measurements in one run.
//
// Usage: node ort_latency.js MODEL.onnx C H W
// Then, one request per line on stdin: {"batch": N, "ms": T} runs the
// model on a fixed pseudo-random float32 batch [N, C, H, W] for at least T
// milliseconds (after 3 warm-up runs at that batch) and prints one line
// {"runs": R, "min_ms": ..., "median_ms": ..., "cpu_ms": ...}: the minimum
// and median wall time of a session.run call (process.hrtime) and the
// process's CPU time (user + system, process.cpuUsage) per call, which
// other processes holding the core do not inflate. An empty line or end of
// input exits.
// The graph optimization level is "all", ONNX Runtime's default.
'use strict';
const readline = require('readline');
const ort = require('onnxruntime-node');

async function main() {
  const [model, c, h, w] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inName = session.inputNames[0];
  const per = Number(c) * Number(h) * Number(w);
  const feedsFor = new Map();
  const feeds = (n) => {
    if (!feedsFor.has(n)) {
      const data = new Float32Array(n * per);
      let x = 12345;
      for (let i = 0; i < data.length; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        data[i] = (x >>> 8) / (1 << 24) * 2 - 1;
      }
      feedsFor.set(n, {[inName]: new ort.Tensor('float32', data, [n, Number(c), Number(h), Number(w)])});
    }
    return feedsFor.get(n);
  };
  process.stdout.write(JSON.stringify({ready: true}) + '\n');
  const rl = readline.createInterface({input: process.stdin});
  for await (const line of rl) {
    if (line.trim() === '') break;
    const req = JSON.parse(line);
    const f = feeds(req.batch);
    for (let i = 0; i < 3; i++) await session.run(f);
    const times = [];
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    while (times.length < 3 || Number(process.hrtime.bigint() - t0) / 1e6 < req.ms) {
      const a = process.hrtime.bigint();
      await session.run(f);
      times.push(Number(process.hrtime.bigint() - a) / 1e6);
    }
    const cpu = process.cpuUsage(c0);
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
    process.stdout.write(JSON.stringify({runs: times.length, min_ms: times[0], median_ms: median,
      cpu_ms: (cpu.user + cpu.system) / 1000 / times.length}) + '\n');
  }
  rl.close();
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
