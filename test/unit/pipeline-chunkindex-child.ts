// Child process for the concurrent chunk-index test: chunks one folder over and over through a
// shared index folder (a fresh tokenizer wrapper each round, so the per-process memo never
// answers), evicting with a small cap, and prints a JSON summary of what it saw.
import { chunkFile } from '../../src/core/context/chunker';
import { ChunkIndex, chunkFilesIndexed } from '../../src/core/context/chunkIndex';
import { collectSources } from '../../src/core/context/sources';
import type { TextTokenizer } from '../../src/core/api';
import { fixtureTokenizer } from './pipeline-helpers';

export const CHILD_IDENTITY = 'tiny-arc-test-tokenizer';

async function main(): Promise<void> {
  const [dir, root, roundsArg, maxBytesArg, maxTokensArg] = process.argv.slice(2);
  const base = fixtureTokenizer();
  if (!base) throw new Error('tiny-arc fixture missing');
  const opts = { maxTokens: Number(maxTokensArg), header: '### {path}\n' };
  const { files } = await collectSources({ roots: [root] });
  const want = files.map((f) => chunkFile(f, base, opts));
  const logs: string[] = [];
  let wrong = 0;
  let fromIndex = 0;
  let chunked = 0;
  for (let round = 0; round < Number(roundsArg); round++) {
    const tok: TextTokenizer = { encode: (t) => base.encode(t), decode: (ids) => base.decode(ids) };
    const index = new ChunkIndex(dir, CHILD_IDENTITY, { maxBytes: Number(maxBytesArg), log: (l) => logs.push(l) });
    const r = await chunkFilesIndexed(files, tok, opts, index);
    fromIndex += r.fromIndex;
    chunked += r.chunked;
    if (JSON.stringify(r.chunks) !== JSON.stringify(want.flat())) wrong++;
    await index.evict();
  }
  process.stdout.write(JSON.stringify({ wrong, fromIndex, chunked, logs }) + '\n');
}

if (process.argv[1]?.endsWith('pipeline-chunkindex-child.ts')) void main();
