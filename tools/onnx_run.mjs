// Runs ONNX models with onnxruntime-node for the Python tests (there is no Python runtime here).
// Usage: node tools/onnx_run.mjs request.json response.json
// request:  {"runs": [{"model": path, "inputs": {name: {"type": "float32"|"int64", "dims": [..], "b64": raw LE bytes}}}]}
// response: {"runs": [{"outputs": {name: {"type", "dims", "b64"}}}]}
process.env.ORT_DISABLE_TELEMETRY = '1';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

const ARRAYS = { float32: Float32Array, int64: BigInt64Array, float16: Uint16Array, int32: Int32Array };

function toTensor(spec) {
  const Ctor = ARRAYS[spec.type];
  if (!Ctor) throw new Error(`unsupported input type ${spec.type}`);
  const buf = Buffer.from(spec.b64, 'base64');
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return new ort.Tensor(spec.type, new Ctor(copy.buffer, 0, buf.length / Ctor.BYTES_PER_ELEMENT), spec.dims);
}

function fromTensor(t) {
  const d = t.data;
  return { type: t.type, dims: Array.from(t.dims), b64: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64') };
}

const [reqPath, resPath] = process.argv.slice(2);
const req = JSON.parse(readFileSync(reqPath, 'utf8'));
const sessions = new Map();
const runs = [];
for (const run of req.runs) {
  if (!sessions.has(run.model)) {
    sessions.set(run.model, await ort.InferenceSession.create(run.model, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 }));
  }
  const session = sessions.get(run.model);
  const feeds = {};
  for (const [name, spec] of Object.entries(run.inputs)) feeds[name] = toTensor(spec);
  const out = await session.run(feeds);
  const outputs = {};
  for (const [name, t] of Object.entries(out)) outputs[name] = fromTensor(t);
  runs.push({ outputs, inputNames: session.inputNames, outputNames: session.outputNames });
}
writeFileSync(resPath, JSON.stringify({ runs }));
