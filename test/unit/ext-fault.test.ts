// Fault test on the real tiny-arc package and real files: the workspace compresses in the
// background while its files are edited, deleted and renamed, another process asks questions on
// the same cache, and the background pass is paused, cancelled and restarted. Afterwards every
// vector cache, chunk index and lexical index entry verifies, answers equal those of a clean
// run on a fresh cache, and this process never encoded the same chunk twice (counted).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { ArcModel } from '../../src/core/api';
import { ask } from '../../src/core/ask';
import { VectorCache, decodeEntry } from '../../src/core/context/cache';
import { hashText } from '../../src/core/context/chunker';
import { ChunkIndex, chunkIndexIdentity } from '../../src/core/context/chunkIndex';
import { LexicalIndex } from '../../src/core/context/lexicalIndex';
import { collectSources } from '../../src/core/context/sources';
import type { SourceInput } from '../../src/core/types';
import { BackgroundCompressor, type BackgroundState } from '../../src/extension/backgroundCompression';
import { compressSources } from '../../src/extension/compressWorkspace';
import { runTsChild, tempDir, useTinyArc, withEncodeHook } from './pipeline-helpers';

const REPO = path.resolve(__dirname, '../..');
const { skip, model: tinyArc } = useTinyArc();
const QUESTIONS = ['Which file defines `parse_config`?', 'What does `low_stock` return?', 'Which function evicts cache entries?'];

async function answer(model: ArcModel, root: string, cacheDir: string, question: string): Promise<string> {
  for await (const e of ask(model, { question, mode: 'arc', roots: [root], maxNewTokens: 3 }, { cacheDir })) {
    if (e.type === 'error') throw new Error(e.message);
    if (e.type === 'done') return e.answer;
  }
  throw new Error('no answer');
}

test('background compression survives edits, deletes, renames, a second process and cancel/restart', { skip, timeout: 600_000 }, async () => {
  const base = await tinyArc();
  // Counts each distinct encoder input this process encodes, and how often.
  const seen = new Map<string, number>();
  const model = withEncodeHook(base, (chunks) => {
    for (const c of chunks) {
      const k = createHash('sha256').update(JSON.stringify(c)).digest('hex');
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
  });
  const t = tempDir('fault');
  try {
    const root = path.join(t.dir, 'ws');
    cpSync(path.join(REPO, 'test/fixtures/workspace-py'), root, { recursive: true });
    mkdirSync(path.join(root, 'ts'));
    cpSync(path.join(REPO, 'src/core/context'), path.join(root, 'ts'), { recursive: true });
    const cacheDir = path.join(t.dir, 'cache');

    const sourcesNow = async (): Promise<SourceInput[]> =>
      (await collectSources({ roots: [root] })).files.map((f) => ({ path: f.path, absPath: f.absPath as string, origin: 'workspace' as const }));
    const states: BackgroundState[] = [];
    const bg = new BackgroundCompressor(
      // Each pass collects the files again, as the extension does: it sees the edits.
      async (signal, onProgress) => void (await compressSources(model, await sourcesNow(), 'Workspace', { cacheDir, signal, onProgress })),
      (s) => states.push(s),
    );
    const progressAt = async (fraction: number): Promise<void> => {
      const n = states.length;
      while (!states.slice(n).some((s) => s.kind === 'running' && s.total !== undefined && (s.done ?? 0) >= s.total * fraction) && bg.running) await new Promise((r) => setTimeout(r, 5));
    };

    await answer(model, root, cacheDir, QUESTIONS[0]);
    bg.start();
    await progressAt(0.2);
    assert.ok(bg.running, 'the faults hit a running pass');
    // Faults while it runs: edit, delete, rename.
    const store = path.join(root, 'pkg/store.py');
    writeFileSync(store, readFileSync(store, 'utf8').replace('def low_stock(store):', 'def low_stock(store, limit=3):'));
    rmSync(path.join(root, 'ts/locations.ts'));
    renameSync(path.join(root, 'ts/plan.ts'), path.join(root, 'ts/planner.ts'));
    // Another process asks on the same cache while this one compresses.
    const child = runTsChild<{ answer?: string; error?: string }>('ext-fault-child.ts', [root, cacheDir, QUESTIONS[1]]);
    await bg.pause();
    await answer(model, root, cacheDir, QUESTIONS[2]);
    assert.equal(states[states.length - 1].kind, 'paused');
    bg.resume();
    await progressAt(0.5);
    await bg.cancel();
    assert.equal(states[states.length - 1].kind, 'cancelled');
    writeFileSync(path.join(root, 'ts/added.ts'), 'export function addedLater(x: number): number {\n  return x * 2;\n}\n');
    bg.start();
    const other = await child;
    assert.equal(other.error, undefined, other.error);
    await bg.idle();
    while (bg.running || states[states.length - 1].kind !== 'done') await new Promise((r) => setTimeout(r, 20));

    // Nothing this process finished was encoded again.
    const twice = [...seen.values()].filter((n) => n > 1).length;
    assert.equal(twice, 0, `${twice} chunks encoded more than once`);

    // Every entry of the three stores verifies.
    const cache = new VectorCache(cacheDir);
    const vectors = await cache.listEntries();
    assert.ok(vectors.length > 200);
    for (const e of vectors) {
      const key = path.basename(e.file, '.arcv');
      assert.equal(typeof decodeEntry(key, readFileSync(e.file), base.encoder.dim), 'object', `${e.file} verifies`);
    }
    const identity = (await chunkIndexIdentity(base)) as string;
    const files = (await collectSources({ roots: [root] })).files;
    const opts = { maxTokens: base.encoder.maxChunkTokens, header: base.manifest.documentFormat.header };
    const logs: string[] = [];
    const chunkIndex = new ChunkIndex(cacheDir, identity, { log: (l) => logs.push(l) });
    const lexical = new LexicalIndex(cacheDir, identity, { log: (l) => logs.push(l) });
    for (const f of files) {
      assert.ok(await chunkIndex.get(f, opts), `chunk index entry for ${f.path}`);
      assert.ok(await lexical.get(lexical.key(f, opts, hashText(f.text)), f), `lexical entry for ${f.path}`);
    }
    assert.deepEqual(logs, [], 'no corrupt entries');

    // Answers equal a clean run's on a fresh cache.
    const clean = path.join(t.dir, 'clean-cache');
    for (const q of QUESTIONS) assert.equal(await answer(base, root, cacheDir, q), await answer(base, root, clean, q), q);
  } finally {
    t.cleanup();
  }
});
