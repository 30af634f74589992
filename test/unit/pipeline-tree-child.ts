// Child process for the tree-index concurrency test: asks a few questions over one folder through
// a shared cache (as a new process each round: memos cleared) while the parent edits, deletes and
// renames files, and prints a JSON summary: the error messages of questions that did not finish.
// `replace-entry <from> <to>`: another process writing a tree entry over `to` as a store writer
// does (temp file + rename), with the bytes of `from`.
import { readFileSync } from 'node:fs';
import { ask } from '../../src/core/ask';
import { writeStoreEntry } from '../../src/core/context/cache';
import { clearLexiconMemo } from '../../src/core/context/lexicalIndex';
import { loadModel } from '../../src/core/model';
import { TINY_ARC } from './pipeline-helpers';

const QUESTIONS = ['Which function evicts the least recently used cache entries?', 'Which file defines `chunkFile`?', 'how is the header rendered for a path'];

async function main(): Promise<void> {
  const [cache, root, roundsArg] = process.argv.slice(2);
  const model = await loadModel(TINY_ARC, { provider: 'cpu', threads: 1 });
  const errors: string[] = [];
  let done = 0;
  try {
    for (let round = 0; round < Number(roundsArg); round++) {
      for (const question of QUESTIONS) {
        clearLexiconMemo();
        for await (const e of ask(model, { mode: round % 2 === 0 ? 'arc' : 'mixed', maxNewTokens: 2, question, roots: [root] }, { cacheDir: cache })) {
          if (e.type === 'error') errors.push(e.message);
          if (e.type === 'done') done++;
        }
      }
    }
  } finally {
    await model.dispose();
  }
  process.stdout.write(JSON.stringify({ done, errors }) + '\n');
}

async function replaceEntry(from: string, to: string): Promise<void> {
  await writeStoreEntry(to, readFileSync(from));
  process.stdout.write(JSON.stringify({ replaced: to }) + '\n');
}

if (process.argv[1]?.endsWith('pipeline-tree-child.ts')) void (process.argv[2] === 'replace-entry' ? replaceEntry(process.argv[3], process.argv[4]) : main());
