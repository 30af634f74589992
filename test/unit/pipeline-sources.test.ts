// Source collection on real files in temp folders: every skip reason, gitignore layering,
// globs, symlinks and caller-given sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { collectSources, isMinified } from '../../src/core/context/sources';
import { tempDir } from './pipeline-helpers';

function write(root: string, rel: string, content: string | Buffer): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

test('each skip reason is counted with examples, kept files come sorted', async () => {
  const ws = tempDir('src');
  const outside = tempDir('outside');
  try {
    const r = ws.dir;
    write(r, 'a.py', 'def a():\n    return 1\n');
    write(r, 'b/c.ts', 'export const c = 1;\n');
    write(r, '.gitignore', 'build/\n*.log\nsecret.txt\n');
    write(r, 'secret.txt', 'nope\n');
    write(r, 'build/out.js', 'x\n');
    write(r, 'debug.log', 'log\n');
    write(r, 'sub/.gitignore', '*.tmp\n!keep.log\n');
    write(r, 'sub/x.tmp', 'tmp\n');
    write(r, 'sub/keep.log', 'kept by the nested negation\n');
    write(r, 'sub/other.log', 'still ignored by the root rule\n');
    write(r, 'vendor/lib.py', 'x = 1\n');
    write(r, 'big.txt', 'y'.repeat(5000));
    write(r, 'img.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]));
    write(r, 'latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1
    write(r, 'bundle.js', `${'var a=1,b=2;'.repeat(250)}\n`);
    write(r, 'app.min.js', 'var a=1;\n');
    write(outside.dir, 'stolen.py', 'password = 1\n');
    symlinkSync(path.join(outside.dir, 'stolen.py'), path.join(r, 'link-out.py'));
    symlinkSync(outside.dir, path.join(r, 'dir-out'));
    symlinkSync(path.join(r, 'a.py'), path.join(r, 'link-in.py'));
    symlinkSync(path.join(r, 'missing.py'), path.join(r, 'dangling.py'));
    symlinkSync(r, path.join(r, 'b', 'loop'));

    const res = await collectSources({ roots: [r], exclude: ['vendor/**'], maxFileBytes: 4096 });
    const paths = res.files.map((f) => f.path);
    assert.deepEqual(paths, ['.gitignore', 'a.py', 'b/c.ts', 'link-in.py', 'sub/.gitignore', 'sub/keep.log']);
    assert.deepEqual(res.skipped.counts, {
      gitignored: 5, // build/, debug.log, secret.txt, sub/other.log, sub/x.tmp
      excluded: 1,
      'too-large': 1,
      binary: 1,
      'not-utf8': 1,
      minified: 2,
      'symlink-outside': 2,
      unreadable: 1,
    });
    const ex = (reason: string) => res.skipped.examples.filter((e) => e.reason === reason).map((e) => e.path).sort();
    assert.deepEqual(ex('gitignored'), ['build/', 'debug.log', 'secret.txt']);
    assert.deepEqual(ex('excluded'), ['vendor/']);
    assert.deepEqual(ex('too-large'), ['big.txt']);
    assert.deepEqual(ex('binary'), ['img.png']);
    assert.deepEqual(ex('not-utf8'), ['latin1.txt']);
    assert.deepEqual(ex('minified'), ['app.min.js', 'bundle.js']);
    assert.deepEqual(ex('symlink-outside'), ['dir-out', 'link-out.py']);
    assert.deepEqual(ex('unreadable'), ['dangling.py']);
    assert.ok(!res.files.some((f) => f.text.includes('password')), 'content from outside the root leaked in');
    assert.equal(res.files.find((f) => f.path === 'link-in.py')?.text, 'def a():\n    return 1\n');
    // Same tree, same result.
    const again = await collectSources({ roots: [r], exclude: ['vendor/**'], maxFileBytes: 4096 });
    assert.deepEqual(again.files.map((f) => f.path), paths);
  } finally {
    ws.cleanup();
    outside.cleanup();
  }
});

test('include globs keep only matching files; a .git folder is never read', async () => {
  const ws = tempDir('inc');
  try {
    write(ws.dir, 'src/a.ts', 'export const a = 1;\n');
    write(ws.dir, 'src/b.py', 'b = 2\n');
    write(ws.dir, 'README.md', '# hi\n');
    write(ws.dir, '.git/config', '[core]\n');
    const res = await collectSources({ roots: [ws.dir], include: ['**/*.ts', '**/*.py'] });
    assert.deepEqual(res.files.map((f) => f.path), ['src/a.ts', 'src/b.py']);
    assert.equal(res.skipped.counts.excluded, 1);
    assert.equal(res.skipped.counts.gitignored, 1);
    assert.deepEqual(res.skipped.examples.find((e) => e.reason === 'gitignored')?.path, '.git/');
  } finally {
    ws.cleanup();
  }
});

test('caller sources: unsaved editor text replaces the disk copy, selections are added', async () => {
  const ws = tempDir('callers');
  try {
    write(ws.dir, 'a.py', 'old = 1\n');
    write(ws.dir, 'b.py', 'b = 1\n');
    write(ws.dir, 'extra.py', 'explicit = 3\n');
    const res = await collectSources({
      roots: [ws.dir],
      sources: [
        { path: 'a.py', text: 'unsaved = 2\n', origin: 'open' },
        { path: 'b.py', text: 'b = 1\n', startLine: 1, origin: 'selection' },
        { path: 'zz.py', absPath: path.join(ws.dir, 'extra.py'), origin: 'explicit' },
        { path: 'bin.dat', text: 'a\0b', origin: 'explicit' },
      ],
    });
    assert.deepEqual(
      res.files.map((f) => [f.path, f.origin, f.text]),
      [
        ['a.py', 'open', 'unsaved = 2\n'],
        ['b.py', 'workspace', 'b = 1\n'],
        ['b.py', 'selection', 'b = 1\n'],
        ['extra.py', 'workspace', 'explicit = 3\n'],
        ['zz.py', 'explicit', 'explicit = 3\n'],
      ],
    );
    assert.equal(res.files[0].absPath, path.join(ws.dir, 'a.py'), 'the disk path is kept for citations');
    assert.deepEqual(res.skipped.counts, { binary: 1 });
  } finally {
    ws.cleanup();
  }
});

test('empty folder and missing root give no files and no crash', async () => {
  const ws = tempDir('empty');
  try {
    const res = await collectSources({ roots: [ws.dir] });
    assert.deepEqual(res.files, []);
    assert.deepEqual(res.skipped.counts, {});
    const missing = await collectSources({ roots: [path.join(ws.dir, 'nope')] });
    assert.deepEqual(missing.skipped.counts, { unreadable: 1 });
  } finally {
    ws.cleanup();
  }
});

test('cancellation stops the scan', async () => {
  const ws = tempDir('cancel');
  try {
    for (let i = 0; i < 5; i++) write(ws.dir, `f${i}.py`, 'x = 1\n');
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(collectSources({ roots: [ws.dir], signal: ac.signal }), (e: Error & { code?: string }) => e.code === 'cancelled');
  } finally {
    ws.cleanup();
  }
});

test('minified heuristic: long average lines, not long files', () => {
  assert.equal(isMinified('a.js', 'x'.repeat(5000)), true);
  assert.equal(isMinified('a.js', 'short line\n'.repeat(1000)), false);
  assert.equal(isMinified('a.js', 'x'.repeat(1000)), false, 'a short one-liner is fine');
  assert.equal(isMinified('vendor/x.min.css', 'a{}'), true);
});

test('files left out for their content are recorded with their stamps, and a known skip is not read again', async () => {
  const ws = tempDir('src-skips');
  try {
    const r = ws.dir;
    write(r, 'a.py', 'def a():\n    return 1\n');
    write(r, 'img.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1]));
    write(r, 'text.txt', 'plain text that reads fine\n');
    // First scan: both files are read; the binary one is recorded with the stamp taken before the read.
    const first = await collectSources({ roots: [r] });
    assert.deepEqual(first.contentSkips.map((s) => [s.path, s.reason]), [['img.png', 'binary']]);
    assert.equal(first.contentSkipsRead, 1);
    assert.equal(first.contentSkips[0].stamp.size, 8);
    // A caller that knows `text.txt` as left out (as it is now) gets it skipped without a read:
    // read, it would be kept (its text is fine).
    const second = await collectSources({
      roots: [r],
      unchanged: () => false,
      knownSkip: (shown) => (shown === 'text.txt' ? 'binary' : null),
    });
    assert.deepEqual(second.files.map((f) => f.path), ['a.py']);
    assert.deepEqual(second.skipped.counts, { binary: 2 });
    assert.deepEqual(second.contentSkips.map((s) => [s.path, s.reason]).sort(), [['img.png', 'binary'], ['text.txt', 'binary']]);
    assert.equal(second.contentSkipsRead, 1, 'only img.png was read');
  } finally {
    ws.cleanup();
  }
});
