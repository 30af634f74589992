// Child process for the concurrent lexical-index test: indexes one folder over and over through a
// shared index folder (its memo cleared each round, so the disk answers), evicting with a small
// cap, and prints a JSON summary: rounds whose scores differ from a fresh MiniSearch ranking.
import type { TextTokenizer } from '../../src/core/api';
import { chunkFile } from '../../src/core/context/chunker';
import { bm25Scores, clearLexiconMemo, LexicalIndex, lexiconsFor } from '../../src/core/context/lexicalIndex';
import { bm25Normalized } from '../../src/core/context/select';
import { collectSources } from '../../src/core/context/sources';
import { fixtureTokenizer } from './pipeline-helpers';

export const LEXICAL_CHILD_IDENTITY = 'tiny-arc-test-tokenizer';
export const LEXICAL_QUESTION = 'Which function evicts the least recently used cache entries?';

async function main(): Promise<void> {
  const [dir, root, roundsArg, maxBytesArg, maxTokensArg] = process.argv.slice(2);
  const base = fixtureTokenizer() as TextTokenizer;
  const opts = { maxTokens: Number(maxTokensArg), header: '### {path}\n' };
  const { files } = await collectSources({ roots: [root] });
  const chunks = files.flatMap((f) => chunkFile(f, base, opts));
  const want = JSON.stringify(bm25Normalized(chunks, LEXICAL_QUESTION));
  const logs: string[] = [];
  let wrong = 0;
  let fromIndex = 0;
  let indexed = 0;
  for (let round = 0; round < Number(roundsArg); round++) {
    clearLexiconMemo();
    const index = new LexicalIndex(dir, LEXICAL_CHILD_IDENTITY, { maxBytes: Number(maxBytesArg), log: (l) => logs.push(l) });
    const r = await lexiconsFor(files, base, opts, null, index);
    fromIndex += r.fromIndex;
    indexed += r.indexed;
    if (JSON.stringify(Array.from(bm25Scores(r.files, LEXICAL_QUESTION))) !== want) wrong++;
    await index.evict();
  }
  process.stdout.write(JSON.stringify({ wrong, fromIndex, indexed, logs }) + '\n');
}

if (process.argv[1]?.endsWith('pipeline-lexical-child.ts')) void main();
