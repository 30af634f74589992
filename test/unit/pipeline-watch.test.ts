// Change notifications in a long-lived host (src/core/context/treeWatch.ts): ask() on the real
// tiny-arc package over real folders with the real @parcel/watcher, plus TreeWatch's rules with a
// fake watcher module (a module whose events the test sends, to reach the error, trust-window and
// root-limit paths without waiting on a real filesystem).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ArcModel } from '../../src/core/api';
import { ask } from '../../src/core/ask';
import { TreeWatch, type WatcherModule } from '../../src/core/context/treeWatch';
import { RACY_MS } from '../../src/core/context/treeIndex';
import type { AskEvent, AskRequest } from '../../src/core/types';
import { tempDir, useTinyArc } from './pipeline-helpers';

const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const { skip, model: tinyArc } = useTinyArc();
let model: ArcModel;
before(async () => {
  if (!skip) model = await tinyArc();
});

const REUSED = /the last scan is reused/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(req: Partial<AskRequest> & { question: string }, opts: Parameters<typeof ask>[2]): Promise<AskEvent[]> {
  const events: AskEvent[] = [];
  for await (const e of ask(model, { mode: 'mixed', maxNewTokens: 2, ...req }, opts)) events.push(e);
  const err = events.find((e) => e.type === 'error');
  assert.equal(err, undefined, JSON.stringify(err));
  return events;
}
const reused = (events: AskEvent[]) => events.some((e) => e.type === 'progress' && REUSED.test(e.message));
const includedPaths = (events: AskEvent[]) => events.flatMap((e) => (e.type === 'selection' ? e.included.map((c) => c.path) : []));

/** A watcher module the test drives: `fire(root)` sends an event batch, `fail(root)` an error. */
function fakeWatcher(opts: { refuse?: boolean } = {}) {
  const subs = new Map<string, (err: Error | null, events: { path: string; type: string }[]) => unknown>();
  let unsubscribed = 0;
  const mod: WatcherModule = {
    async subscribe(dir, fn) {
      if (opts.refuse) throw new Error('inotify_add_watch failed: No space left on device');
      subs.set(dir, fn);
      return {
        unsubscribe: async () => {
          subs.delete(dir);
          unsubscribed++;
        },
      };
    },
  };
  return {
    mod,
    fire: (root: string) => subs.get(root)?.(null, [{ path: path.join(root, 'x'), type: 'update' }]),
    fail: (root: string) => subs.get(root)?.(new Error('watcher died'), []),
    get subscribed() {
      return subs.size;
    },
    get unsubscribed() {
      return unsubscribed;
    },
  };
}

test('watched folder: once a question found the tree unchanged, the next reuses its scan; a file added after that is seen by the next question', { skip }, async () => {
  const t = tempDir('watch-real');
  const watch = new TreeWatch();
  try {
    const root = path.join(t.dir, 'ws');
    const cache = path.join(t.dir, 'cache');
    cpSync(WORKSPACE, root, { recursive: true });
    assert.ok(watch.available, '@parcel/watcher loads here');
    // Files younger than the racy margin are read again by every scan; a repository is older.
    await sleep(RACY_MS + 100);
    const opts = { cacheDir: cache, watch };
    const q = { question: 'Which file defines `parse_config`?', roots: [root] };
    const first = await run(q, opts); // reads and indexes every file; watching starts
    assert.ok(!reused(first));
    assert.equal(await watch.whenWatching([root]), true);
    const second = await run(q, opts); // the tree is unchanged: scanned, and the scan remembered
    assert.ok(!reused(second));
    const third = await run(q, opts);
    assert.ok(reused(third), 'nothing changed since the second question: its scan is reused');
    assert.deepEqual(includedPaths(third), includedPaths(second));

    writeFileSync(path.join(root, 'pkg', 'zebra.py'), 'def zebra_quokka_total(items):\n    return sum(i.price for i in items)\n');
    await sleep(800); // the watcher's debounce is 50 ms
    const q2 = { question: 'Which file defines `zebra_quokka_total`?', roots: [root] };
    const fourth = await run(q2, opts);
    assert.ok(!reused(fourth), 'an event arrived: the tree is scanned again');
    assert.ok(includedPaths(fourth).includes('pkg/zebra.py'), `the new file is read: ${includedPaths(fourth).join(', ')}`);
  } finally {
    await watch.dispose();
    t.cleanup();
  }
});

