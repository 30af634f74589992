// Group rule (reference split_integer(L, -x)), pooling matrix and batch planning.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_BATCH_POLICY, buildEncoderFeeds, groupRanges, groupSizes, planBatches } from '../../src/core/encoder';

/** Independent formulation: deal L tokens round-robin into m groups (larger ones come first). */
function dealt(L: number, x: number): number[] {
  const m = L < x ? 1 : L % x === 0 ? L / x : Math.floor(L / x) + 1;
  const sizes = new Array<number>(m).fill(0);
  for (let t = 0; t < L; t++) sizes[t % m]!++;
  return sizes;
}

test('group sizes for L = 1..40 at x = 4 and x = 8 follow the reference rule', () => {
  for (const x of [4, 8]) {
    for (let L = 1; L <= 40; L++) {
      const s = groupSizes(L, x);
      assert.deepEqual(s, dealt(L, x), `x=${x} L=${L}`);
      assert.equal(s.reduce((a, b) => a + b, 0), L);
      if (L < x) assert.deepEqual(s, [L]);
      else if (L % x === 0) assert.deepEqual(s, new Array(L / x).fill(x));
      else assert.equal(s.length, Math.floor(L / x) + 1);
    }
  }
});

test('group sizes: the documented examples', () => {
  assert.deepEqual(groupSizes(100, 8), [...new Array(9).fill(8), ...new Array(4).fill(7)]);
  assert.deepEqual(groupSizes(17, 4), [4, 4, 3, 3, 3]);
  assert.deepEqual(groupSizes(17, 8), [6, 6, 5]);
  assert.deepEqual(groupSizes(3, 4), [3]);
  assert.deepEqual(groupSizes(16, 4), [4, 4, 4, 4]);
  assert.deepEqual(groupSizes(0, 4), []);
  assert.throws(() => groupSizes(5, 0), RangeError);
});

test('group ranges tile the chunk', () => {
  assert.deepEqual(groupRanges([4, 4, 3, 3, 3]), [[0, 4], [4, 8], [8, 11], [11, 14], [14, 17]]);
});

test('pool matrix rows average their group, padded rows and columns are zero', () => {
  const f = buildEncoderFeeds([[5, 6, 7, 8, 9], [1, 2]], 4);
  assert.equal(f.length, 5);
  assert.equal(f.groups, 2);
  assert.deepEqual(Array.from(f.attentionMask), [1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 0n, 0n]);
  assert.deepEqual(Array.from(f.inputIds.subarray(0, 7)), [5n, 6n, 7n, 8n, 9n, 1n, 2n]);
  const row = (b: number, g: number): number[] => Array.from(f.poolMatrix.subarray((b * 2 + g) * 5, (b * 2 + g + 1) * 5));
  const third = Math.fround(1 / 3);
  assert.deepEqual(row(0, 0), [third, third, third, 0, 0]); // 5 tokens at x=4: groups 3,2
  assert.deepEqual(row(0, 1), [0, 0, 0, 0.5, 0.5]);
  assert.deepEqual(row(1, 0), [0.5, 0.5, 0, 0, 0]); // 2 tokens: one group
  assert.deepEqual(row(1, 1), [0, 0, 0, 0, 0]); // padded group
});

test('batch planning keeps every chunk once, within the policy, longest first', () => {
  const lengths = [64, 3, 60, 64, 17, 62, 5, 64, 40, 1];
  const batches = planBatches(lengths);
  assert.deepEqual(batches.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
  for (const b of batches) {
    const lens = b.map((i) => lengths[i]!);
    const longest = Math.max(...lens);
    assert.ok(b.length <= DEFAULT_BATCH_POLICY.maxBatchSize);
    assert.ok(b.length * longest <= DEFAULT_BATCH_POLICY.maxBatchTokens);
    assert.ok(lens.reduce((a, c) => a + c, 0) >= DEFAULT_BATCH_POLICY.minFill * b.length * longest, `fill of ${lens}`);
  }
  // Worked by hand: 64,64,64,62,60,40,17 fill 371 of 7x64 (>= 80%); adding 5 would drop below.
  assert.deepEqual(batches, [[0, 3, 7, 5, 2, 8, 4], [6, 1], [9]]);
  assert.deepEqual(planBatches([10, 10, 10], { maxBatchTokens: 4096, maxBatchSize: 2, minFill: 0 }), [[0, 1], [2]]);
});
