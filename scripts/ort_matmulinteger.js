#!/usr/bin/env node
// Times ONNX Runtime's MatMulInteger (uint8 A x int8 B -> int32) on one
// intra-op thread, for comparison with mpsearch's kernels (issue 4).
//
// Usage:
//   node scripts/ort_matmulinteger.js MODEL:M:K:N [MODEL:M:K:N ...] [--repeats R] [--min-ms T]
//
// Each MODEL is an ONNX file with one MatMulInteger node: input "A" uint8
// [M,K], initializers B (int8 [K,N]) and a_zero_point (uint8 scalar),
// output "Y" int32 [M,N]. The Go benchmark BenchmarkVsORT in
// costmodel/ort_bench_test.go writes such models and runs this script.
//
// onnxruntime-node is loaded from NODE_PATH or the usual module search:
//   mkdir -p /tmp/ortnode && cd /tmp/ortnode && npm install --ignore-scripts onnxruntime-node@1.30.0
//   NODE_PATH=/tmp/ortnode/node_modules node scripts/ort_matmulinteger.js ...
//
// Output: one JSON object on stdout,
//   {"ort_version": "1.30.0", "results": [{"m":256,"k":256,"n":256,
//     "ms_wall": 0.21, "ms_cpu": 0.2, "gops_wall": 160.1, "gops_cpu": 165.3}]}
// with GOPS counting 2 operations per multiply-accumulate. ms_cpu is the
// process CPU time (user + system) per run: with one intra-op thread it is
// the compute of that thread plus Node's own small overhead, and it is not
// inflated by other processes holding the core, unlike ms_wall.
'use strict';

const ort = require('onnxruntime-node');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

async function timeModel(spec, repeats, minMs) {
  const [path, ms, ks, ns] = spec.split(':');
  const m = Number(ms), k = Number(ks), n = Number(ns);
  if (!path || !(m > 0 && k > 0 && n > 0)) {
    throw new Error(`bad model spec ${JSON.stringify(spec)}; want PATH:M:K:N`);
  }
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  // A fixed pseudo-random activation matrix (LCG), so runs are repeatable.
  const data = new Uint8Array(m * k);
  let x = 12345;
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  const feeds = { A: new ort.Tensor('uint8', data, [m, k]) };
  const run = () => session.run(feeds);
  // Warm up for at least minMs.
  const w0 = process.hrtime.bigint();
  let calls = 0;
  while (calls < 3 || Number(process.hrtime.bigint() - w0) / 1e6 < minMs) {
    await run();
    calls++;
  }
  const perCallMs = Number(process.hrtime.bigint() - w0) / 1e6 / calls;
  const inner = Math.max(1, Math.ceil(minMs / perCallMs));
  const wall = [], cpu = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < inner; i++) await run();
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    wall.push(Number(t1 - t0) / 1e6 / inner);
    cpu.push((c1.user + c1.system) / 1e3 / inner);
  }
  await session.release();
  const ops = 2 * m * k * n;
  const mw = median(wall), mc = median(cpu);
  return { m, k, n, ms_wall: mw, ms_cpu: mc, gops_wall: ops / mw / 1e6, gops_cpu: ops / mc / 1e6 };
}

async function main() {
  const args = process.argv.slice(2);
  let repeats = 9, minMs = 50;
  const specs = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--repeats') repeats = Number(args[++i]);
    else if (args[i] === '--min-ms') minMs = Number(args[++i]);
    else specs.push(args[i]);
  }
  if (specs.length === 0 || !(repeats >= 1) || !(minMs > 0)) {
    throw new Error('usage: ort_matmulinteger.js MODEL:M:K:N ... [--repeats R] [--min-ms T]');
  }
  const results = [];
  for (const s of specs) results.push(await timeModel(s, repeats, minMs));
  let version = 'unknown';
  try {
    version = require('onnxruntime-node/package.json').version;
  } catch (e) { /* keep unknown */ }
  process.stdout.write(JSON.stringify({ ort_version: version, results }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_matmulinteger: ${e.message}\n`);
  process.exit(1);
});
