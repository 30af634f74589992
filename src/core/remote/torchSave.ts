// `torch.save` of one dense tensor, written by hand: vLLM's Completions API takes
// `prompt_embeds` as base64 of exactly these bytes and reads them with
// torch.load(weights_only=True). The format is a zip archive (stored, not deflated) holding
//   archive/data.pkl   a protocol-2 pickle: torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())
//                      where the storage is a persistent id ('storage', torch.<T>Storage, '0', 'cpu', numel)
//   archive/byteorder  'little' (newer torch reads it; older ignores it)
//   archive/data/0     the raw little-endian elements, 64-byte aligned like torch writes them
//   archive/version    '3'
// Only opcodes torch's weights-only unpickler accepts are used.
import * as zlib from 'node:zlib';
import { ArcError } from '../errors';

export type TorchDtype = 'float32' | 'float16' | 'bfloat16';

const STORAGE_CLASS: Record<TorchDtype, string> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
};
const ELEMENT_BYTES: Record<TorchDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };
/** torch aligns tensor data inside the archive so it can be memory-mapped. */
const DATA_ALIGN = 64;
const ARCHIVE = 'archive';

// ---------------------------------------------------------------------------- elements

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a float32, round to nearest even (as torch's .half()). */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // Inf, or a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit 1 into place.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0));
}

/** bfloat16 bits of a float32: the upper half, round to nearest even (as torch's .bfloat16()). */
export function toBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0; // NaN stays a quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The tensor's elements as little-endian bytes of `dtype`. */
export function tensorBytes(data: Float32Array, dtype: TorchDtype): Buffer {
  if (dtype === 'float32') {
    if (LITTLE_ENDIAN) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const out = Buffer.alloc(data.length * 4);
    data.forEach((v, i) => out.writeFloatLE(v, i * 4));
    return out;
  }
  const convert = dtype === 'float16' ? toFloat16Bits : toBfloat16Bits;
  if (LITTLE_ENDIAN) {
    const bits = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) bits[i] = convert(data[i]!);
    return Buffer.from(bits.buffer);
  }
  const out = Buffer.alloc(data.length * 2);
  for (let i = 0; i < data.length; i++) out.writeUInt16LE(convert(data[i]!), i * 2);
  return out;
}

// ---------------------------------------------------------------------------- pickle

class Pickle {
  private readonly parts: Buffer[] = [];

  op(code: string): this {
    this.parts.push(Buffer.from(code, 'latin1'));
    return this;
  }

  global(module: string, name: string): this {
    return this.op(`c${module}\n${name}\n`);
  }

  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = 0x58; // BINUNICODE
    head.writeUInt32LE(b.length, 1);
    this.parts.push(head, b);
    return this;
  }

  int(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new ArcError('internal', `torch.save: ${n} is not a size or count.`);
    if (n < 0x100) {
      this.parts.push(Buffer.from([0x4b, n])); // BININT1
    } else if (n < 0x80000000) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT (signed 32-bit)
      b.writeInt32LE(n, 1);
      this.parts.push(b);
    } else {
      // LONG1: little-endian two's complement, a zero top byte keeps it positive.
      const bytes: number[] = [];
      let v = BigInt(n);
      while (v > 0n) {
        bytes.push(Number(v & 0xffn));
        v >>= 8n;
      }
      if (bytes[bytes.length - 1]! & 0x80) bytes.push(0);
      this.parts.push(Buffer.from([0x8a, bytes.length, ...bytes]));
    }
    return this;
  }

  tuple(items: readonly number[]): this {
    if (items.length === 0) return this.op(')'); // EMPTY_TUPLE
    this.op('(');
    for (const n of items) this.int(n);
    return this.op('t');
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function dataPickle(dtype: TorchDtype, shape: readonly number[], numel: number): Buffer {
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return new Pickle()
    .op('\x80\x02') // PROTO 2
    .global('torch._utils', '_rebuild_tensor_v2')
    .op('(') // arguments of _rebuild_tensor_v2
    .op('(') // persistent id of the storage
    .str('storage')
    .global('torch', STORAGE_CLASS[dtype])
    .str('0')
    .str('cpu')
    .int(numel)
    .op('t')
    .op('Q') // BINPERSID
    .int(0) // storage offset
    .tuple(shape)
    .tuple(stride)
    .op('\x89') // requires_grad = False
    .global('collections', 'OrderedDict')
    .op(')')
    .op('R') // OrderedDict() (backward hooks)
    .op('t')
    .op('R')
    .op('.')
    .bytes();
}

// ---------------------------------------------------------------------------- zip (stored)

const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** zlib.crc32 where Node has it (20.15+, 22.2+), else a table-driven CRC-32. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Entry {
  name: string;
  data: Buffer;
  align?: number;
}

function zipStored(entries: Entry[]): Buffer {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(e.data);
    let extra = Buffer.alloc(0);
    if (e.align) {
      // Pad with an extra field ("FB", as torch does) so the data starts on the boundary.
      const start = offset + 30 + name.length;
      const pad = (e.align - ((start + 4) % e.align)) % e.align;
      extra = Buffer.alloc(4 + pad);
      extra.write('FB', 0, 'latin1');
      extra.writeUInt16LE(pad, 2);
    }
    if (e.data.length > 0xfffffffe || offset > 0xfffffffe) {
      throw new ArcError('context-too-large', `The prefix tensor is ${e.data.length} bytes; the torch.save writer here stops at 4 GiB (no ZIP64). Use a shorter context.`);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(0, 10); // time, date
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    chunks.push(local, name, extra, e.data);

    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4); // version made by
    cd.writeUInt16LE(20, 6); // version needed
    cd.writeUInt16LE(0, 8);
    cd.writeUInt16LE(0, 10);
    cd.writeUInt32LE(0, 12);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(e.data.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    // extra, comment, disk, internal and external attributes stay 0
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    offset += 30 + name.length + extra.length + e.data.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...chunks, cdBytes, end]);
}

// ---------------------------------------------------------------------------- entry point

/**
 * The bytes `torch.save(tensor, f)` would write for a contiguous CPU tensor of `shape` holding
 * `data` (row-major float32 values, converted to `dtype` with round-to-nearest-even).
 */
export function torchSaveTensor(data: Float32Array, shape: readonly number[], dtype: TorchDtype = 'float32'): Buffer {
  if (!(dtype in STORAGE_CLASS)) throw new ArcError('internal', `torch.save: unsupported dtype ${dtype} (float32, float16 or bfloat16).`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ArcError('internal', `torch.save: bad shape [${shape.join(', ')}].`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel !== data.length) throw new ArcError('internal', `torch.save: shape [${shape.join(', ')}] holds ${numel} elements, the data has ${data.length}.`);
  const storage = tensorBytes(data, dtype);
  if (storage.length !== numel * ELEMENT_BYTES[dtype]) throw new ArcError('internal', 'torch.save: storage size mismatch.');
  return zipStored([
    { name: `${ARCHIVE}/data.pkl`, data: dataPickle(dtype, shape, numel) },
    { name: `${ARCHIVE}/byteorder`, data: Buffer.from('little', 'latin1') },
    { name: `${ARCHIVE}/data/0`, data: storage, align: DATA_ALIGN },
    { name: `${ARCHIVE}/version`, data: Buffer.from('3\n', 'latin1') },
  ]);
}
