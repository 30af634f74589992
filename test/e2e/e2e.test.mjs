// End-to-end: the packaged VSIX installed into a fresh code-server (real VS Code workbench and
// extension host), driven through a real browser (Debian chromium). Run: `npm run test:e2e`.
//
// Three code-server instances, one per model setting:
//   main   - the bundled default model (or the tiny-arc fixture while none is trained):
//            palette, (a) Compress and Ask, (b) sidebar chat + citation, (d) Ask About Selection
//   long   - the same model with its stop strings removed and a long window, so an answer
//            streams for seconds: (c) Stop during generation
//   broken - arcContext.modelPath points at a folder with a corrupt manifest: (e) the error
//            notification with "Select Model…"
//   chat   - VS Code's own Chat view on a fresh profile (nobody signed in, no other model):
//            (f) `@arc /workspace`, (g) `/compare`; (h) Stop in the Chat view runs in `long`
//   engine - the decoder on tools/engine_test_server.py (the stand-in for vLLM) through the
//            machine settings: (i) consent declined -> nothing sent; (j)-(l) sidebar chat, the
//            palette flow and @arc answer as the in-process decoder (the CLI) does
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { marked } from 'marked';
import * as h from './harness.mjs';

const TITLES = [
  'ARC: Compress and Ask…',
  'ARC: Ask About Workspace',
  'ARC: Ask About Open Files',
  'ARC: Compress Workspace',
  'ARC: Select Model…',
  'ARC: Show Compression Stats',
  'ARC: Clear Compressed Cache',
  'ARC: Focus Chat',
];

const DEFAULT_MODEL_DIR = join(h.ROOT, 'models', 'arc-tiny-code');
const FIXTURE_MODEL_DIR = join(h.ROOT, 'test', 'fixtures', 'tiny-arc');
/** The trained default model ships in the VSIX; until it exists the random fixture stands in. */
const HAS_DEFAULT_MODEL = existsSync(join(DEFAULT_MODEL_DIR, 'arc-model.json'));
const MODEL_DIR = HAS_DEFAULT_MODEL ? DEFAULT_MODEL_DIR : FIXTURE_MODEL_DIR;

/**
 * Why the bundled model's answers are not yet required to be right, or null when they are. The
 * model is final when the figures its manifest records for the whole-package set (`evaluationRepos`,
 * written by tools/model_card.py from `arc-context eval`; each question over a whole package folder
 * larger than the window, asked the way these flows ask about a workspace folder) meet the bar its
 * issue sets: mixed (the default mode these flows run in) at least full text while reading at
 * least twice its source tokens, arc at least half of full text, closed book at most 2%. Until
 * then the answer check still runs and reports the answers, as a todo (a known failure that does
 * not fail the suite); from then on it must pass.
 */
function defaultModelNotFinal() {
  if (!HAS_DEFAULT_MODEL) return 'no bundled default model (models/arc-tiny-code) yet';
  const e = measuredRepos();
  const em = (m) => e?.[m]?.exactMatch;
  if (!['mixed', 'arc', 'full', 'none'].every((m) => typeof em(m) === 'number')) {
    return 'the bundled model has no measured whole-package exact match in every mode in its manifest';
  }
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  const short = [];
  if (em('mixed') < em('full')) short.push(`mixed ${pct(em('mixed'))} < full ${pct(em('full'))}`);
  if (!(e.mixed.meanSourceTokens >= 2 * e.full.meanSourceTokens)) short.push(`mixed reads ${e.mixed.meanSourceTokens} source tokens, under twice full's ${e.full.meanSourceTokens}`);
  if (em('arc') < 0.5 * em('full')) short.push(`arc ${pct(em('arc'))} < half of full`);
  if (em('none') > 0.02) short.push(`closed book ${pct(em('none'))} > 2%`);
  if (short.length === 0) return null;
  return `the bundled model's measured whole-package figures are below its bar (${short.join('; ')}); see models/arc-tiny-code/MODEL.md`;
}

/**
 * Why the bundled model's answers to value questions ((b) and (d)) are not yet required to be
 * right, or null when they are: while its measured whole-package exact match on value questions in
 * mixed mode (`evaluationRepos.mixed.byKind.value`) is under one half, a wrong value is what the
 * figures predict, so the check reports the answers as a todo; from one half on it must pass.
 */
function valueAnswersNotFinal() {
  const notFinal = defaultModelNotFinal();
  if (notFinal) return notFinal;
  const value = measuredRepos()?.mixed?.byKind?.value;
  if (typeof value !== 'number') return 'the bundled model has no measured whole-package exact match on value questions in its manifest';
  if (value < 0.5) return `the bundled model answers ${(100 * value).toFixed(1)}% of whole-package value questions right in mixed mode (under half); see models/arc-tiny-code/MODEL.md`;
  return null;
}

/** The bundled model's measured whole-package figures (its manifest's `evaluationRepos`). */
function measuredRepos() {
  return JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'arc-model.json'), 'utf8')).evaluationRepos;
}

/** Answers the flows received, checked for content by the model test at the end. */
const answers = {};

/** Generous: the first question loads the model and compresses the workspace on 2 busy cores. */
const ANSWER_TIMEOUT = 180_000;

