// The `@arc` participant's turn (src/extension/chatTurn.ts) on the real pipeline: the sidebar's
// AskRunner with the core ask() and the tiny-arc package, over the e2e workspace's files. The
// one fake is the Chat view's response stream (no VS Code here): a recorder stands in for it.
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ask as coreAsk } from '../../src/core/ask';
import { ArcError } from '../../src/core/errors';
import type { AnswerMode, AskRequest, Citation, SourceInput } from '../../src/core/types';
import { CHAT_COMMANDS, followupsFor, runChatTurn, type ChatOut, type ChatTurnDeps } from '../../src/extension/chatTurn';
import { compressSources } from '../../src/extension/compressWorkspace';
import { AskRunner, newRunId } from '../../src/extension/runner';
import type { WebviewCommand } from '../../src/protocol';
import { MODE_LABEL } from '../../webview/format';
import { tempDir, useTinyArc } from './pipeline-helpers';

const tiny = useTinyArc();
const WORKSPACE = path.resolve(__dirname, '../e2e/workspace');
const quiet = { info() {}, warn() {}, error() {} };

function workspaceFiles(dir = WORKSPACE, rel = ''): SourceInput[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const abs = path.join(dir, name);
    const p = rel ? `${rel}/${name}` : name;
    return statSync(abs).isDirectory() ? workspaceFiles(abs, p) : [{ path: p, absPath: abs, origin: 'workspace' as const }];
  });
}

type Recorded =
  | { kind: 'progress'; text: string }
  | { kind: 'markdown'; text: string }
  | { kind: 'anchor'; citation: Citation; title: string }
  | { kind: 'reference'; citation: Citation }
  | { kind: 'button'; command: WebviewCommand; title: string };

/** Stands in for vscode.ChatResponseStream (fake: the Chat view cannot run here). */
function recorder(onMarkdown?: (text: string) => void): { out: ChatOut; log: Recorded[]; text: () => string } {
  const log: Recorded[] = [];
  return {
    log,
    text: () => log.map((r) => (r.kind === 'markdown' ? r.text : r.kind === 'anchor' ? `[${r.title}]` : '')).join(''),
    out: {
      progress: (text) => log.push({ kind: 'progress', text }),
      markdown: (text) => {
        log.push({ kind: 'markdown', text });
        onMarkdown?.(text);
      },
      anchor: (citation, title) => log.push({ kind: 'anchor', citation, title }),
      reference: (citation) => log.push({ kind: 'reference', citation }),
      button: (command, title) => log.push({ kind: 'button', command, title }),
    },
  };
}

/** The extension's wiring (controller.ask -> AskRunner -> core ask), without VS Code's settings. */
async function realDeps(cacheDir: string, over: Partial<ChatTurnDeps> = {}): Promise<ChatTurnDeps & { runner: AskRunner }> {
  const model = await tiny.model();
  const runner = new AskRunner({ ask: coreAsk, getModel: async () => model, cacheDir: () => cacheDir, log: quiet });
  const sources = workspaceFiles();
  return {
    runner,
    log: quiet,
    collect: async () => ({ sources: sources.map((s) => ({ ...s })), label: `workspace (${sources.length} files)` }),
    ask: (collected, question, sink, opts) => {
      const mode: AnswerMode = opts.mode ?? 'mixed';
      const request: AskRequest = { question, mode, sources: collected.sources };
      return runner.start({ runId: newRunId(), question, mode, sourceLabel: collected.label, ...(opts.compareGroup ? { compareGroup: opts.compareGroup } : {}) }, request, sink, opts.signal);
    },
    compress: (onProgress, signal) => runner.exclusive(() => compressSources(model, sources, 'Workspace', { cacheDir, signal, onProgress })),
    ...over,
  };
}

