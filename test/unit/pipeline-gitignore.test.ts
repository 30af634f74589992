// filterGitignored: the folder scan's .gitignore rules applied to a list of paths found by
// another lister (the extension's workspace.findFiles). Must agree with collectSources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { collectSources, filterGitignored } from '../../src/core/context/sources';
import { tempDir } from './pipeline-helpers';

function write(root: string, rel: string, content: string): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** A tree with root, nested and deeper .gitignore files, negations and ignored folders. */
function makeTree(r: string): string[] {
  const files: Record<string, string> = {
    '.gitignore': 'build/\n*.log\n/secret.txt\n',
    'a.py': 'a = 1\n',
    'secret.txt': 'root-anchored: ignored\n',
    'debug.log': 'ignored by *.log\n',
    'build/out.js': 'inside an ignored folder\n',
    'build/keep.js': 'a negation cannot re-include a file of an ignored folder\n',
    'docs/secret.txt': 'the root rule is anchored, so this one stays\n',
    'sub/.gitignore': '*.tmp\n!keep.log\ngen/\n',
    'sub/x.tmp': 'ignored by sub/.gitignore\n',
    'sub/keep.log': 're-included by the nested negation\n',
    'sub/other.log': 'still ignored by the root rule\n',
    'sub/gen/code.ts': 'folder ignored by the nested rule\n',
    'sub/deep/.gitignore': '!*.tmp\nlocal.ts\n',
    'sub/deep/y.tmp': 're-included one level further down\n',
    'sub/deep/local.ts': 'ignored by the deepest file\n',
    'sub/deep/main.ts': 'kept\n',
    'other/x.tmp': 'sub/.gitignore does not reach here\n',
    'other/local.ts': 'nor does sub/deep/.gitignore\n',
  };
  for (const [rel, text] of Object.entries(files)) write(r, rel, text);
  mkdirSync(path.join(r, '.git'));
  write(r, '.git/config', '[core]\n');
  return [...Object.keys(files), '.git/config'];
}

const EXPECTED_KEPT = [
  '.gitignore',
  'a.py',
  'docs/secret.txt',
  'other/local.ts',
  'other/x.tmp',
  'sub/.gitignore',
  'sub/deep/.gitignore',
  'sub/deep/main.ts',
  'sub/deep/y.tmp',
  'sub/keep.log',
];

test('filterGitignored applies nested .gitignore files outermost first, like git', async () => {
  const ws = tempDir('gitignore');
  try {
    const all = makeTree(ws.dir);
    const res = await filterGitignored(ws.dir, all);
    assert.deepEqual([...res.kept].sort(), EXPECTED_KEPT);
    assert.deepEqual(
      [...res.ignored].sort(),
      all.filter((p) => !EXPECTED_KEPT.includes(p)).sort(),
    );
    // Paths come back as given, in order.
    assert.deepEqual(res.kept, all.filter((p) => EXPECTED_KEPT.includes(p)));
  } finally {
    ws.cleanup();
  }
});

test('filterGitignored keeps exactly what the folder scan (collectSources) keeps', async () => {
  const ws = tempDir('gitignore-parity');
  try {
    const all = makeTree(ws.dir);
    const scanned = await collectSources({ roots: [ws.dir] });
    const res = await filterGitignored(ws.dir, all);
    assert.deepEqual(scanned.files.map((f) => f.path).sort(), [...res.kept].sort());
  } finally {
    ws.cleanup();
  }
});

test('filterGitignored accepts platform separators and ./, keeps paths outside the root', async () => {
  const ws = tempDir('gitignore-paths');
  try {
    makeTree(ws.dir);
    const given = [['sub', 'x.tmp'].join(path.sep), './a.py', ['sub', 'gen', 'code.ts'].join(path.sep), '../elsewhere/debug.log', 'sub/deep/y.tmp'];
    const res = await filterGitignored(ws.dir, given);
    assert.deepEqual(res.kept, ['./a.py', '../elsewhere/debug.log', 'sub/deep/y.tmp']);
    assert.deepEqual(res.ignored, [given[0], given[2]]);
  } finally {
    ws.cleanup();
  }
});

test('filterGitignored without any .gitignore keeps everything but .git', async () => {
  const ws = tempDir('gitignore-none');
  try {
    write(ws.dir, 'a/b.py', 'x\n');
    write(ws.dir, '.git/HEAD', 'ref\n');
    const res = await filterGitignored(ws.dir, ['a/b.py', '.git/HEAD', 'missing/dir/file.ts']);
    assert.deepEqual(res, { kept: ['a/b.py', 'missing/dir/file.ts'], ignored: ['.git/HEAD'] });
  } finally {
    ws.cleanup();
  }
});

test('filterGitignored stops when the signal fires', async () => {
  const ws = tempDir('gitignore-abort');
  try {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(filterGitignored(ws.dir, ['a.py'], ac.signal), (e: unknown) => (e as { code?: string }).code === 'cancelled');
  } finally {
    ws.cleanup();
  }
});

test('.git/info/exclude applies below every .gitignore, in the scan and in filterGitignored', async () => {
  const ws = tempDir('gitignore-info-exclude');
  try {
    write(ws.dir, '.git/info/exclude', 'notes/\n*.local.ts\nkeep.local.ts\n');
    write(ws.dir, '.gitignore', '!keep.local.ts\n');
    const files = ['a.ts', 'notes/todo.md', 'x.local.ts', 'keep.local.ts', 'sub/y.local.ts'];
    for (const f of files) write(ws.dir, f, 'x\n');
    const expected = ['.gitignore', 'a.ts', 'keep.local.ts'];
    const scanned = await collectSources({ roots: [ws.dir] });
    assert.deepEqual(scanned.files.map((f) => f.path).sort(), expected);
    const res = await filterGitignored(ws.dir, ['.gitignore', ...files]);
    assert.deepEqual([...res.kept].sort(), expected);
    // Only a repository root's exclude file counts: a sub-folder scanned on its own has none.
    const sub = await collectSources({ roots: [path.join(ws.dir, 'sub')] });
    assert.deepEqual(sub.files.map((f) => f.path), ['y.local.ts']);
  } finally {
    ws.cleanup();
  }
});
