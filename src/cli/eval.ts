// `arc-context eval`: exact-match evaluation over a JSONL file of questions with their files or
// folder, in one mode, through the same ask() pipeline the editor uses.
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { AnswerMode, ArcModel } from '../core/api';
import { ask } from '../core/ask';
import { ArcError, errorMessage } from '../core/errors';
import { loadModel } from '../core/model';
import type { AskEvent, AskRequest, AskStats, Citation, SourceInput } from '../core/types';
import { MODEL_OPTIONS, TEXT_BUDGET_USAGE, UsageError, loadOptions, parse, parseIntOption, parseDecoding, parseTextBudget, requireString, type Command } from './args';
import { PIPELINE_MODEL_USAGE, PIPELINE_OPTIONS, cacheDirFrom, modelDirFrom, progressBar } from './compress';

const usage = `Usage: arc-context eval --data FILE.jsonl --mode mixed|arc|full|none [--limit N] [--json] [options]
Ask every question of the file and score the answers by exact match.
Each line: {"id": ..., "question": "...", "answers": ["..."], and the context:
  "files": [{"path": "...", "text": "..."}] (may be [] for closed-book rows), and/or
  "root": "FOLDER" (relative to the JSONL file's folder; asked like \`ask --root FOLDER\`)}
Optional: "kind" (scores are also given per kind), "answerPath" + "answerLine" (the line that
answers the question, as the pipeline names the file: then each row says whether the chunk holding
it reached the decoder as text, compressed, or not at all).
${PIPELINE_MODEL_USAGE}
  --data FILE        the JSONL file (required)
  --mode M           mixed, arc, full or none (required)
${TEXT_BUDGET_USAGE}
  --limit N          only the first N rows
  --max-new-tokens N answer length limit (default: the manifest's)
  --json             print one JSON line {n, exactMatch, meanSourceTokens, answerChunk: {n, text,
                     compressed, absent}, mode, textBudget, wallMs, byKind: {KIND: {n, exactMatch,
                     meanSourceTokens, answerChunk}}, rows: [{id, kind, prediction, correct, ttftMs,
                     sourceTokens, textTokens, contextPositions, textChunks, compressedChunks,
                     answerChunk, error}]}`;

export interface EvalRowInput {
  id: string;
  question: string;
  answers: string[];
  files: { path: string; text: string }[];
  /** Folder scanned for the row (absolute when parseEvalData was given a base folder). */
  root?: string;
  kind?: string;
  /** Where the answer is: the path as the pipeline shows it and a 1-based line. */
  answerPath?: string;
  answerLine?: number;
}

/** How the chunk holding the answer line reached the decoder. */
export type AnswerChunk = 'text' | 'compressed' | 'absent';

export interface EvalRowResult {
  id: string;
  kind?: string;
  prediction: string;
  correct: boolean;
  ttftMs: number;
  /** Source tokens of the chunks that reached the decoder (0 closed book or on an error). */
  sourceTokens: number;
  /** Of sourceTokens, those read as text. */
  textTokens: number;
  contextPositions: number;
  /** Included chunks read as text and read compressed. */
  textChunks: number;
  compressedChunks: number;
  /** Present when the row names its answer's place (answerPath + answerLine). */
  answerChunk?: AnswerChunk;
  /** Present when the pipeline ended with an error for this row. */
  error?: string;
}

/** Shares of rows (with answerPath/answerLine) whose answer chunk reached the decoder in each form. */
export interface AnswerChunkShares {
  n: number;
  text: number;
  compressed: number;
  absent: number;
}

export interface EvalGroupSummary {
  n: number;
  exactMatch: number;
  meanSourceTokens: number;
  answerChunk?: AnswerChunkShares;
}

export interface EvalResult extends EvalGroupSummary {
  mode: AnswerMode;
  /** --text-budget when given (mixed mode). */
  textBudget?: number;
  /** Milliseconds from the first row to the last (model loading not included). */
  wallMs: number;
  byKind: Record<string, EvalGroupSummary>;
  rows: EvalRowResult[];
}

/**
 * Parses and checks the JSONL; a malformed line is a usage error naming its line number. With
 * `baseDir` (the JSONL file's folder), a row's "root" is resolved against it and must be a folder.
 */
