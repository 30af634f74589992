// The engine decoder (vLLM prompt_embeds / SGLang input_embeds) against tools/engine_test_server.py,
// which stands in for vLLM and SGLang (they do not install here): it torch.loads the prefix and
// runs the bundled decoder in PyTorch. Answers through it must equal the in-process ONNX answers
// on the same prefix (greedy), streamed and not; every error path ends in a clear message.
import { strict as assert } from 'node:assert';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ArcModel, PrefixPart } from '../../src/core/api';
import { ask } from '../../src/core/ask';
import { loadModel } from '../../src/core/model';
import { buildPrefix } from '../../src/core/prompt';
import { withEngineDecoder } from '../../src/core/remote/backend';
import type { EngineConfig } from '../../src/core/remote/engine';
import type { AskEvent, AskRequest, AskStats } from '../../src/core/types';
import { REPO } from './core-fixture';
import { NO_TORCH } from './remote-helpers';
import { DEFAULT_PACKAGE, startServer, type TestServer } from './remote-server';

const WORKSPACE = join(REPO, 'test', 'e2e', 'workspace');
const QUESTIONS = [
  'Which file defines `applyDiscount`?',
  'What are the parameters of `applyDiscount`?',
  'What is the value of `LOW_STOCK_THRESHOLD`?',
  'What is the value of `MAX_SLUG_LENGTH`?',
  'Which file defines `slugify`?',
  'What are the parameters of `restock`?',
];

interface Answer {
  answer: string;
  stats: AskStats | null;
  error: string | null;
}

async function answer(model: ArcModel, req: Partial<AskRequest> & { question: string }, opts: Parameters<typeof ask>[2] = {}): Promise<Answer> {
  let out = '';
  let stats: AskStats | null = null;
  let error: string | null = null;
  // Free decoding: an engine picks its own tokens (extractive decoding is the in-process decoder's).
  for await (const e of ask(model, { mode: 'mixed', roots: [WORKSPACE], extractive: false, ...req }, opts) as AsyncGenerator<AskEvent>) {
    if (e.type === 'token') out += e.text;
    else if (e.type === 'done') stats = e.stats;
    else if (e.type === 'error') error = `${e.code}: ${e.message}`;
  }
  return { answer: out, stats, error };
}

/** Reads every piece a generate() call yields; the error it ends with, if any. */
async function drain(model: ArcModel, prefix: PrefixPart[], opts: Parameters<NonNullable<ArcModel['decoder']>['generate']>[1]): Promise<{ text: string; error: (Error & { code?: string }) | null }> {
  let text = '';
  try {
    for await (const piece of model.decoder!.generate(prefix, opts)) text += piece;
    return { text, error: null };
  } catch (e) {
    return { text, error: e as Error & { code?: string } };
  }
}

