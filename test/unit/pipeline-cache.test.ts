// The compressed-vector cache on a real disk: round trip, corruption recovery, LRU eviction and
// several processes sharing one directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { USAGE_HINT_TTL_MS, VectorCache, cacheKey, encodeEntry, writeStoreEntry } from '../../src/core/context/cache';
import { childKey, valueFor } from './pipeline-cache-child';
import { runTsChild, tempDir } from './pipeline-helpers';

test('round trip keeps vectors, groups and dims exactly', async () => {
  const t = tempDir('cache');
  try {
    const cache = new VectorCache(t.dir);
    const v = valueFor(3);
    await cache.put(childKey(3), v);
    const got = await cache.get(childKey(3), 16);
    assert.ok(got);
    assert.deepEqual([got.count, got.dim, got.groups], [v.count, v.dim, v.groups]);
    assert.deepEqual(Array.from(got.vectors), Array.from(v.vectors));
    assert.equal(await cache.get(childKey(4)), null, 'unknown key is a miss');
    assert.notEqual(cacheKey('model-a', 'h'), cacheKey('model-b', 'h'), 'the model is part of the key');
    assert.equal(readdirSync(path.dirname(cache.entryPath(childKey(3)))).filter((n) => n.endsWith('.tmp')).length, 0, 'no temp files left');
  } finally {
    t.cleanup();
  }
});

const corruptions: [string, (file: string) => void, RegExp][] = [
  ['truncated payload', (f) => truncateSync(f, statSync(f).size - 7), /size/],
  ['truncated header', (f) => truncateSync(f, 20), /truncated/],
  ['flipped payload byte', (f) => flip(f, statSync(f).size - 3), /checksum/],
  ['flipped count field', (f) => flip(f, 12), /size|checksum/],
  ['wrong version', (f) => flip(f, 4), /version/],
  ['empty file', (f) => writeFileSync(f, ''), /truncated/],
];

function flip(file: string, offset: number): void {
  const buf = readFileSync(file);
  buf[offset] ^= 0x5a;
  writeFileSync(file, buf);
}

for (const [name, damage, why] of corruptions) {
  test(`corrupt entry (${name}) is logged, deleted and never served`, async () => {
    const t = tempDir('corrupt');
    try {
      const logs: string[] = [];
      const cache = new VectorCache(t.dir, { log: (l) => logs.push(l) });
      const key = childKey(1);
      await cache.put(key, valueFor(1));
      damage(cache.entryPath(key));
      assert.equal(await cache.get(key, 16), null);
      assert.equal(logs.length, 1);
      assert.match(logs[0], /corrupt entry/);
      assert.match(logs[0], why);
      assert.equal(existsSync(cache.entryPath(key)), false, 'the bad entry is removed');
      await cache.put(key, valueFor(1)); // the pipeline recomputes and stores again
      assert.deepEqual(Array.from((await cache.get(key, 16))?.vectors ?? []), Array.from(valueFor(1).vectors));
    } finally {
      t.cleanup();
    }
  });
}

test('an entry stored under another key or dim is refused', async () => {
  const t = tempDir('misplaced');
  try {
    const logs: string[] = [];
    const cache = new VectorCache(t.dir, { log: (l) => logs.push(l) });
    await cache.put(childKey(2), valueFor(2));
    assert.equal(await cache.get(childKey(2), 32), null);
    assert.match(logs[0], /dim 16, expected 32/);
    mkdirSync(path.dirname(cache.entryPath(childKey(5))), { recursive: true });
    writeFileSync(cache.entryPath(childKey(5)), encodeEntry(childKey(6), valueFor(6)));
    assert.equal(await cache.get(childKey(5)), null);
    assert.match(logs[1], /key mismatch/);
  } finally {
    t.cleanup();
  }
});

test('eviction removes least recently used entries first; reads count as use', async () => {
  const t = tempDir('lru');
  try {
    const size = encodeEntry(childKey(0), valueFor(0)).length; // valueFor(0) and (5) have the same size
    const cache = new VectorCache(t.dir, { maxBytes: size * 4 });
    const keys = [0, 5, 10, 15, 20, 25].map((i) => ({ i, key: childKey(i) }));
    const base = Date.now() / 1000 - 1000;
    for (const [n, { i, key }] of keys.entries()) {
      await cache.put(key, valueFor(0));
      utimesSync(cache.entryPath(key), base + n, base + n); // oldest first
    }
    await cache.get(keys[0].key); // the oldest becomes the newest
    const r = await cache.evict();
    assert.equal(r.ran, true);
    assert.ok(r.bytes <= size * 4 * 0.9, `kept ${r.bytes} bytes`);
    const alive = keys.filter(({ key }) => existsSync(cache.entryPath(key))).map(({ i }) => i);
    assert.deepEqual(alive, [0, 20, 25]);
    const under = await cache.evict();
    assert.equal(under.removed, 0, 'nothing more to do under the cap');
  } finally {
    t.cleanup();
  }
});

