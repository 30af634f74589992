import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeByPath } from '../../src/cli/eval';

test('eval joins excerpts of one file so the answer excerpt is not dropped', () => {
  const merged = mergeByPath([
    { path: 'a.py', text: 'X = 1' },
    { path: 'b.py', text: 'def f(a):\n    pass\n' },
    { path: 'a.py', text: 'Y = 2\n' },
  ]);
  assert.deepEqual(merged, [
    { path: 'a.py', text: 'X = 1\nY = 2\n' },
    { path: 'b.py', text: 'def f(a):\n    pass\n' },
  ]);
});