const RUN_ID = `${process.pid}`;
function tmpDir(name) {
  const dir = join(h.TMP, `${name}-${RUN_ID}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A private copy of the fixture workspace, so nothing a run writes lands in the repository. */
function workspaceCopy(name) {
  const dir = tmpDir(`workspace-${name}`);
  cpSync(join(h.E2E_DIR, 'workspace'), dir, { recursive: true });
  return dir;
}

/** A copy of a model package with its manifest edited. */
function modelCopy(name, from, edit) {
  const dir = tmpDir(`model-${name}`);
  cpSync(from, dir, { recursive: true });
  const file = join(dir, 'arc-model.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  edit(manifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2));
  return dir;
}

/** Settings that select the model under test (nothing when the bundled one is it). */
function modelSettings(dir) {
  return dir === DEFAULT_MODEL_DIR ? {} : { 'arcContext.modelPath': dir };
}

let tc;
let vsix;
let browser;
let failures = 0;
/** Tests that failed as todos (known failures): counted apart, their logs kept for reading. */
let knownFailures = 0;
const todoTests = new Set();

before(async () => {
  // Each instance leaves ~60 MB (extracted VSIX, user data): keep only the latest run's.
  rmSync(h.TMP, { recursive: true, force: true });
  try {
    tc = h.toolchain();
    vsix = h.packageVsix();
    browser = await h.launchBrowser(tc);
  } catch (e) {
    failures += 1;
    throw e;
  }
}, { timeout: 30 * 60_000 });

after(async () => {
  await h.stopAll();
  // A failed run keeps its code-server logs, user data and failure screenshots for reading.
  if (failures === 0 && knownFailures === 0) rmSync(h.TMP, { recursive: true, force: true });
  else h.log(`${failures} failed, ${knownFailures} known failure(s) (todo); logs and screenshots kept under ${h.TMP}`);
});

/** One instance: started before its tests, stopped after; failures leave a screenshot + logs. */
function instance(name, options) {
  const ctx = { server: undefined, page: undefined };
  before(async () => {
    try {
      ctx.server = await h.startCodeServer(tc, { name, vsix, workspace: workspaceCopy(name), settings: options.settings });
      ctx.page = await h.openWorkbench(browser, ctx.server);
    } catch (e) {
      failures += 1;
      throw e;
    }
  }, { timeout: 5 * 60_000 });
  afterEach(async (t) => {
    if (t.passed !== false) return;
    if (todoTests.has(t.name)) knownFailures += 1;
    else failures += 1;
    if (!ctx.page) return;
    const shot = join(h.TMP, `failed-${t.name.replace(/[^\w]+/g, '-').slice(0, 60)}.png`);
    await ctx.page.screenshot({ path: shot }).catch(() => {});
    h.log(`failure screenshot ${shot}\n${h.extensionLogs(ctx.server)}`);
  });
  after(async () => {
    await ctx.page?.context().close().catch(() => {});
    await ctx.server?.stop();
  });
  return ctx;
}

/** The chat view's frame, revealed through "ARC: Focus Chat". */
async function openChat(page) {
  await h.runCommand(page, 'ARC: Focus Chat');
  const frame = await h.frameWith(page, '[data-testid="question-input"]');
  await frame.locator('[data-testid="question-input"]').waitFor({ state: 'visible', timeout: 30_000 });
  return frame;
}

/**
 * Picks the chat's context source in its dropdown. The first click into a webview can land
 * while the frame takes focus and the list closes again, so open-and-pick is retried until
 * the dropdown holds the value.
 */
async function chooseSource(frame, label) {
  const value = { 'Open files': 'open', Selection: 'selection', Workspace: 'workspace' }[label];
  const picker = frame.locator('[data-testid="source-picker"]');
  const option = picker.locator('vscode-option', { hasText: label });
  await h.expectEventually(async () => {
    if ((await picker.evaluate((d) => d.value)) === value) return true;
    if (!(await option.isVisible())) await picker.click({ timeout: 2_000 });
    await option.click({ timeout: 2_000 });
    return `source picker holds "${await picker.evaluate((d) => d.value)}"`;
  }, 30_000, 300);
}

async function askInChat(frame, question) {
  const input = frame.locator('[data-testid="question-input"] textarea');
  await input.fill(question);
  await input.press('Enter');
}

/**
 * Records, inside the webview, every state an answer card goes through and how long its text
 * was each time, so a test can tell a streamed answer from one that appeared all at once.
 */
async function watchAnswers(frame) {
  await frame.evaluate(() => {
    const seen = { states: [], lengths: [] };
    window.__arcE2E = seen;
    const record = () => {
      const card = [...document.querySelectorAll('[data-testid="answer"]')].pop();
      if (!card) return;
      const state = card.getAttribute('data-state');
      if (seen.states[seen.states.length - 1] !== state) seen.states.push(state);
      const len = (card.querySelector('[data-testid="answer-text"]')?.textContent ?? '').length;
      if (seen.lengths[seen.lengths.length - 1] !== len) seen.lengths.push(len);
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

const lastCard = (frame) => frame.locator('[data-testid="answer"]').last();

async function cardState(frame) {
  return lastCard(frame).getAttribute('data-state');
}

async function waitForCardState(frame, states, timeout = ANSWER_TIMEOUT) {
  await h.expectEventually(async () => {
    const s = await cardState(frame);
    return states.includes(s) ? true : `answer card state is ${s}`;
  }, timeout, 250);
  return cardState(frame);
}

// --- VS Code's own Chat view (selectors as measured in code-server 4.139.1) --------------

const CHAT_INPUT = '.interactive-input-part .monaco-editor';
const RESPONSES = '.interactive-list .interactive-item-container.interactive-response';

/** Opens the Chat view and waits until its model picker holds the ARC model (no setup step). */
async function openVsCodeChat(page) {
  await h.runCommand(page, 'Chat: Open Chat');
  await page.locator(CHAT_INPUT).first().waitFor({ timeout: 60_000 });
  const picker = page.locator('.interactive-input-part .action-label[aria-label^="Models"]').first();
  await h.expectEventually(async () => {
    const label = (await picker.getAttribute('aria-label').catch(() => '')) ?? '';
    return /ARC /.test(label) ? true : `model picker "${label}"`;
  }, 60_000, 300);
}

/**
 * Types a message into the Chat view, sends it and returns the new response's locator. Records
 * the response's text length at every DOM change (window.__arcChatLengths) to tell streaming
 * from an answer that appeared at once.
 */
async function sendVsCodeChat(page, text) {
  // The chat list is virtual: rows are found by their data-index, not their DOM order.
  const lastResponseRow = () => page.locator('.interactive-list .monaco-list-row').evaluateAll((rows) =>
    Math.max(-1, ...rows.filter((r) => r.querySelector('.interactive-response')).map((r) => Number(r.getAttribute('data-index')))));
  const before = await lastResponseRow();
  await page.locator(CHAT_INPUT).first().click();
  // @arc is sticky: the input may already start with it.
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Backspace');
  await page.keyboard.type(text, { delay: 5 });
  await page.keyboard.press('Enter');
  let index = before;
  await h.expectEventually(async () => {
    index = await lastResponseRow();
    return index > before || 'no response yet';
  }, 30_000, 100);
  const response = page.locator(`.interactive-list .monaco-list-row[data-index="${index}"] ${RESPONSES.split(' ').pop()}`);
  await response.evaluate((el) => {
    const lengths = [];
    window.__arcChatLengths = lengths;
    const value = () => el.querySelector('.value');
    const record = () => {
      const n = (value()?.textContent ?? '').length;
      if (lengths[lengths.length - 1] !== n) lengths.push(n);
    };
    new MutationObserver(record).observe(el, { subtree: true, childList: true, characterData: true });
    record();
  });
  return response;
}

async function chatCompleted(response, timeout = ANSWER_TIMEOUT) {
  await response.locator('.chat-response-completed-at').waitFor({ timeout });
}

/** The stats footer line of a chat answer (see statsFooter in src/extension/chatTurn.ts). */
const CHAT_FOOTER = /ARC mixed \(text \+ compressed\) · \d+(\.\d)?× · [\d,]+ source tokens → [\d,]+ positions · (\d+ text( \/ \d+ compressed)?|\d+ compressed) chunks? · encode [^·]+ · TTFT [^·]+ · [^·]+ tok\/s · cpu/;

// --- the decoder on a serving engine ------------------------------------------------------

const PYTHON = process.env.ARC_PYTHON ?? '/usr/bin/python3';
/** Why the engine scenario is skipped (no Python with torch for the stand-in server), or false. */
const NO_TORCH = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found; install python3-torch`;
  return r.status === 0 ? false : `${PYTHON} has no torch (install python3-torch)`;
})();

