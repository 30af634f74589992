// Selection under a decoder budget: BM25 ranking, boosts, budget filling, document order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeTerms, quotedIdentifiers, selectChunks, type SelectItem } from '../../src/core/context/select';

const item = (path: string, body: string, cost = 10, origin: SelectItem['origin'] = 'workspace'): SelectItem => ({ path, body, cost, origin });

test('everything is kept when it fits', () => {
  const items = [item('a.py', 'x = 1\n'), item('b.py', 'y = 2\n')];
  assert.deepEqual(selectChunks(items, 'what?', 20), { included: [0, 1], leftOut: [], used: 20, ranked: [0, 1] });
});

test('the chunk defining a quoted identifier wins over ones that only use it', () => {
  const items = [
    item('a.py', 'from util import parse_config\nparse_config(path)\nparse_config(other)\n'),
    item('b.py', 'def unrelated():\n    return 2\n'),
    item('util.py', 'def parse_config(path, strict=False):\n    return load(path)\n'),
    item('c.py', 'result = parse_config(x)\n'),
  ];
  const sel = selectChunks(items, 'Which file defines `parse_config`?', 10);
  assert.deepEqual(sel.included, [2]);
  const two = selectChunks(items, 'Which file defines `parse_config`?', 20);
  assert.deepEqual(two.included, [0, 2], 'kept in document order');
  assert.deepEqual(two.leftOut, [1, 3]);
});

test('a top-level constant counts as a definition', () => {
  const items = [item('a.py', 'print(MAX_SIZE)\n'), item('b.py', 'MAX_SIZE = 4096\n')];
  assert.deepEqual(selectChunks(items, 'What is the value of `MAX_SIZE`?', 10).included, [1]);
});

test('selected and explicit sources are preferred when the question does not decide', () => {
  const items = [item('a.py', 'alpha\n'), item('b.py', 'beta\n', 10, 'open'), item('c.py', 'gamma\n', 10, 'selection'), item('d.py', 'delta\n', 10, 'explicit')];
  assert.deepEqual(selectChunks(items, 'explain this', 20).included, [2, 3]);
  assert.deepEqual(selectChunks(items, 'explain this', 30).included, [1, 2, 3]);
});

test('lexical match on words and identifier parts ranks chunks', () => {
  const items = [item('net/http.ts', 'export function sendRequest(url) {}\n'), item('db.ts', 'export function openDatabase() {}\n'), item('fs.ts', 'export function readFile() {}\n')];
  assert.deepEqual(selectChunks(items, 'how is the database opened?', 10).included, [1]);
  assert.deepEqual(selectChunks(items, 'where do we send a request over http', 10).included, [0]);
});

test('budget is never exceeded; a big chunk is passed over for smaller ones that fit', () => {
  const items = [item('a.py', '`foo` foo foo\n', 50), item('b.py', 'foo\n', 20), item('c.py', 'foo\n', 20), item('d.py', 'bar\n', 5)];
  const sel = selectChunks(items, 'what about foo', 45);
  assert.ok(sel.used <= 45);
  assert.deepEqual(sel.included, [1, 2, 3]);
  assert.equal(sel.used, 45);
  assert.deepEqual(selectChunks(items, 'q', 4).included, []);
});

test('question parsing helpers', () => {
  assert.deepEqual(quotedIdentifiers('Which file defines `foo` and `Bar.baz`?'), ['foo', 'Bar.baz']);
  assert.deepEqual(codeTerms('parseHTTPConfig x_y'), ['parsehttpconfig', 'parse', 'http', 'config', 'x_y', 'x', 'y']);
});
