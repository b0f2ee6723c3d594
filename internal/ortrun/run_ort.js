// run_ort.js runs an ONNX model in ONNX Runtime (onnxruntime-node) on NPY
// inputs and writes every output as NPY. It is the one ONNX Runtime runner
// of mpsearch's tests (Go side: package mpsearch/internal/ortrun).
//
// Usage: node run_ort.js MODEL.onnx OUTDIR LEVEL INPUT.npy...
//   OUTDIR      receives output_0.npy, output_1.npy, ... (the model's outputs in order)
//   LEVEL       graph optimization level: disabled, basic, extended or all
//               (all is what a user of ONNX Runtime gets by default)
//   INPUT.npy   one per model input, in the model's order; little-endian
//               float32, float64, int64, int32, uint8 or bool, C order
// On success it prints {"outputs": [{"name", "type", "dims", "file"}...]}
// on stdout; on failure it prints one line on stderr and exits with 1.
// One intra-op and one inter-op thread: results do not depend on the CPU
// count.
//
// Install the runtime next to this script (node_modules is not committed),
// from the repository root (scripts/setup.sh --test does it):
//   npm install --prefix internal/ortrun --ignore-scripts --no-save \
//       --no-package-lock onnxruntime-node@1.30.0
// or point NODE_PATH at a node_modules folder that holds it.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

// NumPy type strings and the ONNX Runtime tensor types they carry.
const types = [
  {descr: '<f4', type: 'float32', Arr: Float32Array},
  {descr: '<f8', type: 'float64', Arr: Float64Array},
  {descr: '<i8', type: 'int64', Arr: BigInt64Array},
  {descr: '<i4', type: 'int32', Arr: Int32Array},
  {descr: '|u1', type: 'uint8', Arr: Uint8Array},
  {descr: '|i1', type: 'int8', Arr: Int8Array},
  {descr: '|b1', type: 'bool', Arr: Uint8Array},
];

function readNPY(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${file}: not an NPY file`);
  }
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) {
    throw new Error(`${file}: unreadable NPY header ${header.trim()}`);
  }
  if (fortran[1] === 'True') {
    throw new Error(`${file}: Fortran order is not supported; save in C order`);
  }
  const t = types.find((x) => x.descr === descr[1]);
  if (!t) {
    throw new Error(`${file}: dtype ${descr[1]} is not supported (want ${types.map((x) => x.descr).join(', ')})`);
  }
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const body = buf.buffer.slice(buf.byteOffset + start + hlen, buf.byteOffset + buf.length);
  const data = new t.Arr(body);
  const want = dims.reduce((a, b) => a * b, 1);
  if (data.length !== want) {
    throw new Error(`${file}: ${data.length} values for shape [${dims}] (${want})`);
  }
  return new ort.Tensor(t.type, t.type === 'bool' ? Uint8Array.from(data) : data, dims);
}

// writeNPY writes an ONNX Runtime tensor as NPY format 1.0, with the header
// padded as numpy.save pads it.
function writeNPY(file, tensor) {
  const t = types.find((x) => x.type === tensor.type);
  if (!t) {
    throw new Error(`output of type ${tensor.type} cannot be written (want ${types.map((x) => x.type).join(', ')})`);
  }
  const dims = tensor.dims.map(String);
  const tuple = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${t.descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  if (dims.length > 0) header += ' '.repeat(21 - dims[0].length);
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const data = tensor.data;
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

async function main() {
  const [model, outDir, level, ...inputs] = process.argv.slice(2);
  if (!level) {
    throw new Error('usage: node run_ort.js MODEL.onnx OUTDIR LEVEL INPUT.npy...');
  }
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: level,
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    logSeverityLevel: 3, // errors only: warnings would bury the one line that matters
  });
  if (inputs.length !== session.inputNames.length) {
    throw new Error(`${inputs.length} inputs given; the model has ${session.inputNames.length} (${session.inputNames.join(', ')})`);
  }
  const feeds = {};
  session.inputNames.forEach((name, i) => { feeds[name] = readNPY(inputs[i]); });
  const results = await session.run(feeds);
  const outputs = session.outputNames.map((name, k) => {
    const file = path.join(outDir, `output_${k}.npy`);
    writeNPY(file, results[name]);
    return {name, type: results[name].type, dims: results[name].dims, file};
  });
  process.stdout.write(JSON.stringify({outputs}) + '\n');
}

main().catch((err) => {
  process.stderr.write(`run_ort: ${String(err.message || err).replace(/\s+/g, ' ')}\n`);
  process.exit(1);
});