export function parseEvalData(text: string, file: string, baseDir?: string): EvalRowInput[] {
  const rows: EvalRowInput[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new UsageError(`${where}: not JSON (${errorMessage(e)})`);
    }
    const o = v as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${where}: each line must be a JSON object`);
    if (typeof o.id !== 'string' && typeof o.id !== 'number') throw new UsageError(`${where}: "id" must be a string or number`);
    if (typeof o.question !== 'string') throw new UsageError(`${where}: "question" must be a string`);
    if (!Array.isArray(o.answers) || o.answers.some((a) => typeof a !== 'string')) throw new UsageError(`${where}: "answers" must be a list of strings`);
    if (o.files === undefined && o.root === undefined) {
      throw new UsageError(`${where}: the row has neither "files" (a list, [] for a closed-book row) nor "root" (a folder)`);
    }
    const files = o.files ?? [];
    if (!Array.isArray(files) || files.some((f) => typeof f !== 'object' || f === null || typeof (f as { path?: unknown }).path !== 'string' || typeof (f as { text?: unknown }).text !== 'string')) {
      throw new UsageError(`${where}: "files" must be a list of {"path", "text"} objects`);
    }
    const row: EvalRowInput = { id: String(o.id), question: o.question, answers: o.answers as string[], files: files as { path: string; text: string }[] };
    if (o.root !== undefined) {
      if (typeof o.root !== 'string' || o.root.trim() === '') throw new UsageError(`${where}: "root" must be a folder path (a string)`);
      row.root = o.root;
      if (baseDir !== undefined) {
        row.root = path.resolve(baseDir, o.root);
        let isDir = false;
        try {
          isDir = statSync(row.root).isDirectory();
        } catch {
          // reported below
        }
        if (!isDir) throw new UsageError(`${where}: "root" ${JSON.stringify(o.root)} is not a folder (looked for ${row.root}; roots are relative to the JSONL file's folder)`);
      }
    }
    if (o.kind !== undefined) {
      if (typeof o.kind !== 'string') throw new UsageError(`${where}: "kind" must be a string`);
      row.kind = o.kind;
    }
    if (o.answerPath !== undefined || o.answerLine !== undefined) {
      if (typeof o.answerPath !== 'string' || typeof o.answerLine !== 'number' || !Number.isInteger(o.answerLine) || o.answerLine < 1) {
        throw new UsageError(`${where}: "answerPath" (a string) and "answerLine" (an integer >= 1) go together`);
      }
      row.answerPath = o.answerPath;
      row.answerLine = o.answerLine;
    }
    rows.push(row);
  }
  return rows;
}

/** Exact match after trimming both sides: the model's answer ends at a stop string, not a space. */
export function isExactMatch(prediction: string, answers: readonly string[]): boolean {
  const p = prediction.trim();
  return answers.some((a) => a.trim() === p);
}

const MODES: readonly AnswerMode[] = ['mixed', 'arc', 'full', 'none'];

/**
 * A row may hold several excerpts of one file. The pipeline keeps one source per path (an
 * unsaved editor wins over the disk), so excerpts of the same path are joined, in row order,
 * into one text; otherwise the excerpt holding the answer could be dropped silently.
 */
export function mergeByPath(files: { path: string; text: string }[]): { path: string; text: string }[] {
  const merged = new Map<string, string[]>();
  for (const f of files) {
    const parts = merged.get(f.path) ?? [];
    parts.push(f.text.endsWith('\n') ? f.text : f.text + '\n');
    merged.set(f.path, parts);
  }
  return [...merged].map(([path, parts]) => ({ path, text: parts.join('') }));
}

/** What answerChunkOf needs of the selection event; `text` / `compressed` split `included` by form. */
export type SelectionEvent = Pick<Extract<AskEvent, { type: 'selection' }>, 'included'> & { text?: Citation[]; compressed?: Citation[] };

/**
 * In which form the chunk holding `answerPath:answerLine` reached the decoder. Without the
 * selection's per-form lists (a pipeline before mixed mode), every included chunk took the mode's
 * form (arc: compressed, full: text). A full-mode chunk cut to fit counts as text even when the
 * line lies in its cut part.
 */