test('watched folder: questions with caller-given sources always scan, and a watch that cannot subscribe scans every time (said once)', { skip }, async () => {
  const t = tempDir('watch-fake');
  const refused = fakeWatcher({ refuse: true });
  const logs: string[] = [];
  const bad = new TreeWatch({ watcher: refused.mod, log: (l) => logs.push(l) });
  const fake = fakeWatcher();
  const good = new TreeWatch({ watcher: fake.mod });
  try {
    const root = path.join(t.dir, 'ws');
    cpSync(WORKSPACE, root, { recursive: true });
    await sleep(RACY_MS + 100);
    const q = { question: 'Which file defines `parse_config`?', roots: [root] };
    // A watcher that refuses: every question scans.
    const badOpts = { cacheDir: path.join(t.dir, 'c1'), watch: bad };
    for (let k = 0; k < 3; k++) {
      assert.ok(!reused(await run(q, badOpts)));
      await bad.whenWatching([root]);
    }
    assert.equal(logs.filter((l) => /file watching stopped/.test(l)).length, 1, logs.join('\n'));
    assert.match(logs.join('\n'), /No space left on device/);

    const opts = { cacheDir: path.join(t.dir, 'c2'), watch: good };
    await run(q, opts);
    assert.equal(await good.whenWatching([root]), true);
    await run(q, opts);
    assert.ok(reused(await run(q, opts)));
    // An event ends the trust; so does an error (then watching starts again later).
    fake.fire(realpathSync(root));
    assert.ok(!reused(await run(q, opts)), 'an event: scanned');
    assert.ok(reused(await run(q, opts)), 'quiet again: reused');
    // An unsaved editor's text is a caller-given source: never answered from a remembered scan.
    const withSource = await run({ ...q, sources: [{ path: 'pkg/extra.py', text: 'def parse_config():\n    return {}\n', origin: 'open' }] }, opts);
    assert.ok(!reused(withSource));
    const ranked = withSource.flatMap((e) => (e.type === 'selection' ? e.files.map((f) => f.path) : []));
    assert.ok(ranked.includes('pkg/extra.py'), `the caller-given text is among the files: ${ranked.join(', ')}`);
    await run(q, opts);
    assert.ok(reused(await run(q, opts)));
    fake.fail(realpathSync(root));
    assert.ok(!reused(await run(q, opts)));
    assert.ok(!reused(await run(q, opts)), 'a failed watch gives no tickets until it is retried');
  } finally {
    await bad.dispose();
    await good.dispose();
    t.cleanup();
  }
});

test('TreeWatch: tickets only once subscribed, quiet until an event, trust ends after trustMs, least recently used roots are dropped, dispose unsubscribes', async () => {
  const fake = fakeWatcher();
  let now = 1_000_000;
  const watch = new TreeWatch<string>({ watcher: fake.mod, trustMs: 60_000, maxRoots: 2, now: () => now });
  const a = path.resolve('/tmp/arc-watch-a');
  const b = path.resolve('/tmp/arc-watch-b');
  const c = path.resolve('/tmp/arc-watch-c');
  assert.equal(watch.ticket([a]), null, 'subscribing: no ticket yet');
  assert.equal(await watch.whenWatching([a]), true);
  const t1 = watch.ticket([a]);
  assert.ok(t1);
  watch.remember('k', t1, 'scan 1');
  assert.equal(watch.recall('k'), 'scan 1');
  fake.fire(a);
  assert.equal(watch.quiet(t1), false);
  assert.equal(watch.recall('k'), undefined, 'an event drops what was remembered');
  const t2 = watch.ticket([a]);
  assert.ok(t2);
  watch.remember('k', t2, 'scan 2');
  now += 59_000;
  assert.equal(watch.recall('k'), 'scan 2');
  now += 2_000;
  assert.equal(watch.recall('k'), undefined, 'older than trustMs: scanned again');
  // Two roots at most: asking about a third drops the least recently used (a).
  await watch.whenWatching([b]);
  now += 1;
  await watch.whenWatching([c]);
  assert.equal(watch.watchedRoots, 2);
  assert.equal(fake.subscribed, 2);
  assert.equal(watch.ticket([a]), null, 'a was dropped: subscribing again');
  await watch.dispose();
  assert.equal(fake.subscribed, 0);
  assert.equal(watch.ticket([b]), null, 'a disposed watch gives no tickets');
});
