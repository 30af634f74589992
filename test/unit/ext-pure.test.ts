// Pure parts of the extension and webview: settings rules, exclude globs, CSP, formatting and
// the answer-state reducer. No vscode, no DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { chooseModelDir, combineGlobs, excludeGlobs, expandBraces, normalizeSettings } from '../../src/extension/config';
import { contentSecurityPolicy, renderWebviewHtml } from '../../src/extension/webviewHtml';
import { barWidths, chunkForms, formatMs, formatRatio, formatStatsLine } from '../../webview/format';
import { applyEvent, endRun, groupEntries, newEntry, restoreChatState, restorePanelState } from '../../webview/state';
import type { AskEvent, AskStats } from '../../src/core/types';

test('normalizeSettings falls back to defaults for junk and clamps ranges', () => {
  const s = normalizeSettings((k) => ({ executionProvider: 'tpu', threads: -3, maxNewTokens: 1e9, temperature: 'hot', include: ['src/**', 3, ' '], answerMode: 'full', cacheSizeMB: 1 } as Record<string, unknown>)[k]);
  assert.equal(s.provider, 'auto');
  assert.equal(s.threads, 0);
  assert.equal(s.maxNewTokens, 4096);
  assert.equal(s.temperature, 0);
  assert.deepEqual(s.include, ['src/**']);
  assert.equal(s.answerMode, 'full');
  assert.equal(s.cacheSizeMB, 16);
  assert.equal(s.modelPath, '');
  assert.equal(s.mixedTextBudget, 0, 'a missing text budget means the model decides');
});

test('settings default to mixed mode and the model\'s text budget; junk falls back', () => {
  const d = normalizeSettings(() => undefined);
  assert.equal(d.answerMode, 'mixed');
  assert.equal(d.mixedTextBudget, 0);
  const s = normalizeSettings((k) => ({ answerMode: 'fast', mixedTextBudget: 99.6 } as Record<string, unknown>)[k]);
  assert.equal(s.answerMode, 'mixed');
  assert.equal(s.mixedTextBudget, 100);
  assert.equal(normalizeSettings((k) => (k === 'mixedTextBudget' ? -5 : k === 'answerMode' ? 'arc' : undefined)).mixedTextBudget, 0);
  assert.equal(normalizeSettings((k) => (k === 'answerMode' ? 'arc' : undefined)).answerMode, 'arc');
});

test('chooseModelDir: bundled default, absolute paths only, nothing from inside an untrusted workspace', () => {
  const ext = path.resolve('/ext');
  const ws = path.resolve('/ws/repo');
  assert.deepEqual(chooseModelDir({ userValue: '', extensionPath: ext, trusted: false, workspaceFolders: [ws] }), {
    ok: true, dir: path.join(ext, 'models', 'arc-tiny-code'), bundled: true,
  });
  assert.equal(chooseModelDir({ userValue: 'models/x', extensionPath: ext, trusted: true, workspaceFolders: [] }).ok, false);
  const inside = path.join(ws, 'evil-model');
  const untrusted = chooseModelDir({ userValue: inside, extensionPath: ext, trusted: false, workspaceFolders: [ws] });
  assert.equal(untrusted.ok, false);
  assert.match(untrusted.ok ? '' : untrusted.reason, /not trusted/);
  assert.deepEqual(chooseModelDir({ userValue: inside, extensionPath: ext, trusted: true, workspaceFolders: [ws] }), { ok: true, dir: inside, bundled: false });
  const home = chooseModelDir({ userValue: '~/m', extensionPath: ext, trusted: true, workspaceFolders: [], homeDir: path.resolve('/home/u') });
  assert.deepEqual(home, { ok: true, dir: path.join(path.resolve('/home/u'), 'm'), bundled: false });
});

test('exclude globs: true adds, a later false removes, when-conditions are reported', () => {
  const r = excludeGlobs({ '**/.git': true, '**/*.js': { when: '$(basename).ts' }, '**/out': true }, { '**/node_modules': true, '**/out': false });
  assert.deepEqual(r.globs.sort(), ['**/.git', '**/node_modules']);
  assert.deepEqual(r.conditional, ['**/*.js']);
  assert.deepEqual(excludeGlobs(undefined, null, 'x'), { globs: [], conditional: [] });
});