/**
 * The in-process (ONNX) answer from the CLI: same model, workspace, question and mode, greedy, and
 * free decoding (an engine picks its own tokens; extractive decoding is the in-process decoder's).
 */
function cliAnswer(modelDir, mode, question) {
  const r = spawnSync(process.execPath, [join(h.ROOT, 'dist', 'cli.js'), 'ask', '--model', modelDir, '--no-cache', '--threads', '1',
    '--root', join(h.E2E_DIR, 'workspace'), '--mode', mode, '--decoding', 'free', '--json', question], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `arc-context ask failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.stats.decoderBackend, undefined, 'the reference answer came from a server');
  return out.answer;
}

/** The text a Markdown answer shows (the webview renders answers with marked). */
function renderedText(md) {
  const html = marked.parse(md, { async: false, gfm: true, breaks: true });
  return html.replace(/<[^>]*>/g, '').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
const flat = (t) => t.replace(/\s+/g, '');

/** The shown answer equals the reference answer as rendered (whitespace aside); an empty answer is a failure. */
async function sameAnswer(locator, reference, what) {
  const shown = (await locator.textContent()) ?? '';
  h.log(`${what}: shown ${JSON.stringify(shown.trim())}, in-process ${JSON.stringify(reference)}`);
  assert.ok(reference.trim() !== '', `${what}: the in-process answer is empty`);
  assert.equal(flat(shown), flat(renderedText(reference)), `${what}: the answer through the engine differs from the in-process one`);
}

/** The modal consent dialog's text, once it is on screen. */
async function consentDialog(page) {
  const box = page.locator('.monaco-dialog-box');
  await box.waitFor({ timeout: ANSWER_TIMEOUT });
  return (await box.textContent()) ?? '';
}

describe('the VSIX', () => {
  it('carries the bundle, the default model and only this platform\'s onnxruntime and folder-watcher binaries', () => {
    const r = spawnSync('/usr/bin/python3', ['-c',
      'import json, sys, zipfile; print(json.dumps(zipfile.ZipFile(sys.argv[1]).namelist()))', vsix], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const files = JSON.parse(r.stdout).filter((f) => f.startsWith('extension/')).map((f) => f.slice('extension/'.length));
    for (const f of ['package.json', 'dist/extension.js', 'dist/webview.js', 'media/arc.css',
      'node_modules/onnxruntime-node/dist/index.js', 'node_modules/onnxruntime-common/dist/cjs/index.js',
      'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
      // The folder watcher's native part (its JS is in the bundle).
      'node_modules/@parcel/watcher-linux-x64-glibc/watcher.node']) {
      assert.ok(files.includes(f), `${f} is missing from the VSIX`);
    }
    if (HAS_DEFAULT_MODEL) {
      const manifest = JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'arc-model.json'), 'utf8'));
      const needed = ['arc-model.json', manifest.encoder.file, manifest.encoder.tokenizer,
        ...(manifest.decoder ? [manifest.decoder.file, manifest.decoder.embed, manifest.decoder.tokenizer] : [])];
      for (const f of needed) assert.ok(files.includes(`models/arc-tiny-code/${f}`), `default model file ${f} is missing`);
    }
    const unwanted = files.filter((f) => /^(src|webview|tools|bench|test\/(?!e2e\/screenshots\/))\//.test(f)
      || /\.(ts|map|py|safetensors)$/.test(f)
      || (f.includes('/bin/napi-v') && !f.includes('/linux/x64/'))
      || (f.startsWith('node_modules/') && !/^node_modules\/(onnxruntime-(node|common)|@parcel\/watcher-linux-x64-glibc)\//.test(f)));
    assert.deepEqual(unwanted, [], 'files that do not belong in the VSIX');
  });
});

describe('ARC Context in code-server', { timeout: 30 * 60_000 }, () => {
  describe(`main window (${HAS_DEFAULT_MODEL ? 'bundled default model' : 'tiny-arc fixture model'})`, () => {
    const w = instance('main', { settings: modelSettings(MODEL_DIR) });

    it('lists the ARC commands in the command palette', async () => {
      const rows = await h.paletteRows(w.page, 'ARC:', { minRows: TITLES.length, shot: 'palette' });
      const missing = TITLES.filter((t) => !rows.some((r) => r.startsWith(t)));
      assert.deepEqual(missing, [], `palette rows: ${JSON.stringify(rows)}`);
    });

    it('(a) "ARC: Compress and Ask…" shows the answer and the compression ratio in the panel', async () => {
      const { page } = w;
      const question = 'Which file defines `applyDiscount`?';
      await h.runCommand(page, 'ARC: Compress and Ask…');
      await h.pickQuickItem(page, '(1/2)', 'Workspace');
      await h.answerInputBox(page, '(2/2)', question);

      const panel = await h.frameWith(page, '[data-testid="panel-question"]');
      await h.expectEventually(async () => {
        const t = await panel.locator('[data-testid="panel-question"]').textContent();
        return t?.includes('applyDiscount') ? true : `panel title is "${t}"`;
      }, 30_000);
      const stats = panel.locator('[data-testid="answer"] [data-testid="stats-line"]');
      await stats.waitFor({ timeout: ANSWER_TIMEOUT });
      const answer = (await panel.locator('[data-testid="answer"] [data-testid="answer-text"]').textContent())?.trim() ?? '';
      const ratio = (await panel.locator('[data-testid="answer"] [data-testid="ratio"]').textContent())?.trim() ?? '';
      assert.notEqual(answer, '', 'empty answer in the panel');
      assert.match(ratio, /^\d+(\.\d)?×$/, `ratio "${ratio}"`);
      // Mixed mode (the default): source tokens per context position, text and vectors together.
      assert.ok(parseFloat(ratio) >= 1, `fewer source tokens than positions (ratio ${ratio})`);
      const forms = (await panel.locator('[data-testid="decoder-chunks"]').textContent()) ?? '';
      assert.match(forms, /^\d+ of \d+ \(((\d+ text)( \/ \d+ compressed)?|\d+ compressed) chunks?\)$/, `chunks given to the decoder "${forms}"`);
      const lists = await panel.locator('[data-testid="text-chunks"], [data-testid="compressed-chunks"]').count();
      assert.ok(lists > 0, 'the panel lists the chunks read as text / compressed');
      // The compression picture: totals and one bar row per file that was read.
      const totalRatio = await panel.locator('[data-testid="total-ratio"]').textContent();
      assert.match(totalRatio ?? '', /×$/);
      const files = await panel.locator('[data-testid="file-row"]').allTextContents();
      for (const f of ['pricing.ts', 'inventory.py', 'strings.js']) {
        assert.ok(files.some((r) => r.includes(f)), `no compression row for ${f}: ${JSON.stringify(files)}`);
      }
      answers.applyDiscount = answer;
      await h.screenshot(page, 'compress-and-ask-panel');
    });

    it('(a) the answer panel comes back after the window reloads (panel serializer)', async () => {
      const { page } = w;
      const panelBefore = await h.frameWith(page, '[data-testid="panel-question"]');
      const before = (await panelBefore.locator('[data-testid="answer"] [data-testid="answer-text"]').textContent())?.trim() ?? '';
      await h.runCommand(page, 'Developer: Reload Window');
      await page.waitForEvent('load', { timeout: 60_000 }).catch(() => undefined);
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      const panel = await h.frameWith(page, '[data-testid="panel-question"]', { timeout: 60_000 });
      await h.expectEventually(async () => {
        const t = await panel.locator('[data-testid="panel-question"]').textContent();
        return t?.includes('applyDiscount') ? true : `restored panel title is "${t}"`;
      }, 30_000);
      const after = (await panel.locator('[data-testid="answer"] [data-testid="answer-text"]').textContent())?.trim() ?? '';
      assert.equal(after, before, 'the restored panel shows the answer it showed before the reload');
      const files = await panel.locator('[data-testid="file-row"]').allTextContents();
      assert.ok(files.some((r) => r.includes('pricing.ts')), `restored compression rows: ${JSON.stringify(files)}`);
    });

    it('(b) sidebar chat streams an answer with stats and a citation that opens the file', async () => {
      const { page } = w;
      // Start from a single editor group so the citation opens where we look for it.
      await h.runCommand(page, 'View: Close All Editors');
      const chat = await openChat(page);
      await chooseSource(chat, 'Workspace');
      await watchAnswers(chat);
      await askInChat(chat, 'What is the value of `TAX_RATE`?');

      assert.equal(await waitForCardState(chat, ['done', 'error', 'cancelled']), 'done',
        await lastCard(chat).textContent());
      const seen = await chat.evaluate(() => window.__arcE2E);
      h.log(`chat answer states ${JSON.stringify(seen.states)}, text lengths ${JSON.stringify(seen.lengths)}`);
      assert.equal(seen.states[0], 'streaming', `the card did not stream first: ${JSON.stringify(seen.states)}`);

      const card = lastCard(chat);
      const answer = (await card.locator('[data-testid="answer-text"]').textContent())?.trim() ?? '';
      assert.notEqual(answer, '', 'empty answer');
      const stats = (await card.locator('[data-testid="stats-line"]').textContent()) ?? '';
      assert.match(stats, /source tokens → \d+ positions/, `stats line "${stats}"`);
      assert.match(stats, /\d+ (text|compressed)( \/ \d+ compressed)? chunks?/, `stats line has no chunk forms: "${stats}"`);
      assert.match(stats, /cpu/, `stats line names no provider: "${stats}"`);
      assert.match(stats, /tok\/s/, `stats line has no speed: "${stats}"`);
      answers.TAX_RATE = answer;

      await card.locator('[data-testid="citation"]').first().waitFor({ timeout: 10_000 });
      // Prefer the file that holds TAX_RATE when it is cited; any citation must open its file.
      const preferred = card.locator('[data-testid="citation"]', { hasText: 'pricing.ts' });
      const citation = (await preferred.count()) > 0 ? preferred.first() : card.locator('[data-testid="citation"]').first();
      const label = (await citation.textContent())?.trim() ?? '';
      const m = /^(.+?):(\d+)(?:-(\d+))?$/.exec(label);
      assert.ok(m, `citation label "${label}"`);
      await h.screenshot(page, 'chat-answer');
      await citation.click();
      const file = m[1].split('/').pop();
      await h.activeTab(page, file);
      // The cited lines are selected in the opened editor.
      const selected = await page.locator('.editor-group-container.active .monaco-editor .selected-text').count();
      assert.ok(selected > 0, 'the citation opened the file without selecting the cited lines');
      await h.screenshot(page, 'citation-opened');
    });

    it('(d) "ARC: Ask About Selection" answers about the selected lines', async () => {
      const { page } = w;
      await h.openFile(page, 'src/inventory.py');
      const editor = page.locator('.editor-group-container.active .monaco-editor .view-lines');
      await editor.click();
      // Select lines 1-6 (docstring through LOW_STOCK_THRESHOLD).
      await page.keyboard.press('Control+Home');
      for (let i = 0; i < 6; i++) await page.keyboard.press('Shift+ArrowDown');
      await h.expectEventually(async () =>
        (await page.locator('.editor-group-container.active .monaco-editor .selected-text').count()) > 0 || 'no selection', 5_000);

      await h.runCommand(page, 'ARC: Ask About Selection');
      await h.answerInputBox(page, 'Ask about the selection', 'What is the value of `LOW_STOCK_THRESHOLD`?');
      const chat = await h.frameWith(page, '[data-testid="question-input"]');
      await h.expectEventually(async () => {
        const q = await lastCard(chat).locator('.question').textContent().catch(() => '');
        return q?.includes('LOW_STOCK_THRESHOLD') ? true : `last chat question is "${q}"`;
      }, 30_000);
      assert.equal(await waitForCardState(chat, ['done', 'error', 'cancelled']), 'done', await lastCard(chat).textContent());
      const card = lastCard(chat);
      const meta = (await card.locator('.meta').textContent()) ?? '';
      assert.match(meta, /selection|inventory\.py/i, `the answer's source is "${meta}"`);
      const answer = (await card.locator('[data-testid="answer-text"]').textContent())?.trim() ?? '';
      assert.notEqual(answer, '', 'empty answer');
      const citations = await card.locator('[data-testid="citation"]').allTextContents();
      assert.ok(citations.length > 0, 'no citation');
      for (const c of citations) {
        const m = /^(.+?):(\d+)(?:-(\d+))?$/.exec(c.trim());
        assert.ok(m && m[1].endsWith('inventory.py'), `citation outside the selection's file: ${c}`);
        assert.ok(Number(m[3] ?? m[2]) <= 7, `citation ${c} reaches past the selected lines`);
      }
      answers.LOW_STOCK_THRESHOLD = answer;
      await h.screenshot(page, 'ask-about-selection');
    });

    /** Skips without the bundled model; marks the test a todo (checked, reported, not failing) while `notFinal` says why. */
    function gate(t, notFinal) {
      if (!HAS_DEFAULT_MODEL) {
        t.skip(notFinal);
        return false;
      }
      if (notFinal) {
        todoTests.add(t.name);
        t.todo(`checked, not yet required: ${notFinal}`);
      }
      return true;
    }

    it('the bundled default model answered the quick-start question (a) correctly', (t) => {
      if (!gate(t, defaultModelNotFinal())) return;
      assert.match(answers.applyDiscount ?? '', /src\/pricing\.ts/, `(a) which file defines applyDiscount: "${answers.applyDiscount}"`);
    });

    it('the bundled default model answered the value questions (b) and (d) correctly', (t) => {
      if (!gate(t, valueAnswersNotFinal())) return;
      assert.match(answers.TAX_RATE ?? '', /^0\.21\b/, `(b) value of TAX_RATE: "${answers.TAX_RATE}"`);
      assert.match(answers.LOW_STOCK_THRESHOLD ?? '', /^5\b/, `(d) value of LOW_STOCK_THRESHOLD: "${answers.LOW_STOCK_THRESHOLD}"`);
    });
  });

  describe('long answers (stop strings removed, long decoder window)', () => {
    // Stop must land while tokens are still coming. A real answer takes milliseconds, so this
    // package runs for seconds instead: no stop strings, and a 4096-position window (the
    // decoder computes RoPE from position ids, so any window length runs).
    const longModel = () => modelCopy('long', MODEL_DIR, (m) => {
      m.prompt.stop = [];
      m.prompt.maxNewTokens = 4000;
      // Free decoding: an extractive answer ends once it can no longer extend a span of the context.
      m.prompt.extractive = false;
      m.decoder.contextLength = 4096;
    });
    const w = instance('long', { get settings() { return { ...modelSettings(longModel()), 'arcContext.answerMode': 'none', 'chat.disableAIFeatures': false }; } });

    it('(c) Stop during generation stops the answer and keeps the partial text', async () => {
      const { page } = w;
      const chat = await openChat(page);
      await chooseSource(chat, 'Workspace');
      await watchAnswers(chat);
      await askInChat(chat, 'What are the parameters of `restock`?');
      // Wait for generated text, then press Stop while the card is still streaming.
      await h.expectEventually(async () => {
        const len = ((await lastCard(chat).locator('[data-testid="answer-text"]').textContent().catch(() => '')) ?? '').length;
        return len > 0 ? true : 'no token yet';
      }, ANSWER_TIMEOUT, 20);
      const stop = chat.locator('[data-testid="stop-button"]');
      assert.equal(await cardState(chat), 'streaming', 'the answer finished before Stop could be pressed');
      await stop.click();
      const lengthAtStop = ((await lastCard(chat).locator('[data-testid="answer-text"]').textContent()) ?? '').length;

      assert.equal(await waitForCardState(chat, ['done', 'error', 'cancelled'], 30_000), 'cancelled');
      const card = lastCard(chat);
      const note = (await card.locator('[data-testid="answer-error"]').textContent()) ?? '';
      assert.match(note, /stop|cancel/i, `no stopped note: "${note}"`);
      assert.equal(await card.locator('[data-testid="stats-line"]').count(), 0, 'a stopped answer shows final stats');
      const finalText = ((await card.locator('[data-testid="answer-text"]').textContent()) ?? '');
      assert.ok(finalText.length > 0, 'the partial answer was thrown away');
      // Generation really ended: the text no longer grows and the Stop button is gone.
      await h.expectEventually(async () => (await stop.isHidden()) || 'Stop button still shown', 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      const later = ((await card.locator('[data-testid="answer-text"]').textContent()) ?? '').length;
      assert.equal(later, finalText.length, 'the answer kept growing after Stop');
      h.log(`stopped at ${lengthAtStop} characters, final ${finalText.length}`);
      await h.screenshot(page, 'stopped-answer');
    });

    it('(h) the Chat view\'s stop button stops @arc: the decoder stops, no token after the stop', async () => {
      const { page } = w;
      await h.runCommand(page, 'View: Close All Editors');
      await openVsCodeChat(page);
      const response = await sendVsCodeChat(page, '@arc /workspace What are the parameters of `restock`?');
      const text = () => response.locator('.value').innerText().catch(() => '');
      // Streaming: the text grows over several DOM updates before anything is stopped.
      await h.expectEventually(async () => {
        const lengths = await page.evaluate(() => window.__arcChatLengths ?? []);
        return lengths.filter((n) => n > 0).length >= 5 || `text lengths so far ${JSON.stringify(lengths)}`;
      }, ANSWER_TIMEOUT, 50);
      const stop = page.locator('.interactive-input-part a.action-label[aria-label^="Cancel"]').first();
      await stop.click();
      const atStop = (await text()).length;
      await chatCompleted(response, 30_000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      const later = (await text()).length;
      const lengths = await page.evaluate(() => window.__arcChatLengths);
      h.log(`chat stop: ${atStop} characters at the click, ${later} after 1.5 s; lengths ${JSON.stringify(lengths.slice(-5))}`);
      assert.ok(later > 0, 'the partial answer was thrown away');
      assert.ok(later - atStop < 40, `the answer kept growing after Stop (${atStop} -> ${later})`);
      assert.doesNotMatch(await text(), /source tokens →/, 'a stopped answer shows the final stats');
      // The extension measured it: the stop reached the decoder, nothing was streamed after it.
      await h.expectEventually(async () => {
        const logs = h.extensionLogs(w.server);
        if (!/@arc: stop pressed in the Chat view/.test(logs)) return 'no stop in the extension log';
        const m = /@arc: stopped; (\d+) tokens arrived after the stop/.exec(logs);
        if (!m) return 'no stop measurement in the extension log';
        assert.equal(m[1], '0', 'tokens arrived after the stop');
        return /run \w+ \(none, workspace \([^)]*\)\) cancelled/.test(logs) || 'the run did not end cancelled';
      }, 15_000, 500);
      await h.screenshot(page, 'chat-view-stopped');
    });
  });

  describe('VS Code Chat view, fresh profile, nobody signed in (@arc participant and ARC model)', () => {
    const w = instance('chat', { settings: { ...modelSettings(MODEL_DIR), 'chat.disableAIFeatures': false } });

    it('(f) `@arc /workspace` streams an answer with references, anchors to the cited lines and the stats footer', async () => {
      const { page } = w;
      await openVsCodeChat(page);
      await h.screenshot(page, 'chat-view-model-picker');
      const response = await sendVsCodeChat(page, '@arc /workspace What is the value of `TAX_RATE`?');
      await chatCompleted(response);
      const body = await response.locator('.value').innerText();
      h.log(`@arc answer: ${JSON.stringify(body)}; text lengths ${JSON.stringify(await page.evaluate(() => window.__arcChatLengths))}`);
      assert.doesNotMatch(body, /Language model unavailable|error/i, body);
      assert.match(body, CHAT_FOOTER, `no stats footer in "${body}"`);
      const answer = body.split('\n').map((l) => l.trim()).filter(Boolean)[0] ?? '';
      assert.ok(answer && !/^Read from:/.test(answer), `no answer text before the citations: "${body}"`);
      // References: the files read ("Used N references").
      const used = (await response.locator('.chat-used-context-label').allTextContents()).join(' ');
      assert.match(used, /Used \d+ references?/, `references label "${used}"`);
      // Anchors to the cited lines; the one in pricing.ts (or any) opens its file with the lines selected.
      const anchors = response.locator('a.chat-inline-anchor-widget');
      const labels = await anchors.allTextContents();
      assert.ok(labels.length > 0, 'no anchors');
      for (const l of labels) assert.match(l.trim(), /^[\w./-]+:\d+(-\d+)?$/, `anchor "${l}"`);
      await h.screenshot(page, 'chat-view-arc');
      const preferred = response.locator('a.chat-inline-anchor-widget', { hasText: 'pricing.ts' });
      const anchor = (await preferred.count()) > 0 ? preferred.first() : anchors.first();
      const label = (await anchor.textContent()).trim();
      await anchor.click();
      await h.activeTab(page, label.split(':')[0].split('/').pop());
      await h.expectEventually(async () =>
        (await page.locator('.editor-group-container.active .monaco-editor .selected-text').count()) > 0
          || `the anchor ${label} opened its file without selecting the cited lines`, 10_000);
      await h.screenshot(page, 'chat-view-anchor-opened');
      // The status bar counts what the question put into the cache (it said "cache empty" before).
      const status = (await page.locator('.statusbar-item', { hasText: 'ARC' }).first().textContent()) ?? '';
      assert.match(status, /\d+ cached/, `status bar "${status}"`);
      // The model loaded without a notification that outlives the answer.
      assert.equal(await page.locator('.notifications-toasts .notification-toast', { hasText: 'loading model' }).count(), 0, 'a "loading model" notification is still on screen');
    });

    it('(g) `@arc /compare` answers in every mode and tabulates the timings', async () => {
      const { page } = w;
      const response = await sendVsCodeChat(page, '@arc /compare What is the value of `LOW_STOCK_THRESHOLD`?');
      await chatCompleted(response);
      const body = await response.locator('.value').innerText();
      for (const head of ['Mixed (text + compressed)', 'ARC (compressed)', 'Full text', 'No context']) {
        assert.ok(body.includes(head), `no ${head} section in "${body}"`);
      }
      const rows = await response.locator('table tr').count();
      assert.equal(rows, 5, 'the side-by-side table has a header and one row per mode');
      await response.locator('table').scrollIntoViewIfNeeded();
      await h.screenshot(page, 'chat-view-compare');
    });
  });

  describe('decoder on a serving engine (tools/engine_test_server.py standing in for vLLM)', { skip: NO_TORCH }, () => {
    // One snapshot of the model package for all three: the extension's encoder (modelPath), the
    // stand-in's decoder weights (--package) and the CLI's in-process reference answers, so a
    // model re-exported during the run cannot make them differ.
    const SERVED = 'arc-e2e-served';
    const snapshot = () => {
      const dir = tmpDir('model-engine');
      cpSync(MODEL_DIR, dir, { recursive: true, filter: (src) => !/heldout/.test(src) });
      return dir;
    };
    const env = { engine: undefined, model: undefined };
    before(async () => {
      try {
        env.model = snapshot();
        // As the README says for vLLM: --max-model-len at least decoder.contextLength + 1 (the
        // engine counts prompt + max_tokens; the in-process decoder needs one position less).
        const { decoder } = JSON.parse(readFileSync(join(env.model, 'arc-model.json'), 'utf8'));
        env.engine = await h.startEngineServer({ name: 'engine-server', python: PYTHON, packageDir: env.model, servedModel: SERVED,
          args: ['--max-model-len', String(decoder.contextLength + 1)] });
      } catch (e) {
        failures += 1;
        throw e;
      }
    }, { timeout: 3 * 60_000 });
    after(async () => {
      await env.engine?.stop();
    });
    const w = instance('engine', {
      get settings() {
        return {
          'arcContext.modelPath': env.model,
          'arcContext.decoderBackend': 'vllm',
          'arcContext.decoderUrl': env.engine.url,
          'arcContext.servedModel': SERVED,
          'chat.disableAIFeatures': false,
        };
      },
    });
    const stats = () => new RegExp(`decoder vllm @ ${env.engine.host.replace(/\./g, '\\.')} \\(server TTFT [^)]+\\)`);

    it('(i) consent declined: the dialog names the host, nothing reaches the server, the message says so', async () => {
      const { page } = w;
      const chat = await openChat(page);
      await chooseSource(chat, 'Workspace');
      await askInChat(chat, 'What is the value of `TAX_RATE`?');
      const dialog = await consentDialog(page);
      assert.ok(dialog.includes(env.engine.host), `the consent dialog does not name ${env.engine.host}: "${dialog}"`);
      assert.match(dialog, /vllm server/);
      await h.screenshot(page, 'engine-consent');
      await page.locator('.monaco-dialog-box .dialog-buttons .monaco-button', { hasText: 'Cancel' }).click();
      assert.equal(await waitForCardState(chat, ['done', 'error', 'cancelled']), 'error', await lastCard(chat).textContent());
      const err = (await lastCard(chat).locator('[data-testid="answer-error"]').textContent()) ?? '';
      assert.match(err, /Nothing was sent/, `card error "${err}"`);
      assert.ok(err.includes(env.engine.host), `the message does not name the host: "${err}"`);
      // Declining is not a model error: no "could not load the model" notification, no error status.
      assert.equal(await page.locator('.notifications-toasts .notification-toast', { hasText: 'could not load' }).count(), 0, 'a "could not load the model" notification');
      assert.notEqual(await chat.locator('[data-testid="model-status"]').getAttribute('data-state'), 'error', 'the model status shows an error');
      assert.deepEqual(env.engine.requests(), [], 'requests reached the engine server after consent was declined');
      assert.deepEqual(await env.engine.served(), []);
      await h.screenshot(page, 'engine-consent-declined');
    });

    it('(j) sidebar chat through the engine: consent allowed, the answers in every mode equal the in-process ones', async () => {
      const { page } = w;
      const chat = await openChat(page);
      const question = 'What is the value of `TAX_RATE`?';
      await askInChat(chat, question);
      const dialog = await consentDialog(page);
      assert.ok(dialog.includes(env.engine.host), dialog);
      await page.locator('.monaco-dialog-box .dialog-buttons .monaco-button', { hasText: 'Allow' }).click();
      assert.equal(await waitForCardState(chat, ['done', 'error', 'cancelled']), 'done', await lastCard(chat).textContent());
      const card = lastCard(chat);
      const line = (await card.locator('[data-testid="stats-line"]').textContent()) ?? '';
      assert.match(line, stats(), `the stats line does not name the backend: "${line}"`);
      await sameAnswer(card.locator('[data-testid="answer-text"]'), cliAnswer(env.model, 'mixed', question), 'sidebar, mixed');
      const served = await env.engine.served();
      assert.ok(served.length >= 1 && served.every((r) => r.path === '/v1/completions' && r.outcome === 'ok'), JSON.stringify(served));
      await h.screenshot(page, 'engine-chat-answer');
      // The other modes, asked through the card's Compare button, through the engine as well.
      await card.locator('[data-testid="compare-answer"]').click();
      await h.expectEventually(async () => {
        const states = Object.fromEntries(await chat.locator('[data-testid="compare"] section.compare-col').evaluateAll((cols) => cols.map((c) => [c.getAttribute('data-mode'), c.getAttribute('data-state')])));
        return ['arc', 'full', 'none'].every((m) => ['done', 'error', 'cancelled'].includes(states[m])) || `compare columns ${JSON.stringify(states)}`;
      }, ANSWER_TIMEOUT, 300);
      for (const mode of ['arc', 'full', 'none']) {
        const col = chat.locator(`[data-testid="compare"] section.compare-col[data-mode="${mode}"]`).last();
        assert.equal(await col.getAttribute('data-state'), 'done', `${mode}: ${await col.textContent()}`);
        await sameAnswer(col.locator('[data-testid="answer-text"]'), cliAnswer(env.model, mode, question), `sidebar compare, ${mode}`);
      }
      assert.equal((await env.engine.served()).length, served.length + 3, 'each mode is one request to the engine');
    });

    it('(k) "Compress and Ask…" through the engine answers as the in-process decoder does', async () => {
      const { page } = w;
      const question = 'Which file defines `applyDiscount`?';
      await h.runCommand(page, 'ARC: Compress and Ask…');
      await h.pickQuickItem(page, '(1/2)', 'Workspace');
      await h.answerInputBox(page, '(2/2)', question);
      const panel = await h.frameWith(page, '[data-testid="panel-question"]');
      const line = panel.locator('[data-testid="answer"] [data-testid="stats-line"]');
      await line.waitFor({ timeout: ANSWER_TIMEOUT });
      assert.match((await line.textContent()) ?? '', stats());
      await sameAnswer(panel.locator('[data-testid="answer"] [data-testid="answer-text"]'), cliAnswer(env.model, 'mixed', question), 'Compress and Ask');
      // Consent is asked once per host: no second dialog.
      assert.equal(await page.locator('.monaco-dialog-box').count(), 0, 'a second consent dialog');
      await h.screenshot(page, 'engine-compress-and-ask');
    });

    it('(l) `@arc /workspace` in the Chat view answers through the engine with the backend in its footer', async () => {
      const { page } = w;
      await h.runCommand(page, 'View: Close All Editors');
      // A toast over the Chat view's input would take the click meant for it.
      await h.runCommand(page, 'Notifications: Clear All Notifications');
      await openVsCodeChat(page);
      const question = 'What is the value of `LOW_STOCK_THRESHOLD`?';
      const before = (await env.engine.served()).length;
      const response = await sendVsCodeChat(page, `@arc /workspace ${question}`);
      await chatCompleted(response);
      const body = await response.locator('.value').innerText();
      assert.match(body, stats(), `no backend in the footer of "${body}"`);
      // The answer is what follows the progress summary ("Completed N steps in …") and the
      // references label ("Used N references"; either may come first, or be missing, as the Chat
      // view renders them) and precedes the "Read from:" anchors and the footer.
      const shown = body.replace(/^(\s*(Completed \d+ steps?|Used \d+ references?)[^\n]*\n)+/, '').split(/\n\s*Read from:|\n\s*ARC mixed/)[0];
      assert.equal(flat(shown), flat(renderedText(cliAnswer(env.model, 'mixed', question))), `@arc answer "${shown}"`);
      assert.equal((await env.engine.served()).length, before + 1);
      await h.screenshot(page, 'engine-chat-view');
    });
  });

  describe('broken model folder setting', () => {
    const brokenModel = () => {
      const dir = tmpDir('model-broken');
      writeFileSync(join(dir, 'arc-model.json'), '{ "format": "arc-model/1", "name": ');
      return dir;
    };
    const w = instance('broken', { get settings() { return { 'arcContext.modelPath': brokenModel() }; } });

    it('(e) shows an error notification that offers "Select Model…"', async () => {
      const { page } = w;
      await h.runCommand(page, 'ARC: Ask About Workspace');
      await h.answerInputBox(page, 'Ask about the workspace', 'Which file defines `slugify`?');
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'ARC:' }).first();
      await toast.waitFor({ timeout: 60_000 });
      const text = (await toast.textContent()) ?? '';
      assert.match(text, /arc-model\.json|manifest|model/i, `notification "${text}"`);
      const select = toast.locator('.monaco-button', { hasText: 'Select Model…' });
      await select.waitFor({ timeout: 5_000 });
      // The chat's model status line shows the error as well.
      const chat = await h.frameWith(page, '[data-testid="model-status"]');
      const status = chat.locator('[data-testid="model-status"]');
      await h.expectEventually(async () =>
        (await status.getAttribute('data-state')) === 'error' || `model status "${await status.textContent()}"`, 30_000);
      assert.match((await status.textContent()) ?? '', /arc-model\.json/);
      await h.screenshot(page, 'broken-model-notification');
      // The way out works: the button opens the model picker with the bundled model.
      await select.click();
      await h.quickPickRow(page, 'ARC: Select Model…', 'arc-tiny-code', 15_000).catch((e) => {
        throw new Error(`"Select Model…" did not open the model picker: ${e.message}`);
      });
      await page.keyboard.press('Escape');
    });
  });
});