export function answerChunkOf(selection: SelectionEvent | null, mode: AnswerMode, answerPath: string, answerLine: number): AnswerChunk {
  if (selection === null) return 'absent';
  const covers = (cs: readonly Citation[] | undefined): boolean => (cs ?? []).some((c) => c.path === answerPath && c.startLine <= answerLine && answerLine <= c.endLine);
  if (selection.text !== undefined || selection.compressed !== undefined) {
    return covers(selection.text) ? 'text' : covers(selection.compressed) ? 'compressed' : 'absent';
  }
  if (!covers(selection.included)) return 'absent';
  return mode === 'arc' ? 'compressed' : mode === 'full' ? 'text' : 'absent';
}

function rowFigures(stats: AskStats | null): Pick<EvalRowResult, 'sourceTokens' | 'textTokens' | 'contextPositions' | 'textChunks' | 'compressedChunks'> {
  if (stats === null) return { sourceTokens: 0, textTokens: 0, contextPositions: 0, textChunks: 0, compressedChunks: 0 };
  const { sourceTokens, textTokens, contextPositions, textChunks, compressedChunks } = stats;
  return { sourceTokens, textTokens, contextPositions, textChunks, compressedChunks };
}

/** n, exact match, mean source tokens and answer-chunk shares of a group of rows. */
export function summarize(rows: readonly EvalRowResult[]): EvalGroupSummary {
  const n = rows.length;
  const out: EvalGroupSummary = {
    n,
    exactMatch: n > 0 ? rows.filter((r) => r.correct).length / n : 0,
    meanSourceTokens: n > 0 ? rows.reduce((s, r) => s + r.sourceTokens, 0) / n : 0,
  };
  const placed = rows.filter((r) => r.answerChunk !== undefined);
  if (placed.length > 0) {
    const share = (form: AnswerChunk): number => placed.filter((r) => r.answerChunk === form).length / placed.length;
    out.answerChunk = { n: placed.length, text: share('text'), compressed: share('compressed'), absent: share('absent') };
  }
  return out;
}

/** Rows that have a kind, grouped by it in first-seen order. */
export function summarizeByKind(rows: readonly EvalRowResult[]): Record<string, EvalGroupSummary> {
  const groups = new Map<string, EvalRowResult[]>();
  for (const r of rows) if (r.kind !== undefined) groups.set(r.kind, [...(groups.get(r.kind) ?? []), r]);
  return Object.fromEntries([...groups].map(([k, rs]) => [k, summarize(rs)]));
}

/** The human summary: one line per kind and one for all rows. */
export function summaryTable(result: EvalResult): string {
  const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);
  const head = ['kind', 'n', 'exact', 'answer as text', 'compressed', 'absent', 'mean source tokens'];
  const line = (name: string, g: EvalGroupSummary): string[] => [
    name,
    String(g.n),
    pct(g.exactMatch),
    pct(g.answerChunk?.text),
    pct(g.answerChunk?.compressed),
    pct(g.answerChunk?.absent),
    g.meanSourceTokens.toFixed(0),
  ];
  const body = [...Object.entries(result.byKind).map(([k, g]) => line(k, g)), line('all', result)];
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [fmt(head), ...body.map(fmt)].join('\n') + '\n';
}

export interface EvalRunOptions {
  mode: AnswerMode;
  textBudget?: number;
  /** Extractive decoding on or off; default: the manifest's prompt.extractive. */
  extractive?: boolean;
  maxNewTokens?: number;
  cacheDir?: string | null;
  signal?: AbortSignal;
  /** Called before each row with the rows done and correct so far. */
  onRow?: (done: number, correct: number) => void;
}

/**
 * Asks every row through ask() and scores it: the body of `arc-context eval`, shared with the
 * bench's quality section. A cancelled run throws; any other failure scores its row as wrong.
 */
