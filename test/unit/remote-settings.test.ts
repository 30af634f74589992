// Settings of the decoder backend: machine scoped, off by default, ignored in untrusted
// workspaces; an engine backend needs a URL; the API key never comes from settings.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { engineSettings, normalizeSettings } from '../../src/extension/config';
import { REPO } from './core-fixture';

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  contributes: { configuration: { properties: Record<string, { scope?: string; default?: unknown; enum?: string[] }> }; commands: { command: string }[] };
  activationEvents: string[];
  capabilities: { untrustedWorkspaces: { restrictedConfigurations: string[] } };
};

test('decoder backend settings are machine scoped, default to the in-process decoder and are restricted in untrusted workspaces', () => {
  const props = pkg.contributes.configuration.properties;
  for (const key of ['arcContext.decoderBackend', 'arcContext.decoderUrl', 'arcContext.servedModel']) {
    assert.equal(props[key]?.scope, 'machine', key);
    assert.ok(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations.includes(key), key);
  }
  assert.equal(props['arcContext.decoderBackend']!.default, 'onnx');
  assert.deepEqual(props['arcContext.decoderBackend']!.enum, ['onnx', 'vllm', 'sglang']);
  assert.equal(props['arcContext.decoderUrl']!.default, '');
  assert.ok(!Object.keys(props).some((k) => /api.?key|secret|password/i.test(k)), 'no API key setting: it lives in SecretStorage');
  assert.ok(pkg.contributes.commands.some((c) => c.command === 'arcContext.setDecoderApiKey'));
  assert.ok(pkg.activationEvents.includes('onCommand:arcContext.setDecoderApiKey'));
});

test('normalizeSettings reads the backend; junk falls back to onnx; engineSettings needs a URL and takes the key from the caller', () => {
  const s = normalizeSettings((k) => ({ decoderBackend: 'vllm', decoderUrl: ' http://gpu:8000 ', servedModel: 'meta-llama/Llama-3.1-8B' } as Record<string, unknown>)[k]);
  assert.equal(s.decoderBackend, 'vllm');
  assert.equal(s.decoderUrl, 'http://gpu:8000');
  assert.deepEqual(engineSettings(s, 'k'), { ok: true, engine: { kind: 'vllm', url: 'http://gpu:8000', servedModel: 'meta-llama/Llama-3.1-8B', apiKey: 'k' } });
  const junk = normalizeSettings((k) => ({ decoderBackend: 'tgi', decoderUrl: 3 } as Record<string, unknown>)[k]);
  assert.equal(junk.decoderBackend, 'onnx');
  assert.deepEqual(engineSettings(junk, 'k'), { ok: true, engine: null });
  const noUrl = engineSettings({ decoderBackend: 'sglang', decoderUrl: '', servedModel: '' }, undefined);
  assert.equal(noUrl.ok, false);
  assert.match((noUrl as { reason: string }).reason, /arcContext\.decoderUrl is empty/);
});

test('the stats line names the decoder server and its first-token time; the in-process decoder adds nothing', async () => {
  const { statsParts } = await import('../../webview/format');
  const base = { mode: 'arc', provider: 'cpu', sourceTokens: 100, textTokens: 0, compressedVectors: 25, contextPositions: 27, ratio: 3.7, encodeMs: 5, prefillMs: 9, ttftMs: 40, totalMs: 80, tokensPerSecond: 50, generatedTokens: 4, cacheHits: 0, cacheMisses: 2, chunksIncluded: 2, textChunks: 0, compressedChunks: 2, chunksLeftOut: 0, truncatedTokens: 0 } as const;
  const remote = statsParts({ ...base, decoderBackend: 'vllm @ gpu:8000', serverTtftMs: 31 });
  assert.ok(remote.some((p) => /^decoder vllm @ gpu:8000 \(server TTFT 31 ms\)$/.test(p)), remote.join(' · '));
  assert.ok(!statsParts(base).some((p) => p.startsWith('decoder')));
});