test('combineGlobs flattens brace groups because VS Code globs cannot nest them', () => {
  assert.deepEqual(expandBraces('src/**/*.{ts,js}'), ['src/**/*.ts', 'src/**/*.js']);
  assert.deepEqual(expandBraces('{a,b}/{c,d}'), ['a/c', 'a/d', 'b/c', 'b/d']);
  assert.deepEqual(expandBraces('a/{b,{c,d}}'), ['a/b', 'a/c', 'a/d']);
  assert.equal(combineGlobs([]), undefined);
  assert.equal(combineGlobs(['**/.git']), '**/.git');
  assert.equal(combineGlobs(['**/.git', '**/*.{png,jpg}', '**/.git']), '{**/.git,**/*.png,**/*.jpg}');
});

test('webview HTML: CSP meta first, nonce on the script, nothing inline, styles only from cspSource', () => {
  const html = renderWebviewHtml({ kind: 'chat', cspSource: 'https://x.vscode-cdn.net', scriptUri: 'https://x/dist/webview.js', styleUri: 'https://x/media/arc.css', nonce: 'N0nce' });
  const head = html.slice(html.indexOf('<head>') + 6).trimStart();
  assert.ok(head.startsWith('<meta http-equiv="Content-Security-Policy"'), 'CSP must be the first element of <head>');
  const csp = contentSecurityPolicy('https://x.vscode-cdn.net', 'N0nce');
  assert.match(csp, /^default-src 'none'; /);
  assert.match(csp, /script-src 'nonce-N0nce'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-(inline|eval)/);
  assert.match(csp, /style-src https:\/\/x\.vscode-cdn\.net/);
  assert.equal((html.match(/<script/g) ?? []).length, 1);
  assert.match(html, /<script nonce="N0nce" src="https:\/\/x\/dist\/webview.js"><\/script>/);
  assert.match(html, /<body data-view="chat">/);
  assert.doesNotMatch(html, / style="/);
  const a = renderWebviewHtml({ kind: 'panel', cspSource: 'c', scriptUri: 's', styleUri: 't' });
  const b = renderWebviewHtml({ kind: 'panel', cspSource: 'c', scriptUri: 's', styleUri: 't' });
  assert.notEqual(a.match(/nonce-([^']+)/)![1], b.match(/nonce-([^']+)/)![1], 'a fresh nonce per load');
});

const stats: AskStats = {
  mode: 'mixed', provider: 'cpu', sourceTokens: 1234, textTokens: 150, compressedVectors: 261, contextPositions: 420, ratio: 1234 / 420,
  encodeMs: 120.4, prefillMs: 30, ttftMs: 45, totalMs: 1500, tokensPerSecond: 22.14, generatedTokens: 9,
  cacheHits: 12, cacheMisses: 3, chunksIncluded: 9, textChunks: 2, compressedChunks: 7, chunksLeftOut: 0, truncatedTokens: 0,
};

test('stats line: ratio over the whole context, source tokens -> positions, chunks by form, encode, TTFT, tok/s, provider, cache hits', () => {
  assert.equal(formatStatsLine(stats), '2.9× · 1,234 source tokens → 420 positions · 2 text / 7 compressed chunks · encode 120 ms · TTFT 45 ms · 22.1 tok/s · cpu · cache 12/15 hits');
  const arc = { ...stats, mode: 'arc' as const, textTokens: 0, contextPositions: 320, ratio: 1234 / 320, textChunks: 0, compressedChunks: 10, chunksIncluded: 10 };
  assert.equal(formatStatsLine(arc), '3.9× · 1,234 source tokens → 320 positions · 10 compressed chunks · encode 120 ms · TTFT 45 ms · 22.1 tok/s · cpu · cache 12/15 hits');
  assert.equal(formatStatsLine({ ...stats, mode: 'none', ratio: 0 }), 'no context · TTFT 45 ms · 22.1 tok/s · cpu');
  const full = { ...stats, mode: 'full' as const, contextPositions: 1234, ratio: 1, textChunks: 10, compressedChunks: 0, chunksIncluded: 10, chunksLeftOut: 2 };
  assert.match(formatStatsLine(full), /^1\.0× · 1,234 source tokens → 1,234 positions · 10 text chunks · TTFT .* · 10\/12 chunks fit$/);
  assert.equal(chunkForms({ textChunks: 1, compressedChunks: 0 }), '1 text chunk');
  assert.equal(formatMs(1500), '1.50 s');
  assert.equal(formatMs(Number.NaN), '—');
  assert.equal(formatRatio(0), '—');
  assert.equal(formatRatio(12.4), '12×');
  assert.deepEqual(barWidths(500, 125, 1000), [50, 12.5]);
  assert.deepEqual(barWidths(1, 1, 100000), [0.001, 0.5]);
  assert.deepEqual(barWidths(0, 0, 0), [0, 0]);
});

test('answer state: tokens stream, done replaces, cancel keeps the partial answer', () => {
  const e = newEntry({ runId: 'r1', question: 'q', mode: 'arc', sourceLabel: 'x' });
  applyEvent(e, { type: 'progress', stage: 'encode', message: 'Compressed 1/2' }, false);
  assert.equal(e.progress, 'Compressed 1/2');
  const sel: Extract<AskEvent, { type: 'selection' }> = { type: 'selection', files: [], included: [{ path: 'a.ts', startLine: 1, endLine: 9 }], text: [{ path: 'a.ts', startLine: 1, endLine: 4 }], compressed: [{ path: 'a.ts', startLine: 5, endLine: 9 }], leftOut: [], budget: 10 };
  applyEvent(e, structuredClone(sel), false);
  assert.equal(e.selection, undefined, 'the chat does not keep the compression picture');
  const panel = newEntry({ runId: 'p1', question: 'q', mode: 'mixed', sourceLabel: 'x' });
  applyEvent(panel, structuredClone(sel), true);
  assert.deepEqual(panel.selection, { files: [], included: sel.included, text: sel.text, compressed: sel.compressed, leftOut: [], budget: 10 }, 'the panel keeps both forms');
  applyEvent(e, { type: 'token', text: 'src/' }, false);
  applyEvent(e, { type: 'token', text: 'a.ts' }, false);
  assert.equal(e.answer, 'src/a.ts');
  const c = structuredClone(e);
  applyEvent(c, { type: 'error', code: 'cancelled', message: 'Stopped.' }, false);
  assert.equal(c.state, 'cancelled');
  assert.equal(c.answer, 'src/a.ts');
  applyEvent(e, { type: 'done', answer: 'src/a.ts', stats }, false);
  assert.equal(e.state, 'done');
  assert.equal(e.progress, undefined);
  const s = newEntry({ runId: 'r2', question: 'q', mode: 'full', sourceLabel: 'x', compareGroup: 'r1' });
  endRun(s, 'error');
  assert.equal(s.state, 'error');
  assert.deepEqual(groupEntries([e, s, newEntry({ runId: 'r3', question: 'z', mode: 'arc', sourceLabel: 'y' })]).map((g) => g.map((x) => x.runId)), [['r1', 'r2'], ['r3']]);
});

test('restorePanelState (answer panel after a VS Code restart) keeps a finished answer, stops a live one, rejects junk', () => {
  assert.deepEqual(restorePanelState(undefined), { version: 1 });
  assert.deepEqual(restorePanelState({ version: 2, entry: newEntry({ runId: 'r', question: 'q', mode: 'arc', sourceLabel: 'x' }) }), { version: 1 });
  assert.deepEqual(restorePanelState({ version: 1, entry: { runId: 'r', question: 'q' } }), { version: 1 }, 'an entry without answer/citations');
  const done = newEntry({ runId: 'r1', question: 'Which file?', mode: 'arc', sourceLabel: 'Workspace' });
  applyEvent(done, { type: 'token', text: 'src/a.py' }, true);
  endRun(done, 'done');
  const saved = JSON.parse(JSON.stringify({ version: 1, entry: done })); // what VS Code stores
  assert.deepEqual(restorePanelState(saved).entry, saved.entry);
  assert.equal(restorePanelState(saved).entry?.state, 'done');
  const live = newEntry({ runId: 'r2', question: 'q', mode: 'arc', sourceLabel: 'x' });
  live.progress = 'Encoding';
  const back = restorePanelState({ version: 1, entry: live }).entry;
  assert.equal(back?.state, 'cancelled');
  assert.equal(back?.progress, undefined);
  assert.equal(live.state, 'streaming', 'the saved object itself is not modified');
  const snapshot = { title: 'Workspace', files: [{ path: 'a.py', tokens: 8, vectors: 2, chunks: 1, included: 0 }], included: [], leftOut: [] };
  assert.deepEqual(restorePanelState({ version: 1, snapshot }), { version: 1, snapshot });
  assert.deepEqual(restorePanelState({ version: 1, snapshot: { title: 3 } }), { version: 1 });
});

test('restoreChatState rejects foreign shapes and ends runs that were live at reload', () => {
  assert.deepEqual(restoreChatState(undefined).entries, []);
  assert.deepEqual(restoreChatState({ version: 2, entries: [] }).entries, []);
  const live = newEntry({ runId: 'r1', question: 'q', mode: 'arc', sourceLabel: 'x' });
  const restored = restoreChatState({ version: 1, entries: [live, { bogus: true }], source: 'workspace', draft: 'hi' });
  assert.equal(restored.entries.length, 1);
  assert.equal(restored.entries[0]!.state, 'cancelled');
  assert.equal(restored.source, 'workspace');
  assert.equal(restored.draft, 'hi');
});