test('@arc turn on the real pipeline: progress per stage, streamed answer, references, anchors, stats footer', { skip: tiny.skip }, async () => {
  const { dir, cleanup } = tempDir('chat-turn');
  try {
    const deps = await realDeps(dir);
    const rec = recorder();
    const r = await runChatTurn(deps, { command: 'workspace', question: 'What is the value of `TAX_RATE`?' }, rec.out, new AbortController().signal);
    assert.equal(r.outcome, 'done', r.message);
    assert.equal(r.stats?.mode, 'mixed', 'the default mode');

    const progress = rec.log.filter((x) => x.kind === 'progress').map((x) => x.text);
    assert.equal(progress[0], 'Scanning files');
    // scan, tokenize, select, encode, prefill, generate: one line each.
    assert.equal(progress.length, 6, JSON.stringify(progress));
    for (const [i, re] of [/^\d+ chunks from 4 files/, /^Choosing chunks for \d+ context positions/, /^Compressed \d+\/\d+ chosen chunks/, /^Reading \d+ positions$/, /^Answering$/].entries()) {
      assert.match(progress[i + 1], re);
    }

    // The answer streamed as several markdown pieces, equal to what ask() alone answers.
    const refs = rec.log.filter((x) => x.kind === 'reference');
    const firstAnchor = rec.log.findIndex((x) => x.kind === 'anchor');
    const pieces = rec.log.slice(0, firstAnchor).filter((x): x is Extract<Recorded, { kind: 'markdown' }> => x.kind === 'markdown');
    const streamed = pieces.map((x) => x.text).join('').replace(/\n\nRead from: $/, '');
    let direct = '';
    for await (const e of coreAsk(await tiny.model(), { question: 'What is the value of `TAX_RATE`?', mode: 'mixed', sources: workspaceFiles() }, { cacheDir: dir })) {
      if (e.type === 'done') direct = e.answer;
    }
    assert.equal(streamed, direct, 'the chat streamed the pipeline\'s answer');
    assert.ok(pieces.length > 2, `answer not streamed: ${pieces.length} pieces`);

    // References: one per file that reached the decoder, before the answer text.
    assert.ok(refs.length > 0, 'no references');
    assert.equal(new Set(refs.map((x) => (x.kind === 'reference' ? x.citation.path : ''))).size, refs.length, 'one reference per file');
    assert.ok(rec.log.findIndex((x) => x.kind === 'reference') < rec.log.findIndex((x) => x.kind === 'markdown'));
    // Anchors to the cited lines, labelled path:start-end, with the absolute path to open.
    const anchors = rec.log.filter((x): x is Extract<Recorded, { kind: 'anchor' }> => x.kind === 'anchor');
    assert.ok(anchors.length > 0, 'no anchors');
    for (const a of anchors) {
      assert.match(a.title, /^[\w./-]+:\d+(-\d+)?$/);
      assert.ok(a.citation.absPath?.startsWith(WORKSPACE), `anchor ${a.title} without its file`);
      assert.ok(a.citation.endLine >= a.citation.startLine);
    }
    const footer = rec.text().trim().split('\n').pop() ?? '';
    assert.match(footer, /^\*ARC mixed \(text \+ compressed\) · \d+(\.\d)?× · [\d,]+ source tokens → [\d,]+ positions · (\d+ text( \/ \d+ compressed)?|\d+ compressed) chunks? · encode .* · TTFT .* · cpu · cache \d+\/\d+ hits/, `footer "${footer}"`);
    assert.deepEqual(followupsFor(r).map((f) => f.command), ['compare', 'compress'], 'a fresh cache: compressing the rest is offered');
  } finally {
    cleanup();
  }
});

test('@arc: the stop button (the turn\'s signal) stops the decoder: no token after the stop, no footer', { skip: tiny.skip }, async () => {
  const { dir, cleanup } = tempDir('chat-stop');
  try {
    const abort = new AbortController();
    let tokens = 0;
    const rec = recorder(() => {
      if (++tokens === 2) abort.abort();
    });
    // Stopped after its second piece, as the Chat view's stop button would.
    const deps = await realDeps(dir);
    const r = await runChatTurn(deps, { question: 'Where is `restock`?' }, rec.out, abort.signal);
    if (tokens < 2) return assert.fail(`the answer had ${tokens} pieces; too short to stop: ${JSON.stringify(r)} ${JSON.stringify(rec.log)}`);
    assert.equal(r.outcome, 'cancelled');
    assert.equal(r.tokensAfterStop, 0, 'tokens arrived after the stop');
    assert.equal(rec.log.filter((x) => x.kind === 'markdown').length, 2, 'nothing was written after the stop');
    assert.equal(rec.log.filter((x) => x.kind === 'anchor').length, 0);
    assert.deepEqual(followupsFor(r), []);
  } finally {
    cleanup();
  }
});