describe('engine decoder through the vLLM / SGLang stand-in', { skip: NO_TORCH }, () => {
  let model: ArcModel;
  let server: TestServer;
  let cacheDir: string;
  // The server's window is larger than the package's, like a served Llama 3.1 (128k) with a package window of a few thousand.
  before(async () => {
    [model, server] = await Promise.all([loadModel(DEFAULT_PACKAGE, { provider: 'cpu', threads: 1 }), startServer(['--max-model-len', '1024'])]);
    cacheDir = mkdtempSync(join(tmpdir(), 'arc-remote-cache-'));
  });
  after(async () => {
    await server?.stop();
    await model?.dispose();
    rmSync(cacheDir, { recursive: true, force: true });
  });
  const engine = (over: Partial<EngineConfig> = {}): EngineConfig => ({ kind: 'vllm', url: server.url, servedModel: 'arc-tiny-code', ...over });

  for (const [kind, stream] of [['vllm', true], ['vllm', false], ['sglang', true], ['sglang', false]] as const) {
    test(`${kind} ${stream ? 'streamed' : 'not streamed'}: answers equal the in-process decoder's on the e2e workspace questions (mixed and arc mode, greedy)`, async (t) => {
      // Not streamed vLLM also finds the served model itself (/v1/models), as with an empty setting.
      const remote = withEngineDecoder(model, engine({ kind, stream, ...(kind === 'vllm' && !stream ? { servedModel: '' } : {}) }));
      let compared = 0;
      const answers: string[] = [];
      for (const question of QUESTIONS) {
        for (const mode of ['mixed', 'arc'] as const) {
          const local = await answer(model, { question, mode }, { cacheDir });
          const viaEngine = await answer(remote, { question, mode }, { cacheDir });
          assert.equal(local.error, null);
          assert.equal(viaEngine.error, null);
          assert.equal(viaEngine.answer, local.answer, `${kind} ${mode} "${question}"`);
          assert.equal(viaEngine.stats!.contextPositions, local.stats!.contextPositions);
          assert.equal(viaEngine.stats!.generatedTokens, local.stats!.generatedTokens, `${kind} ${mode} "${question}" token count`);
          assert.match(viaEngine.stats!.decoderBackend ?? '', new RegExp(`^${kind} @ 127\\.0\\.0\\.1:\\d+$`));
          assert.ok((viaEngine.stats!.serverTtftMs ?? -1) > 0);
          assert.equal(local.stats!.decoderBackend, undefined);
          answers.push(`${mode} ${question} -> ${JSON.stringify(viaEngine.answer)}`);
          compared++;
        }
      }
      assert.equal(compared, QUESTIONS.length * 2);
      // Equal answers must not be trivially equal: the model answers (rightly or not) every question.
      assert.ok(answers.every((a) => !a.endsWith('-> ""')), answers.join('\n'));
      t.diagnostic(answers.join(' | '));
    });
  }

  test('a package without decoder.onnx (loaded with decoderGraph: false) answers through the engine as the full package does in-process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arc-embed-only-'));
    try {
      for (const f of ['arc-model.json', 'encoder.onnx', 'embed.onnx', 'tokenizer.json']) cpSync(join(DEFAULT_PACKAGE, f), join(dir, f));
      await assert.rejects(loadModel(dir, { provider: 'cpu', threads: 1 }), /decoder\.onnx/);
      const embedOnly = await loadModel(dir, { provider: 'cpu', threads: 1, decoderGraph: false });
      try {
        const question = 'What is the value of `LOW_STOCK_THRESHOLD`?';
        const cannot = await answer(embedOnly, { question, mode: 'arc' });
        assert.match(cannot.error ?? '', /^model-missing: This model was loaded without its decoder graph/);
        for (const kind of ['vllm', 'sglang'] as const) {
          const remote = withEngineDecoder(embedOnly, engine({ kind }));
          for (const mode of ['mixed', 'arc'] as const) {
            const local = await answer(model, { question, mode }, { cacheDir });
            const viaEngine = await answer(remote, { question, mode }, { cacheDir });
            assert.equal(viaEngine.error, null);
            assert.equal(viaEngine.answer, local.answer);
          }
        }
      } finally {
        await embedOnly.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stop strings: the answer ends before the first stop string, as in-process, for a stop that occurs mid-answer', async () => {
    const prefix = buildPrefix(model, 'none', [], 'Which file defines `applyDiscount`?').parts;
    const opts = { maxNewTokens: 24, stop: [] as string[] };
    const local = await drain(model, prefix, opts);
    assert.ok(local.text.length > 4, `local answer "${local.text}"`);
    const stop = local.text.slice(2, 4);
    const localStopped = await drain(model, prefix, { ...opts, stop: [stop] });
    for (const kind of ['vllm', 'sglang'] as const) {
      const remote = withEngineDecoder(model, engine({ kind }));
      const r = await drain(remote, prefix, { ...opts, stop: [stop] });
      assert.equal(r.error, null);
      assert.equal(r.text, localStopped.text);
      assert.ok(!r.text.includes(stop));
    }
  });

  test('cancellation closes the request: the server sees the client leave and stops generating', async () => {
    await server.control({ token_delay_s: 0.15 });
    try {
      const before = (await server.log()).length;
      const remote = withEngineDecoder(model, engine());
      const prefix = buildPrefix(model, 'none', [], 'Which file defines `applyDiscount`?').parts;
      const ctrl = new AbortController();
      let pieces = 0;
      let error: (Error & { code?: string }) | null = null;
      try {
        for await (const _ of remote.decoder!.generate(prefix, { maxNewTokens: 60, stop: [], signal: ctrl.signal })) {
          pieces++;
          ctrl.abort();
        }
      } catch (e) {
        error = e as Error & { code?: string };
      }
      assert.equal(pieces, 1);
      assert.equal(error?.code, 'cancelled');
      let entry: { outcome: string } | undefined;
      for (let i = 0; i < 40 && !entry; i++) {
        await new Promise((r) => setTimeout(r, 100));
        entry = (await server.log()).slice(before).find((e) => e.outcome === 'client-closed');
      }
      assert.ok(entry, `server log: ${JSON.stringify((await server.log()).slice(before))}`);
    } finally {
      await server.control({ token_delay_s: 0 });
    }
  });

  test('the consumer stopping early (ask() abandoned) also closes the request', async () => {
    await server.control({ token_delay_s: 0.15 });
    try {
      const before = (await server.log()).length;
      const remote = withEngineDecoder(model, engine({ kind: 'sglang' }));
      const prefix = buildPrefix(model, 'none', [], 'What is the value of `TAX_RATE`?').parts;
      const it = remote.decoder!.generate(prefix, { maxNewTokens: 60, stop: [] });
      await it.next();
      await it.return(undefined as never);
      let entry: { outcome: string } | undefined;
      for (let i = 0; i < 40 && !entry; i++) {
        await new Promise((r) => setTimeout(r, 100));
        entry = (await server.log()).slice(before).find((e) => e.outcome === 'client-closed');
      }
      assert.ok(entry);
    } finally {
      await server.control({ token_delay_s: 0 });
    }
  });

  test('timeouts: no first token in time, and silence mid-answer, end in clear errors', async () => {
    const prefix = buildPrefix(model, 'none', [], 'Which file defines `slugify`?').parts;
    await server.control({ first_token_delay_s: 1.5 });
    try {
      const r = await drain(withEngineDecoder(model, engine({ firstTokenTimeoutMs: 400 })), prefix, { maxNewTokens: 8, stop: [] });
      assert.equal(r.error?.code, 'decoder-server');
      assert.match(r.error!.message, /vllm server at 127\.0\.0\.1:\d+ sent no answer within 0 s|sent no answer within/);
    } finally {
      await server.control({ first_token_delay_s: 0 });
    }
    await new Promise((r) => setTimeout(r, 1500)); // let the abandoned request finish on the server
    await server.control({ token_delay_s: 1.0 });
    try {
      const r = await drain(withEngineDecoder(model, engine({ idleTimeoutMs: 300 })), prefix, { maxNewTokens: 8, stop: [] });
      assert.equal(r.error?.code, 'decoder-server');
      assert.match(r.error!.message, /went silent/);
      assert.ok(r.text.length > 0, 'the first piece arrived before the silence');
    } finally {
      await server.control({ token_delay_s: 0 });
    }
    await new Promise((r) => setTimeout(r, 1200));
  });

  test('a 5xx answer shows its status and body', async () => {
    const prefix = buildPrefix(model, 'none', [], 'Which file defines `slugify`?').parts;
    for (const kind of ['vllm', 'sglang'] as const) {
      await server.control({ fail_next: { status: 503, body: 'engine overloaded: 17 requests waiting' } });
      const r = await drain(withEngineDecoder(model, engine({ kind })), prefix, { maxNewTokens: 4 });
      assert.equal(r.error?.code, 'decoder-server');
      assert.match(r.error!.message, new RegExp(`The ${kind} server at 127\\.0\\.0\\.1:\\d+ answered 503: engine overloaded: 17 requests waiting`));
    }
  });

  test('wrong served model name and wrong backend (404) say what to check', async () => {
    const prefix = buildPrefix(model, 'none', [], 'Which file defines `slugify`?').parts;
    const wrongModel = await drain(withEngineDecoder(model, engine({ servedModel: 'meta-llama/Llama-3.1-8B' })), prefix, { maxNewTokens: 4 });
    assert.match(wrongModel.error!.message, /answered 404: the served model "meta-llama\/Llama-3.1-8B" is not there: The model `meta-llama\/Llama-3.1-8B` does not exist/);
    const wrongPath = await drain(withEngineDecoder(model, engine({ url: `${server.url}/api` })), prefix, { maxNewTokens: 4 });
    assert.match(wrongPath.error!.message, /answered 404: the endpoint is not there.*Check the backend/);
  });

  test('context that does not fit the server window is refused with the server message (vLLM rule: prompt + max_tokens)', async () => {
    const small = await startServer(['--max-model-len', '64']);
    try {
      const prefix = buildPrefix(model, 'none', [], 'Which file defines `slugify`?').parts;
      const r = await drain(withEngineDecoder(model, engine({ url: small.url })), prefix, { maxNewTokens: 48 });
      assert.equal(r.error?.code, 'context-too-large');
      assert.match(r.error!.message, /maximum context length is 64 tokens.*--max-model-len of at least contextLength \+ 1/);
    } finally {
      await small.stop();
    }
  });
});

