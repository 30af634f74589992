// Child process for the concurrent-writers test: hammers one cache directory with puts, gets
// and eviction passes, and prints a JSON summary of what it saw.
import { VectorCache, cacheKey } from '../../src/core/context/cache';
import type { CompressedChunk } from '../../src/core/api';

export function valueFor(i: number, dim = 16): CompressedChunk {
  const count = 3 + (i % 5);
  const vectors = new Float32Array(count * dim);
  for (let k = 0; k < vectors.length; k++) vectors[k] = Math.sin(i * 1000 + k);
  const groups: [number, number][] = Array.from({ length: count }, (_, g) => [g * 4, g * 4 + 4]);
  return { vectors, count, dim, groups };
}

export const childKey = (i: number) => cacheKey('model-x', `chunk-${i}`);

async function main(): Promise<void> {
  const [dir, seedArg, roundsArg, maxBytesArg] = process.argv.slice(2);
  const seed = Number(seedArg);
  const logs: string[] = [];
  const cache = new VectorCache(dir, { maxBytes: Number(maxBytesArg), log: (l) => logs.push(l) });
  let hits = 0;
  let wrong = 0;
  for (let round = 0; round < Number(roundsArg); round++) {
    for (let j = 0; j < 12; j++) {
      const i = (j * 7 + seed + round) % 12;
      const got = await cache.get(childKey(i), 16);
      if (got) {
        hits++;
        const want = valueFor(i);
        if (got.count !== want.count || got.vectors.some((v, k) => v !== want.vectors[k])) wrong++;
      } else {
        await cache.put(childKey(i), valueFor(i));
      }
    }
    await cache.evict();
  }
  process.stdout.write(JSON.stringify({ hits, wrong, logs }) + '\n');
}

if (process.argv[1]?.endsWith('pipeline-cache-child.ts')) void main();
