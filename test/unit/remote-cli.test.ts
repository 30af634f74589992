// `arc-context ask --backend vllm|sglang --decoder-url URL` through tools/engine_test_server.py
// (the stand-in for vLLM / SGLang): same answers as the in-process decoder, the backend named in
// the figures, and usage errors for incomplete settings.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engineFrom } from '../../src/cli/engineOptions';
import { cli } from './cli-helper';
import { REPO } from './core-fixture';
import { NO_TORCH } from './remote-helpers';
import { startServer, type TestServer } from './remote-server';

const WORKSPACE = join(REPO, 'test', 'e2e', 'workspace');

describe('ask CLI on a serving engine', { skip: NO_TORCH }, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(['--max-model-len', '1024']);
  });
  after(async () => {
    await server?.stop();
  });

  for (const question of ['Which file defines `applyDiscount`?', 'What is the value of `LOW_STOCK_THRESHOLD`?']) {
    test(`--root, --json: "${question}" answers as the in-process decoder does (vllm and sglang)`, async () => {
      const base = ['ask', '--no-cache', '--threads', '1', '--root', WORKSPACE, '--json', question];
      // An engine picks its own tokens (free decoding): the in-process reference decodes freely too.
      const local = await cli(...base.slice(0, -1), '--decoding', 'free', question);
      assert.equal(local.code, 0, local.err);
      const want = JSON.parse(local.out) as { answer: string; stats: { decoderBackend?: string } };
      assert.equal(want.stats.decoderBackend, undefined);
      for (const kind of ['vllm', 'sglang']) {
        const r = await cli(...base.slice(0, -2), '--backend', kind, '--decoder-url', server.url, '--json', question);
        assert.equal(r.code, 0, r.err);
        const got = JSON.parse(r.out) as { answer: string; stats: { decoderBackend: string; serverTtftMs: number } };
        assert.equal(got.answer, want.answer);
        assert.ok(got.answer.length > 0);
        assert.equal(got.stats.decoderBackend, `${kind} @ ${new URL(server.url).host}`);
        assert.ok(got.stats.serverTtftMs > 0);
      }
    });
  }

  test('--file with --served-model and -v: the figures line names the decoder server', async () => {
    const file = join(WORKSPACE, 'src', 'pricing.ts');
    const q = 'What is the value of `TAX_RATE`?';
    const local = await cli('ask', '--threads', '1', '--decoding', 'free', '--file', file, q);
    const r = await cli('ask', '--threads', '1', '--file', file, '--backend', 'vllm', '--decoder-url', `${server.url}/v1`, '--served-model', 'arc-tiny-code', '-v', q);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, local.out);
    assert.match(r.err, /mixed, cpu, decoder vllm @ 127\.0\.0\.1:\d+ \(server first token \d+ ms\)/);
  });

  test('a server error is one clear line and exit code 1', async () => {
    await server.control({ fail_next: { status: 500, body: 'CUDA out of memory' } });
    const r = await cli('ask', '--no-cache', '--threads', '1', '--root', WORKSPACE, '--backend', 'sglang', '--decoder-url', server.url, 'Which file defines `slugify`?');
    assert.equal(r.code, 1);
    assert.match(r.err, /The sglang server at 127\.0\.0\.1:\d+ answered 500: CUDA out of memory/);
  });
});

test('engine settings from flags and environment; nothing is configured by default', () => {
  assert.equal(engineFrom({}, {}), null);
  assert.equal(engineFrom({ backend: 'onnx' }, { ARC_DECODER_URL: 'http://x:1' }), null);
  assert.deepEqual(engineFrom({ backend: 'vllm', 'decoder-url': 'http://gpu:8000' }, { ARC_DECODER_API_KEY: 'k' }), { kind: 'vllm', url: 'http://gpu:8000', apiKey: 'k' });
  assert.deepEqual(engineFrom({}, { ARC_DECODER_BACKEND: 'sglang', ARC_DECODER_URL: 'https://gpu:30000', ARC_SERVED_MODEL: 'm' }), { kind: 'sglang', url: 'https://gpu:30000', servedModel: 'm' });
  assert.throws(() => engineFrom({ backend: 'vllm' }, {}), /--backend vllm needs --decoder-url URL/);
  assert.throws(() => engineFrom({ 'decoder-url': 'http://x:1' }, {}), /--decoder-url needs --backend vllm or --backend sglang/);
  assert.throws(() => engineFrom({ backend: 'tgi', 'decoder-url': 'http://x:1' }, {}), /--backend must be onnx, vllm or sglang/);
  assert.throws(() => engineFrom({ backend: 'vllm', 'decoder-url': 'gpu:8000' }, {}), /must start with http/);
});