function runChild(dir: string, seed: number, rounds: number, maxBytes: number): Promise<{ hits: number; wrong: number; logs: string[] }> {
  return runTsChild('pipeline-cache-child.ts', [dir, seed, rounds, maxBytes]);
}

test('four processes writing, reading and evicting one directory never see a bad entry', { timeout: 120_000 }, async () => {
  const t = tempDir('concurrent');
  try {
    const entry = encodeEntry(childKey(0), valueFor(0)).length;
    // A cap of about half the key set keeps eviction running while others read and write.
    const results = await Promise.all([0, 1, 2, 3].map((s) => runChild(t.dir, s, 15, entry * 6)));
    for (const r of results) {
      assert.equal(r.wrong, 0, 'a reader got vectors that differ from what was written');
      assert.deepEqual(r.logs.filter((l) => /corrupt|could not store/.test(l)), [], 'no corrupt entries or failed writes');
    }
    assert.ok(results.reduce((s, r) => s + r.hits, 0) > 0, 'processes shared entries');
    const cache = new VectorCache(t.dir);
    // Everything left on disk verifies.
    for (let i = 0; i < 12; i++) {
      const got = await cache.get(childKey(i), 16);
      if (got) assert.deepEqual(Array.from(got.vectors), Array.from(valueFor(i).vectors));
    }
  } finally {
    t.cleanup();
  }
});

test('writeStoreEntry creates a missing shard folder, also when it is removed between writes, and leaves no temp files', async () => {
  const t = tempDir('store-write');
  try {
    const a = path.join(t.dir, 'store', 'ab', 'one.arcv');
    const b = path.join(t.dir, 'store', 'ab', 'two.arcv');
    await writeStoreEntry(a, Buffer.from('first'));
    await writeStoreEntry(b, [Buffer.from('sec'), Buffer.from('ond')]);
    assert.equal(readFileSync(a, 'utf8'), 'first');
    assert.equal(readFileSync(b, 'utf8'), 'second');
    rmSync(path.join(t.dir, 'store'), { recursive: true }); // e.g. another process cleared the cache
    await writeStoreEntry(a, [Buffer.from('again')]);
    assert.equal(readFileSync(a, 'utf8'), 'again');
    assert.deepEqual(readdirSync(path.dirname(a)), ['one.arcv']);
  } finally {
    t.cleanup();
  }
});

test('after a write, a store is scanned for eviction only when its usage hint says it may be over the cap (or the hint is stale or missing); other processes see the hint', async () => {
  const t = tempDir('usage-hint');
  try {
    const size = encodeEntry(childKey(0), valueFor(0)).length;
    const cache = new VectorCache(t.dir, { maxBytes: size * 4 });
    const hintFile = path.join(cache.root, '.usage.json');
    const root = path.dirname(hintFile);
    await cache.put(childKey(0), valueFor(0));
    const first = await cache.evictIfGrown(); // no hint yet: a scan, which leaves one
    assert.equal(first?.ran, true);
    assert.deepEqual(JSON.parse(readFileSync(hintFile, 'utf8')).bytes, size);
    // A second instance (as another process): under the cap by the hint, no scan, the hint grows.
    const other = new VectorCache(t.dir, { maxBytes: size * 4 });
    for (const i of [5, 10]) await other.put(childKey(i), valueFor(0));
    assert.equal(await other.evictIfGrown(), null);
    assert.equal(JSON.parse(readFileSync(hintFile, 'utf8')).bytes, 3 * size);
    assert.equal(await other.evictIfGrown(), null, 'nothing written since: nothing to do');
    // Two more entries take it over the cap: scanned and trimmed to the low-water mark.
    for (const i of [15, 20]) await cache.put(childKey(i), valueFor(0));
    const over = await cache.evictIfGrown();
    assert.equal(over?.ran, true);
    assert.ok((over?.removed ?? 0) > 0 && (over?.bytes ?? Infinity) <= size * 4 * 0.9, JSON.stringify(over));
    assert.equal(JSON.parse(readFileSync(hintFile, 'utf8')).bytes, over?.bytes);
    // A stale or broken hint is not trusted: the next write scans.
    for (const bad of [JSON.stringify({ bytes: 0, scannedAtMs: Date.now() - USAGE_HINT_TTL_MS - 1 }), 'not json']) {
      writeFileSync(hintFile, bad);
      await cache.put(childKey(25), valueFor(0));
      assert.equal((await cache.evictIfGrown())?.ran, true, bad);
    }
    assert.deepEqual(readdirSync(root).filter((n) => !/^[0-9a-f]{2}$/.test(n)).sort(), ['.evict.lock', '.usage.json'].filter((n) => existsSync(path.join(root, n))));
  } finally {
    t.cleanup();
  }
});