export async function evalRows(model: ArcModel, rows: readonly EvalRowInput[], o: EvalRunOptions): Promise<EvalResult> {
  const { mode, textBudget } = o;
  const results: EvalRowResult[] = [];
  const t0 = performance.now();
  for (const row of rows) {
    o.onRow?.(results.length, results.filter((r) => r.correct).length);
    const sources: SourceInput[] = mergeByPath(row.files).map((f) => ({ path: f.path, text: f.text, origin: 'workspace' }));
    // A root row is the request `ask --root ROOT` makes; a row's files are given sources.
    const request: AskRequest = { question: row.question, mode, sources };
    if (row.root !== undefined) request.roots = [row.root];
    if (o.maxNewTokens !== undefined) request.maxNewTokens = o.maxNewTokens;
    if (textBudget !== undefined) request.textBudget = textBudget;
    if (o.extractive !== undefined) request.extractive = o.extractive;
    let prediction = '';
    let ttftMs = 0;
    let error: string | undefined;
    let selection: SelectionEvent | null = null;
    let stats: AskStats | null = null;
    for await (const e of ask(model, request, { signal: o.signal, cacheDir: o.cacheDir ?? undefined })) {
      if (e.type === 'selection') selection = e;
      else if (e.type === 'done') {
        prediction = e.answer;
        stats = e.stats;
        ttftMs = Math.round(e.stats.ttftMs * 10) / 10;
      } else if (e.type === 'error') {
        if (e.code === 'cancelled') throw new ArcError('cancelled', e.message);
        error = `${e.code}: ${e.message}`;
      }
    }
    const r: EvalRowResult = {
      id: row.id,
      ...(row.kind !== undefined ? { kind: row.kind } : {}),
      prediction: prediction.trim(),
      correct: error === undefined && isExactMatch(prediction, row.answers),
      ttftMs,
      ...rowFigures(error === undefined ? stats : null),
    };
    if (row.answerPath !== undefined && row.answerLine !== undefined) {
      r.answerChunk = error === undefined ? answerChunkOf(selection, mode, row.answerPath, row.answerLine) : 'absent';
    }
    if (error !== undefined) r.error = error;
    results.push(r);
  }
  return {
    ...summarize(results),
    mode,
    ...(textBudget !== undefined ? { textBudget } : {}),
    wallMs: Math.round(performance.now() - t0),
    byKind: summarizeByKind(results),
    rows: results,
  };
}

export const command: Command = {
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        ...MODEL_OPTIONS,
        ...PIPELINE_OPTIONS,
        data: { type: 'string' },
        mode: { type: 'string' },
        limit: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        'text-budget': { type: 'string' },
        decoding: { type: 'string' },
        json: { type: 'boolean' },
      },
      false,
    );
    if (values.help) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const data = requireString(values.data, '--data');
    const mode = requireString(values.mode, '--mode') as AnswerMode;
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be mixed, arc, full or none (got "${values.mode}")`);
    const textBudget = parseTextBudget(values['text-budget'], mode);
    const extractive = parseDecoding(values.decoding);
    const limit = parseIntOption(values.limit, '--limit', 1);
    const maxNew = parseIntOption(values['max-new-tokens'], '--max-new-tokens', 1);
    const cacheDir = cacheDirFrom(values);
    let text: string;
    try {
      text = await readFile(data, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read --data ${data} (${errorMessage(e)})`);
    }
    const rows = parseEvalData(text, data, path.dirname(path.resolve(data))).slice(0, limit);
    const opts = loadOptions(values, io);
    const model = await loadModel(modelDirFrom(values.model), opts);
    try {
      const bar = progressBar(io);
      const out = await evalRows(model, rows, { mode, textBudget, extractive, maxNewTokens: maxNew, cacheDir, signal: io.signal, onRow: (done, correct) => bar.update(done, rows.length, `rows (${correct} correct)`) });
      bar.end();
      const results = out.rows;
      if (values.json) io.stdout.write(JSON.stringify(out) + '\n');
      else {
        for (const r of results) io.stdout.write(`${r.correct ? 'ok  ' : 'miss'} ${r.id}: ${JSON.stringify(r.prediction)}${r.error ? ` (${r.error})` : ''}\n`);
        const correct = results.filter((r) => r.correct).length;
        io.stdout.write(`${mode}: exact match ${correct}/${results.length} = ${(out.exactMatch * 100).toFixed(1)}% in ${(out.wallMs / 1000).toFixed(1)} s\n`);
        if (Object.keys(out.byKind).length > 0 || out.answerChunk !== undefined) io.stdout.write(summaryTable(out));
      }
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