test('@arc /compare answers in all four modes and ends with a table of timings', { skip: tiny.skip }, async () => {
  const { dir, cleanup } = tempDir('chat-compare');
  try {
    const deps = await realDeps(dir);
    const rec = recorder();
    const r = await runChatTurn(deps, { command: 'compare', question: 'What is the value of `LOW_STOCK_THRESHOLD`?' }, rec.out, new AbortController().signal);
    assert.equal(r.outcome, 'done', r.message);
    const text = rec.text();
    for (const mode of ['mixed', 'arc', 'full', 'none'] as const) {
      assert.ok(text.includes(`#### ${MODE_LABEL[mode]}`), `no ${mode} section`);
      assert.match(text, new RegExp(`\\n\\| ${MODE_LABEL[mode].replace(/[()+]/g, '\\$&')} \\| [^|]+ \\| [^|]+ \\| [\\d.]+ m?s \\| [\\d.]+ m?s \\| `), `no ${mode} row`);
    }
    assert.ok(text.includes('| Mode | Source tokens → positions | Ratio | TTFT | Total | Answer |'));
    assert.equal((text.match(/^\*ARC /gm) ?? []).length, 4, 'a stats footer per mode');
    assert.deepEqual(followupsFor(r), []);
  } finally {
    cleanup();
  }
});

test('@arc /compress fills the cache with progress; the next question reads every chunk from it', { skip: tiny.skip }, async () => {
  const { dir, cleanup } = tempDir('chat-compress');
  try {
    const deps = await realDeps(dir);
    const rec = recorder();
    const r = await runChatTurn(deps, { command: 'compress', question: '' }, rec.out, new AbortController().signal);
    assert.equal(r.outcome, 'done', r.message);
    assert.ok(rec.log.some((x) => x.kind === 'progress' && x.text === 'Reading files'));
    assert.match(rec.text(), /^Compressed the workspace: 4 files, \d+ chunks \(\d+ encoded, 0 already cached\)/);
    assert.deepEqual(rec.log.filter((x) => x.kind === 'button').map((x) => (x.kind === 'button' ? x.command : '')), ['showStats']);
    const again = await runChatTurn(deps, { command: 'workspace', question: 'Which file defines `slugify`?' }, recorder().out, new AbortController().signal);
    assert.equal(again.outcome, 'done');
    assert.equal(again.stats?.cacheMisses, 0, 'the question encoded chunks the compression had cached');
    assert.ok((again.stats?.cacheHits ?? 0) > 0);
  } finally {
    cleanup();
  }
});

test('@arc errors come back as chat errors with the sidebar\'s actions', { skip: tiny.skip }, async () => {
  const { dir, cleanup } = tempDir('chat-errors');
  try {
    const noSources = recorder();
    const r1 = await runChatTurn(await realDeps(dir, { collect: async () => { throw new ArcError('no-sources', 'Nothing is selected.'); } }), { command: 'selection', question: 'q?' }, noSources.out, new AbortController().signal);
    assert.deepEqual([r1.outcome, r1.code, r1.message], ['error', 'no-sources', 'Nothing is selected.']);
    assert.match(noSources.text(), /#file/);

    // A model that cannot load: the runner's getModel throws as ModelManager does.
    const broken = new AskRunner({ ask: coreAsk, getModel: async () => { throw new ArcError('model-corrupt', '/x/arc-model.json is not valid JSON.'); }, cacheDir: () => dir, log: quiet });
    const rec = recorder();
    const base = await realDeps(dir);
    const r2 = await runChatTurn({ ...base, ask: (c, q, sink, o) => broken.start({ runId: newRunId(), question: q, mode: 'mixed', sourceLabel: c.label }, { question: q, mode: 'mixed', sources: c.sources }, sink, o.signal) }, { question: 'q?' }, rec.out, new AbortController().signal);
    assert.deepEqual([r2.outcome, r2.code], ['error', 'model-corrupt']);
    assert.deepEqual(rec.log.filter((x) => x.kind === 'button'), [{ kind: 'button', command: 'selectModel', title: 'Select Model…' }]);

    const empty = await runChatTurn(base, { command: 'workspace', question: '  ' }, recorder().out, new AbortController().signal);
    assert.deepEqual([empty.outcome, empty.code], ['error', 'empty-question']);
    assert.deepEqual([...CHAT_COMMANDS], ['workspace', 'file', 'selection', 'compare', 'compress']);
  } finally {
    cleanup();
  }
});
