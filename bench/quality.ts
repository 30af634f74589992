// Answer quality: exact match per mode (mixed / arc / full / none) and per question kind on the
// model's held-out questions; accuracy against codebase size: the answer's file plus 0 / 4 / 16 /
// 64 distractor files at the same decoder budget, mixed and arc against full (which fits fewer of
// them); and the whole-package set (heldout-repos.jsonl), asked like `ask --root FOLDER`.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AnswerMode, ArcModel } from '../src/core/api';
import { chunkFiles } from '../src/core/context/chunker';
import { isArcError } from '../src/core/errors';
import { seededRandom } from '../src/core/generate';
import type { SourceInput } from '../src/core/types';
import { evalRows, isExactMatch, parseEvalData, type EvalRowInput } from '../src/cli/eval';
import { askOnce } from './ask';
import { chunkOptions } from './latency';
import type { CurveFigures, CurvePoint, QualityExample, QualityModeFigures, QualitySection, RepoModeFigures, RepoQuality } from './types';
import { round, shuffled } from './util';

export interface QaRow extends EvalRowInput {
  kind: string;
}

export interface QualityOptions {
  /** Rows for the per-mode exact match (0: all). */
  rows: number;
  /** Rows for the distractor curve. */
  curveRows: number;
  distractors: number[];
  /** The whole-package set (heldout-repos.jsonl), if any, and how many of its rows (0: all). */
  reposData?: string;
  reposRows?: number;
  maxNewTokens?: number;
  signal?: AbortSignal;
  log: (line: string) => void;
}

/** The eval JSONL plus its "kind" field ("unknown" where a line has none). */
export function parseQaData(text: string, file: string): QaRow[] {
  const rows = parseEvalData(text, file);
  const kinds = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const k = (JSON.parse(l) as { kind?: unknown }).kind;
      return typeof k === 'string' ? k : 'unknown';
    });
  return rows.map((r, i) => ({ ...r, kind: kinds[i]! }));
}

