// `arc-context eval`: exact-match evaluation over a JSONL file of questions with their files,
// in one mode, through the same ask() pipeline the editor uses.
import { readFile } from 'node:fs/promises';
import type { AnswerMode } from '../core/api';
import { ask } from '../core/ask';
import { ArcError, errorMessage } from '../core/errors';
import { loadModel } from '../core/model';
import type { SourceInput } from '../core/types';
import { MODEL_OPTIONS, UsageError, loadOptions, parse, parseIntOption, requireString, type Command } from './args';
import { PIPELINE_MODEL_USAGE, PIPELINE_OPTIONS, cacheDirFrom, modelDirFrom, progressBar } from './compress';

const usage = `Usage: arc-context eval --data FILE.jsonl --mode arc|full|none [--limit N] [--json] [options]
Ask every question of the file and score the answers by exact match.
Each line: {"id": ..., "question": "...", "answers": ["..."], "files": [{"path": "...", "text": "..."}]}
${PIPELINE_MODEL_USAGE}
  --data FILE        the JSONL file (required)
  --mode M           arc, full or none (required)
  --limit N          only the first N rows
  --max-new-tokens N answer length limit (default: the manifest's)
  --json             print one JSON line {n, exactMatch, mode, rows: [{id, prediction, correct, ttftMs}]}`;

export interface EvalRowInput {
  id: string;
  question: string;
  answers: string[];
  files: { path: string; text: string }[];
}

export interface EvalRowResult {
  id: string;
  prediction: string;
  correct: boolean;
  ttftMs: number;
  /** Present when the pipeline ended with an error for this row. */
  error?: string;
}

export interface EvalResult {
  n: number;
  exactMatch: number;
  mode: AnswerMode;
  rows: EvalRowResult[];
}

/** Parses and checks the JSONL; a malformed line is a usage error naming its line number. */
export function parseEvalData(text: string, file: string): EvalRowInput[] {
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
    const files = o.files ?? [];
    if (!Array.isArray(files) || files.some((f) => typeof f !== 'object' || f === null || typeof (f as { path?: unknown }).path !== 'string' || typeof (f as { text?: unknown }).text !== 'string')) {
      throw new UsageError(`${where}: "files" must be a list of {"path", "text"} objects`);
    }
    rows.push({ id: String(o.id), question: o.question, answers: o.answers as string[], files: files as { path: string; text: string }[] });
  }
  return rows;
}

/** Exact match after trimming both sides: the model's answer ends at a stop string, not a space. */
export function isExactMatch(prediction: string, answers: readonly string[]): boolean {
  const p = prediction.trim();
  return answers.some((a) => a.trim() === p);
}

const MODES: readonly AnswerMode[] = ['arc', 'full', 'none'];

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
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be arc, full or none (got "${values.mode}")`);
    const limit = parseIntOption(values.limit, '--limit', 1);
    const maxNew = parseIntOption(values['max-new-tokens'], '--max-new-tokens', 1);
    const cacheDir = cacheDirFrom(values);
    let text: string;
    try {
      text = await readFile(data, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read --data ${data} (${errorMessage(e)})`);
    }
    const rows = parseEvalData(text, data).slice(0, limit);
    const opts = loadOptions(values, io);
    const model = await loadModel(modelDirFrom(values.model), opts);
    try {
      const bar = progressBar(io);
      const results: EvalRowResult[] = [];
      for (const row of rows) {
        bar.update(results.length, rows.length, `rows (${results.filter((r) => r.correct).length} correct)`);
        const sources: SourceInput[] = mergeByPath(row.files).map((f) => ({ path: f.path, text: f.text, origin: 'workspace' }));
        let prediction = '';
        let ttftMs = 0;
        let error: string | undefined;
        for await (const e of ask(model, { question: row.question, mode, sources, ...(maxNew !== undefined ? { maxNewTokens: maxNew } : {}) }, { signal: io.signal, cacheDir })) {
          if (e.type === 'done') {
            prediction = e.answer;
            ttftMs = Math.round(e.stats.ttftMs * 10) / 10;
          } else if (e.type === 'error') {
            // A cancelled run stops the evaluation; any other failure scores the row as wrong.
            if (e.code === 'cancelled') throw new ArcError('cancelled', e.message);
            error = `${e.code}: ${e.message}`;
          }
        }
        const r: EvalRowResult = { id: row.id, prediction: prediction.trim(), correct: error === undefined && isExactMatch(prediction, row.answers), ttftMs };
        if (error !== undefined) r.error = error;
        results.push(r);
      }
      bar.end();
      const correct = results.filter((r) => r.correct).length;
      const out: EvalResult = { n: results.length, exactMatch: results.length > 0 ? correct / results.length : 0, mode, rows: results };
      if (values.json) io.stdout.write(JSON.stringify(out) + '\n');
      else {
        for (const r of results) io.stdout.write(`${r.correct ? 'ok  ' : 'miss'} ${r.id}: ${JSON.stringify(r.prediction)}${r.error ? ` (${r.error})` : ''}\n`);
        io.stdout.write(`${mode}: exact match ${correct}/${results.length} = ${(out.exactMatch * 100).toFixed(1)}%\n`);
      }
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
