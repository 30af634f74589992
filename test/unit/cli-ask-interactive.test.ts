// `arc-context ask --interactive`: a session over one folder on the real tiny-arc package. One
// question per line of standard input, each answered as a one-shot `ask --json` answers it; a
// failed question is reported (a JSON error line) and the session goes on; end of input ends it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cli, cliSession } from './cli-helper';
import { hasTinyArc, tempDir, TINY_ARC } from './pipeline-helpers';

const skip = hasTinyArc() ? false : 'test/fixtures/tiny-arc is missing';
const WORKSPACE = path.resolve(__dirname, '../fixtures/workspace-py');
const QUESTIONS = ['Which file defines `render_report`?', 'What does `low_stock` return?'];
const COMMON = ['--model', TINY_ARC, '--provider', 'cpu', '--threads', '1', '--max-new-tokens', '3', '--json'];

/** Waits until the session has printed `n` lines. */
async function linesOut(s: ReturnType<typeof cliSession>, n: number): Promise<string[]> {
  for (let waited = 0; s.lines().length < n; waited += 20) {
    if (waited > 120_000) throw new Error(`no answer after 2 minutes; stderr: ${s.err()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return s.lines();
}

test('ask --interactive answers each line as a one-shot ask does; a failed question is reported and the session goes on', { skip, timeout: 300_000 }, async () => {
  const t = tempDir('ask-session');
  try {
    const root = path.join(t.dir, 'ws');
    cpSync(WORKSPACE, root, { recursive: true });
    const cache = path.join(t.dir, 'cache');
    const oneShot = [];
    for (const q of QUESTIONS) {
      const r = await cli('ask', '--root', root, '--cache', cache, ...COMMON, q);
      assert.equal(r.code, 0, r.err);
      oneShot.push(JSON.parse(r.out) as { answer: string; citations: unknown[] });
    }
    const s = cliSession('ask', '--root', root, '--cache', cache, '--interactive', ...COMMON);
    s.stdin.write(`${QUESTIONS[0]}\n\n   \n${QUESTIONS[1]}\n`); // blank lines are not questions
    const [a, b] = (await linesOut(s, 2)).map((l) => JSON.parse(l) as { answer: string; citations: unknown[] });
    assert.deepEqual([a.answer, a.citations], [oneShot[0].answer, oneShot[0].citations]);
    assert.deepEqual([b.answer, b.citations], [oneShot[1].answer, oneShot[1].citations]);
    // The folder emptied under the session: that question fails, the session does not.
    rmSync(root, { recursive: true });
    mkdirSync(root);
    s.stdin.write(`${QUESTIONS[0]}\n`);
    const failed = JSON.parse((await linesOut(s, 3))[2]) as { question: string; error: { code: string; message: string } };
    assert.equal(failed.question, QUESTIONS[0]);
    assert.equal(failed.error.code, 'no-sources', failed.error.message);
    cpSync(WORKSPACE, root, { recursive: true });
    s.stdin.write(`${QUESTIONS[1]}\n`);
    const again = JSON.parse((await linesOut(s, 4))[3]) as { answer: string; citations: unknown[] };
    assert.deepEqual([again.answer, again.citations], [oneShot[1].answer, oneShot[1].citations]);
    s.stdin.end();
    assert.equal(await s.done, 1, 'a question failed: exit code 1');
  } finally {
    t.cleanup();
  }
});

test('ask --interactive needs --root and takes no question argument; an empty session exits 0', { skip }, async () => {
  const noRoot = await cli('ask', '--interactive', ...COMMON);
  assert.equal(noRoot.code, 2);
  assert.match(noRoot.err, /--interactive needs --root/);
  const withQuestion = await cli('ask', '--root', WORKSPACE, '--interactive', ...COMMON, QUESTIONS[0]);
  assert.equal(withQuestion.code, 2);
  assert.match(withQuestion.err, /from standard input/);
  const s = cliSession('ask', '--root', WORKSPACE, '--interactive', '--no-cache', ...COMMON);
  s.stdin.end();
  assert.equal(await s.done, 0);
  assert.deepEqual(s.lines(), []);
});

/** Waits until `test` holds, polling. */
async function until(test: () => boolean, what: () => string): Promise<void> {
  for (let waited = 0; !test(); waited += 20) {
    if (waited > 120_000) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('ask --interactive: Ctrl-C cancels the answer under way and the session goes on; at the prompt it ends the session (130)', { skip, timeout: 300_000 }, async () => {
  const streaming = ['--model', TINY_ARC, '--provider', 'cpu', '--threads', '1', '--max-new-tokens', '48', '--no-cache'];
  const s = cliSession('ask', '--root', WORKSPACE, '--interactive', ...streaming);
  // The first piece of the first answer: the answer is under way (what the CLI's SIGINT handler sees).
  s.stdout.once('data', () => process.emit('SIGINT'));
  s.stdin.write(`${QUESTIONS[0]}\n`);
  await until(() => /cancelled/.test(s.err()), s.err);
  const before = s.err().length;
  s.stdin.write(`${QUESTIONS[1]}\n`);
  // Answered in full: its citations follow it on standard error.
  await until(() => /^ {2}\S+:\d+-\d+$/m.test(s.err().slice(before)), s.err);
  assert.doesNotMatch(s.err().slice(before), /cancelled/);
  process.emit('SIGINT'); // at the prompt
  assert.equal(await s.done, 130);
});

test('a real Ctrl-C (SIGINT) at the session prompt ends the process with 130, not by the signal (a dependency re-raises it when no listener is left)', { skip, timeout: 300_000 }, async () => {
  const t = tempDir('ask-sigint');
  try {
    const args = ['--import', 'tsx', path.resolve(__dirname, '../../src/cli.ts'), 'ask', '--root', WORKSPACE, '--cache', t.dir, '--interactive', ...COMMON];
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    child.stdin.write(`${QUESTIONS[0]}\n`);
    // Answered (its writes took the cache's lock, which loads the exit hook): back at the prompt.
    await until(() => out.includes('\n'), () => err);
    child.kill('SIGINT');
    assert.deepEqual(await exited, { code: 130, signal: null }, err);
  } finally {
    t.cleanup();
  }
});