/** Rows taken in turn from each kind, so a limited run still covers every kind. */
export function interleaveKinds(rows: readonly QaRow[]): QaRow[] {
  const byKind = new Map<string, QaRow[]>();
  for (const r of rows) byKind.set(r.kind, [...(byKind.get(r.kind) ?? []), r]);
  const lists = [...byKind.values()];
  const out: QaRow[] = [];
  for (let i = 0; out.length < rows.length; i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The name a question asks about: its first backquoted identifier. */
export function askedName(question: string): string | null {
  return /`([^`\n]+)`/.exec(question)?.[1]?.trim() ?? null;
}

/** Whether `text` defines `name` at the start of a line (def, class, function, const, assignment, method). */
export function definesName(text: string, name: string): boolean {
  const n = escapeRegExp(name);
  const re = new RegExp(
    `^[ \\t]*(?:export\\s+)?(?:default\\s+)?(?:async\\s+)?(?:(?:def|class|function\\*?|const|let|var|interface|type|enum)\\s+${n}\\b|(?:exports\\.|module\\.exports\\.|self\\.|this\\.)?${n}\\s*[:=(])`,
    'm',
  );
  return re.test(text);
}

type QaFile = EvalRowInput['files'][number];

/** Index of the file that holds the answer: the one defining the name, else the one mentioning it. */
export function answerFileIndex(row: EvalRowInput): number {
  const name = askedName(row.question);
  if (name === null) return row.files.length - 1;
  const defining = row.files.findIndex((f) => definesName(f.text, name));
  if (defining >= 0) return defining;
  const mentioning = row.files.findIndex((f) => f.text.includes(name));
  return mentioning >= 0 ? mentioning : row.files.length - 1;
}

const fileKey = (f: QaFile): string => `${f.path}\0${f.text}`;
const topDir = (p: string): string => p.split('/')[0]!;

/**
 * The answer's file plus `k` distractors: the row's own other files first, then other held-out
 * files with the same top-level folder (package), then any; never a file that defines the name.
 * Lists for growing k are nested, so each point of the curve adds files to the previous one.
 */
export function distractorRow(row: EvalRowInput, pool: readonly QaFile[], k: number, seed: number): { files: QaFile[]; answer: number } {
  const ai = answerFileIndex(row);
  const answer = row.files[ai]!;
  const name = askedName(row.question) ?? '';
  const seen = new Set([fileKey(answer)]);
  const ok = (f: QaFile): boolean => {
    if (seen.has(fileKey(f)) || (name !== '' && definesName(f.text, name))) return false;
    seen.add(fileKey(f));
    return true;
  };
  const random = seededRandom(seed);
  const own = row.files.filter((_, i) => i !== ai);
  const others = shuffled(pool, random);
  const candidates = [...own, ...others.filter((f) => topDir(f.path) === topDir(answer.path)), ...others].filter(ok);
  const files = shuffled([answer, ...candidates.slice(0, k)], seededRandom(seed + k + 1));
  return { files, answer: files.indexOf(answer) };
}

/**
 * Sources for ask(). Each file gets its own line offset: files with the same path (two pieces
 * of one file) stay separate sources, and a citation tells which one was chosen. The model never
 * sees line numbers (the chunk header carries the path only).
 */
const LINE_STRIDE = 1_000_000;
function sourcesOf(files: readonly QaFile[]): SourceInput[] {
  return files.map((f, i) => ({ path: f.path, text: f.text, origin: 'workspace', startLine: i * LINE_STRIDE + 1 }));
}

interface RowOutcome {
  prediction: string;
  correct: boolean;
  answerIncluded: boolean;
  includedTokens: number;
  error?: string;
}

async function askRow(model: ArcModel, question: string, answers: string[], files: readonly QaFile[], answer: number, mode: AnswerMode, cacheDir: string, opts: QualityOptions): Promise<RowOutcome> {
  try {
    const out = await askOnce(model, { question, mode, sources: mode === 'none' ? [] : sourcesOf(files), ...(opts.maxNewTokens ? { maxNewTokens: opts.maxNewTokens } : {}) }, mode === 'arc' || mode === 'mixed' ? cacheDir : null, opts.signal);
    const lo = answer * LINE_STRIDE + 1;
    return {
      prediction: out.answer.trim(),
      correct: isExactMatch(out.answer, answers),
      answerIncluded: out.included.some((c) => c.startLine >= lo && c.startLine < lo + LINE_STRIDE),
      includedTokens: out.stats.sourceTokens,
    };
  } catch (e) {
    if (isArcError(e) && e.code === 'cancelled') throw e;
    return { prediction: '', correct: false, answerIncluded: false, includedTokens: 0, error: String(e) };
  }
}

/** Rows whose predictions are kept in the result, to show what the model answers. */
const EXAMPLES = 6;

function modeFigures(kinds: string[], correct: boolean[], examples: QualityExample[]): QualityModeFigures {
  const perKind: Record<string, { n: number; exactMatch: number }> = {};
  kinds.forEach((k, i) => {
    const e = (perKind[k] ??= { n: 0, exactMatch: 0 });
    e.n++;
    if (correct[i]) e.exactMatch++;
  });
  for (const e of Object.values(perKind)) e.exactMatch = round(e.exactMatch / e.n, 4);
  const errors = examples.filter((e) => e.error !== undefined).length;
  return { n: correct.length, exactMatch: round(correct.filter(Boolean).length / Math.max(1, correct.length), 4), perKind, errors, examples: examples.slice(0, EXAMPLES) };
}

export async function runQuality(model: ArcModel, dataPath: string, opts: QualityOptions): Promise<QualitySection> {
  const t0 = performance.now();
  const all = parseQaData(await readFile(dataPath, 'utf8'), dataPath);
  const rows = interleaveKinds(all).slice(0, opts.rows > 0 ? opts.rows : undefined);
  const cacheDir = await mkdtemp(path.join(os.tmpdir(), 'arc-bench-quality-'));
  try {
    const modes = {} as QualitySection['modes'];
    for (const mode of ['mixed', 'arc', 'full', 'none'] as const) {
      // eval's own row runner (a row's pieces of one file merged by path), so these figures are
      // `arc-context eval`'s on the same rows.
      const r = await evalRows(model, rows, { mode, cacheDir: mode === 'arc' || mode === 'mixed' ? cacheDir : null, signal: opts.signal, ...(opts.maxNewTokens ? { maxNewTokens: opts.maxNewTokens } : {}) });
      const examples: QualityExample[] = r.rows.map((x, i) => {
        const row = rows[i] as QaRow; // evalRows answers the rows in order
        return { id: x.id, kind: row.kind, question: row.question, expected: row.answers[0] ?? '', prediction: x.prediction, correct: x.correct, ...(x.error !== undefined ? { error: x.error } : {}) };
      });
      modes[mode] = modeFigures(
        rows.map((row) => row.kind),
        r.rows.map((x) => x.correct),
        examples,
      );
      opts.log(`quality: ${mode} exact match ${modes[mode].exactMatch} on ${rows.length} rows`);
    }

    const pool = [...new Map(all.flatMap((r) => r.files).map((f) => [fileKey(f), f])).values()];
    const curveRows = interleaveKinds(all).slice(0, opts.curveRows);
    const curve: CurvePoint[] = [];
    for (const k of opts.distractors) {
      const acc = { mixed: { c: 0, inc: 0, src: 0, used: 0 }, arc: { c: 0, inc: 0, src: 0, used: 0 }, full: { c: 0, inc: 0, src: 0, used: 0 } };
      for (const [i, row] of curveRows.entries()) {
        const { files, answer } = distractorRow(row, pool, k, 1000 + i);
        const sourceTokens = chunkFiles(
          sourcesOf(files).map((s) => ({ path: s.path, text: s.text!, startLine: s.startLine!, origin: s.origin })),
          model.tokenizer,
          chunkOptions(model),
        ).reduce((n, c) => n + c.tokenIds.length, 0);
        for (const mode of ['mixed', 'arc', 'full'] as const) {
          const r = await askRow(model, row.question, row.answers, files, answer, mode, cacheDir, opts);
          const a = acc[mode];
          a.c += Number(r.correct);
          a.inc += Number(r.answerIncluded);
          a.src += sourceTokens;
          a.used += r.includedTokens;
        }
      }
      const n = Math.max(1, curveRows.length);
      const fig = (a: (typeof acc)['arc']): CurveFigures => ({ exactMatch: round(a.c / n, 4), answerIncluded: round(a.inc / n, 4), meanSourceTokens: Math.round(a.src / n), meanIncludedTokens: Math.round(a.used / n) });
      curve.push({ distractors: k, rows: curveRows.length, mixed: fig(acc.mixed), arc: fig(acc.arc), full: fig(acc.full) });
      opts.log(`quality: ${k} distractors: mixed ${fig(acc.mixed).exactMatch}, arc ${fig(acc.arc).exactMatch}, full ${fig(acc.full).exactMatch}`);
    }
    const repos = opts.reposData ? await runRepoQuality(model, opts.reposData, cacheDir, opts) : undefined;
    return { data: dataPath, rows: rows.length, modes, curve, ...(repos ? { repos } : {}), seconds: round((performance.now() - t0) / 1000) };
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/** The whole-package set: every mode through eval's own row runner (`ask --root` per row). */
export async function runRepoQuality(model: ArcModel, dataPath: string, cacheDir: string, opts: QualityOptions): Promise<RepoQuality> {
  const t0 = performance.now();
  const all = parseEvalData(await readFile(dataPath, 'utf8'), dataPath, path.dirname(path.resolve(dataPath)));
  const rows = opts.reposRows && opts.reposRows > 0 ? all.slice(0, opts.reposRows) : all;
  const modes: RepoQuality['modes'] = {};
  for (const mode of ['mixed', 'arc', 'full', 'none'] as const) {
    const r = await evalRows(model, rows, { mode, cacheDir, signal: opts.signal, ...(opts.maxNewTokens ? { maxNewTokens: opts.maxNewTokens } : {}) });
    const mean = (f: (x: (typeof r.rows)[number]) => number): number => (r.rows.length > 0 ? r.rows.reduce((s, x) => s + f(x), 0) / r.rows.length : 0);
    const ttft = r.rows.map((x) => x.ttftMs).sort((a, b) => a - b);
    const figures: RepoModeFigures = {
      n: r.n,
      exactMatch: round(r.exactMatch, 4),
      perKind: Object.fromEntries(Object.entries(r.byKind).map(([k, g]) => [k, { n: g.n, exactMatch: round(g.exactMatch, 4) }])),
      answerChunk: { text: round(r.answerChunk?.text ?? 0, 4), compressed: round(r.answerChunk?.compressed ?? 0, 4), absent: round(r.answerChunk?.absent ?? 0, 4) },
      meanSourceTokens: Math.round(mean((x) => x.sourceTokens)),
      meanContextPositions: Math.round(mean((x) => x.contextPositions)),
      medianTtftMs: round(ttft[Math.floor(ttft.length / 2)] ?? 0, 1),
      errors: r.rows.filter((x) => x.error !== undefined).length,
    };
    modes[mode] = figures;
    opts.log(`quality (whole packages): ${mode} exact match ${figures.exactMatch} on ${r.n} rows, ${figures.meanSourceTokens} source tokens read`);
  }
  return { data: dataPath, rows: rows.length, modes, seconds: round((performance.now() - t0) / 1000) };
}