describe('engine decoder errors that need their own server', { skip: NO_TORCH }, () => {
  let model: ArcModel;
  before(async () => {
    model = await loadModel(DEFAULT_PACKAGE, { provider: 'cpu', threads: 1 });
  });
  after(async () => {
    await model?.dispose();
  });
  const prefix = () => buildPrefix(model, 'none', [], 'Which file defines `slugify`?').parts;

  test('server down: connection refused names the host and says to start the server', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createNetServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await drain(withEngineDecoder(model, { kind: 'vllm', url: `http://127.0.0.1:${port}`, servedModel: 'x' }), prefix(), { maxNewTokens: 4 });
    assert.equal(r.error?.code, 'decoder-server');
    assert.match(r.error!.message, new RegExp(`No vllm server answers at 127\\.0\\.0\\.1:${port} \\(connection refused\\)`));
  });

  test('prompt embeds not enabled (vLLM started without --enable-prompt-embeds)', async () => {
    const s = await startServer(['--no-prompt-embeds']);
    try {
      const r = await drain(withEngineDecoder(model, { kind: 'vllm', url: s.url, servedModel: 'arc-tiny-code' }), prefix(), { maxNewTokens: 4 });
      assert.equal(r.error?.code, 'decoder-server');
      assert.match(r.error!.message, /answered 400: prompt embeddings are not enabled\. Restart vLLM with --enable-prompt-embeds/);
    } finally {
      await s.stop();
    }
  });

  test('hidden-size mismatch: a package whose decoder is not the served one (tiny-arc, hidden 64, against a 128-wide decoder)', async () => {
    const s = await startServer([]);
    const tiny = await loadModel(join(REPO, 'test', 'fixtures', 'tiny-arc'), { provider: 'cpu', threads: 1 });
    try {
      const p = buildPrefix(tiny, 'none', [], 'hi').parts;
      for (const kind of ['vllm', 'sglang'] as const) {
        const r = await drain(withEngineDecoder(tiny, { kind, url: s.url, servedModel: 'arc-tiny-code' }), p, { maxNewTokens: 4 });
        assert.equal(r.error?.code, 'decoder-server');
        assert.match(r.error!.message, /has hidden size 64, but the model's hidden size is 128\. This package's decoder has hidden size 64: the served model must be the decoder its encoder was trained for/);
      }
    } finally {
      await tiny.dispose();
      await s.stop();
    }
  });

  test('API key: refused without it (401), answered with it', async () => {
    const s = await startServer(['--api-key', 'sekrit-key']);
    try {
      const without = await drain(withEngineDecoder(model, { kind: 'vllm', url: s.url, servedModel: 'arc-tiny-code' }), prefix(), { maxNewTokens: 4 });
      assert.match(without.error!.message, /answered 401 \(not authorized\).*API key/);
      assert.ok(!without.error!.message.includes('sekrit'));
      const withKey = await drain(withEngineDecoder(model, { kind: 'vllm', url: s.url, servedModel: 'arc-tiny-code', apiKey: 'sekrit-key' }), prefix(), { maxNewTokens: 4 });
      assert.equal(withKey.error, null);
    } finally {
      await s.stop();
    }
  });

  test('TLS error: a server with a self-signed certificate (a Node https server; the fixture certificate is for this test only)', async () => {
    const dir = join(REPO, 'test', 'fixtures', 'tls');
    const https = createHttpsServer({ key: readFileSync(join(dir, 'self-signed.key')), cert: readFileSync(join(dir, 'self-signed.crt')) }, (_req, res) => res.end('{}'));
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (https.address() as AddressInfo).port;
      const r = await drain(withEngineDecoder(model, { kind: 'sglang', url: `https://127.0.0.1:${port}` }), prefix(), { maxNewTokens: 4 });
      assert.equal(r.error?.code, 'decoder-server');
      assert.match(r.error!.message, new RegExp(`TLS error talking to the sglang server at 127\\.0\\.0\\.1:${port} \\((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\\)`));
    } finally {
      https.close();
    }
  });

  test('bad URLs are refused before anything is sent', () => {
    assert.throws(() => withEngineDecoder(model, { kind: 'vllm', url: 'ftp://host/x' }), /must start with http:\/\/ or https:\/\//);
    assert.throws(() => withEngineDecoder(model, { kind: 'vllm', url: 'not a url' }), /is not a URL/);
  });
});
