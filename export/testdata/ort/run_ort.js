// run_ort.js runs an ONNX model with ONNX Runtime (onnxruntime-node) and
// writes its first output, for the export package's tests.
//
// Usage: node run_ort.js MODEL.onnx OUTPUT.bin LEVEL INPUT.bin:DIMS:TYPE...
//   OUTPUT.bin  written: the raw little-endian values of the first output
//   LEVEL       graph optimization level: disabled, basic, extended or all
//               (all is what a user of the exported model gets by default)
//   INPUT.bin:DIMS:TYPE, one per model input in order: raw little-endian
//               values, the shape comma separated (e.g. 256,1,28,28), and
//               float32 or float64
// On success it prints {"output": NAME, "type": TYPE, "dims": [...]} on
// stdout; on failure it prints the error on stderr and exits with status 1.
//
// Install the runtime next to this script (node_modules is not committed),
// from the repository root:
//   npm install --prefix export/testdata/ort --ignore-scripts --no-save \
//       --no-package-lock onnxruntime-node@1.30.0
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const arrays = {float32: Float32Array, float64: Float64Array};

function readInput(arg) {
  const [path, dimsArg, type] = arg.split(':');
  const Arr = arrays[type];
  if (!Arr || dimsArg === undefined) {
    throw new Error(`input ${arg}: want PATH:DIMS:TYPE with TYPE float32 or float64`);
  }
  const dims = dimsArg === '' ? [] : dimsArg.split(',').map(Number);
  const buf = fs.readFileSync(path);
  const data = new Arr(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const want = dims.reduce((a, b) => a * b, 1);
  if (data.length !== want) {
    throw new Error(`${path}: ${data.length} values for shape [${dims}] (${want})`);
  }
  return new ort.Tensor(type, data, dims);
}

async function main() {
  const [model, output, level, ...inputs] = process.argv.slice(2);
  if (inputs.length === 0) {
    throw new Error('usage: node run_ort.js MODEL.onnx OUTPUT.bin LEVEL INPUT.bin:DIMS:TYPE...');
  }
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: level,
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  if (inputs.length !== session.inputNames.length) {
    throw new Error(`${inputs.length} inputs given; the model has ${session.inputNames.length}`);
  }
  const feeds = {};
  session.inputNames.forEach((name, i) => { feeds[name] = readInput(inputs[i]); });
  const results = await session.run(feeds);
  const name = session.outputNames[0];
  const out = results[name];
  if (!arrays[out.type]) {
    throw new Error(`output ${name} is ${out.type}; want float32 or float64`);
  }
  fs.writeFileSync(output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  process.stdout.write(JSON.stringify({output: name, type: out.type, dims: out.dims}) + '\n');
}

main().catch((err) => {
  process.stderr.write(`run_ort: ${err.message || err}\n`);
  process.exit(1);
});
