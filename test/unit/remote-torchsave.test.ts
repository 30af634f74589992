// The TypeScript torch.save writer against real PyTorch: every file is read back with
// torch.load(weights_only=True) and compared bit for bit (fp16/bf16 against torch's own
// conversion of the same float32 values).
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { seededRandom } from '../../src/core/generate';
import { crc32, toBfloat16Bits, toFloat16Bits, torchSaveTensor, type TorchDtype } from '../../src/core/remote/torchSave';
import { NO_TORCH, PYTHON } from './remote-helpers';

/** Values that exercise rounding: a normal spread, then specials, subnormals and overflow. */
function values(n: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rnd() - 0.5) * 8 * Math.exp((rnd() - 0.5) * 6);
  const specials = [0, -0, 1, -1, NaN, Infinity, -Infinity, 65504, 65520, 1e6, -70000, 6e-8, 3e-8, 2.9e-8, 1e-10, 5.96e-8, 6.1e-5, 6.09e-5, 1e-40, 3.4e38, -3.4e38, 1.00048828125, 1.0009765625, 1.00146484375];
  specials.slice(0, n).forEach((v, i) => (out[i] = v));
  return out;
}

const CHECK = String.raw`
import sys, json, torch, numpy as np
for item in json.loads(sys.argv[1]):
    t = torch.load(item["pt"], weights_only=True)
    ref32 = torch.from_numpy(np.fromfile(item["raw"], dtype=np.float32)).reshape(item["shape"])
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[item["dtype"]]
    assert isinstance(t, torch.Tensor), type(t)
    assert t.dtype == dtype, (t.dtype, dtype)
    assert list(t.shape) == item["shape"], (list(t.shape), item["shape"])
    assert t.is_contiguous()
    ref = ref32.to(dtype)
    nan = torch.isnan(ref)
    assert torch.equal(torch.isnan(t), nan), "NaN positions differ"
    bits = torch.int32 if dtype == torch.float32 else torch.int16
    same = t.view(bits)[~nan] == ref.view(bits)[~nan]
    assert bool(same.all()), f"{int((~same).sum())} elements differ"
    print(item["dtype"], item["shape"], "ok")
`;

function roundTrip(cases: { shape: number[]; dtype: TorchDtype }[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'arc-torchsave-'));
  try {
    const made = new Map<string, Float32Array>();
    const items = cases.map((c, i) => {
      const n = c.shape.reduce((a, b) => a * b, 1);
      // One set of values per shape, shared by its dtypes (the big shape is 16.7M values).
      const data = made.get(c.shape.join('x')) ?? values(n, 1000 + n);
      made.set(c.shape.join('x'), data);
      const pt = join(dir, `t${i}.pt`);
      const raw = join(dir, `t${i}.f32`);
      writeFileSync(pt, torchSaveTensor(data, c.shape, c.dtype));
      writeFileSync(raw, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      return { pt, raw, shape: c.shape, dtype: c.dtype };
    });
    const r = spawnSync(PYTHON, ['-c', CHECK, JSON.stringify(items)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
    assert.equal(r.status, 0, `torch.load check failed:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const DTYPES: TorchDtype[] = ['float32', 'float16', 'bfloat16'];

test('torch.save writer: small shapes [1, 128] .. [300, 64] in fp32/fp16/bf16 round-trip through torch.load(weights_only=True)', { skip: NO_TORCH }, () => {
  const shapes = [[1, 128], [3, 64], [37, 128], [300, 64], [128]];
  const out = roundTrip(shapes.flatMap((shape) => DTYPES.map((dtype) => ({ shape, dtype }))));
  assert.equal(out.trim().split('\n').length, shapes.length * DTYPES.length);
});

test('torch.save writer: [4096, 4096] in fp32/fp16/bf16 round-trips through torch.load(weights_only=True)', { skip: NO_TORCH }, () => {
  const out = roundTrip(DTYPES.map((dtype) => ({ shape: [4096, 4096], dtype })));
  assert.match(out, /float32 \[4096, 4096\] ok/);
  assert.match(out, /bfloat16 \[4096, 4096\] ok/);
});

test('torch.save writer: half and bfloat16 rounding on known values', () => {
  assert.equal(toFloat16Bits(1), 0x3c00);
  assert.equal(toFloat16Bits(-2), 0xc000);
  assert.equal(toFloat16Bits(65504), 0x7bff);
  assert.equal(toFloat16Bits(65520), 0x7c00); // rounds up to Inf
  assert.equal(toFloat16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(toFloat16Bits(2 ** -25), 0x0000); // ties to even: 0
  assert.equal(toFloat16Bits(1.00048828125), 0x3c00); // halfway, ties to even
  assert.equal(toFloat16Bits(1.00146484375), 0x3c02);
  assert.equal(toBfloat16Bits(1), 0x3f80);
  assert.equal(toBfloat16Bits(-Infinity), 0xff80);
  assert.equal(toBfloat16Bits(NaN) & 0x7fc0, 0x7fc0);
});

test('torch.save writer: CRC-32 and shape checks', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.throws(() => torchSaveTensor(new Float32Array(5), [2, 3]), /holds 6 elements, the data has 5/);
  const bytes = torchSaveTensor(new Float32Array(6), [2, 3], 'float16');
  assert.equal(bytes.readUInt32LE(0), 0x04034b50);
});
