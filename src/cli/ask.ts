// `arc-context ask`: answer a question about the given files with the package's decoder, in arc
// (compressed), full (plain text) or none (closed book) mode. The pipeline (src/core/ask.ts)
// will replace the body of run(); the options and output stay.
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { AnswerMode, ArcModel, CompressedChunk, GenerateOptions, GenerationTimings } from '../core/api';
import { ArcError, errorMessage } from '../core/errors';
import { loadModel } from '../core/model';
import { buildPrefix, contextBudget, decoderTokenizer, fitCompressed, splitDocument, truncateTokens, type BuiltPrefix, type TruncationReport } from '../core/prompt';
import { ask as askPipeline } from '../core/ask';
import type { AskStats, Citation, SourceInput } from '../core/types';
import { PIPELINE_MODEL_USAGE, PIPELINE_OPTIONS, cacheDirFrom, describeSkipped, modelDirFrom, progressBar } from './compress';
import { MODEL_OPTIONS, UsageError, loadOptions, parse, parseIntOption, parseNumberOption, type Command, type CommandIo } from './args';

const usage = `Usage: arc-context ask [--root DIR ...] [--file F ...] [--mode arc|full|none] [--json] "question"
Answer a question about a folder (--root: scanned, chunked, cached, selected) or given files.
${PIPELINE_MODEL_USAGE}
  --root DIR         folder to ask about (repeatable; .gitignore respected, compressed vectors cached)
  --include GLOB     with --root: only files matching (repeatable)
  --exclude GLOB     with --root: skip files matching (repeatable)
  --file F           a file to read (repeatable; with --root it is added as an explicit source)
  --mode M           arc (compressed context, default), full (plain text) or none (closed book)
  --max-new-tokens N answer length limit (default: the manifest's prompt.maxNewTokens)
  --temperature T    0 (default) is greedy; above 0 samples
  --top-p P          nucleus sampling mass (with --temperature)
  --seed S           sampling seed
  --json             print one JSON object with the answer and the figures instead of streaming`;

const MODES: readonly AnswerMode[] = ['arc', 'full', 'none'];

/** The path the model sees: relative to the working folder, with forward slashes. */
function displayPath(file: string): string {
  const abs = resolve(file);
  const rel = relative(process.cwd(), abs);
  const shown = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
  return shown.split(sep).join('/');
}

export interface AskResult {
  answer: string;
  mode: AnswerMode;
  provider: string;
  sourceTokens: number;
  compressedVectors: number;
  contextPositions: number;
  ratio: number;
  encodeMs: number;
  prefillMs: number;
  ttftMs: number;
  totalMs: number;
  generatedTokens: number;
  tokensPerSecond: number;
  truncation: TruncationReport | null;
}

async function readSources(files: readonly string[]): Promise<{ path: string; text: string }[]> {
  return Promise.all(
    files.map(async (f) => {
      try {
        return { path: displayPath(f), text: await readFile(f, 'utf8') };
      } catch (e) {
        throw new ArcError('no-sources', `Cannot read ${f} (${errorMessage(e)}). Check the --file path.`, { cause: e });
      }
    }),
  );
}

/** Runs one question; `onPiece` receives the answer as it streams. */
export async function askFiles(
  model: ArcModel,
  mode: AnswerMode,
  files: readonly string[],
  question: string,
  gen: GenerateOptions,
  onPiece: (piece: string) => void,
): Promise<AskResult> {
  const start = performance.now();
  const decoder = model.decoder;
  if (!decoder) throw new ArcError('model-missing', `${model.dir} is an encoder-only package; ask needs one with a decoder.`);
  const m = model.manifest;
  const sources = mode === 'none' ? [] : await readSources(files);
  const chunks = sources.flatMap((s) => splitDocument(model.tokenizer, m.documentFormat, s.path, s.text, model.encoder.maxChunkTokens));
  const sourceTokens = chunks.reduce((n, c) => n + c.ids.length, 0);
  const budget = contextBudget(model, question, gen.maxNewTokens);

  let prefix: BuiltPrefix;
  let truncation: TruncationReport | null = null;
  let compressedVectors = 0;
  let encodeMs = 0;
  let keptTokens = 0;
  if (mode === 'arc') {
    // A chunk of L tokens becomes ceil(L / x) vectors + <Cont>, known before encoding, so
    // chunks that cannot fit are never encoded.
    let left = budget;
    let fits = 0;
    while (fits < chunks.length && Math.ceil(chunks[fits]!.ids.length / model.encoder.poolingFactor) + 1 <= left) {
      left -= Math.ceil(chunks[fits]!.ids.length / model.encoder.poolingFactor) + 1;
      fits++;
    }
    const t = performance.now();
    const compressed: CompressedChunk[] = await model.encoder.encode(chunks.slice(0, fits).map((c) => c.ids), gen.signal);
    encodeMs = performance.now() - t;
    const fitted = fitCompressed(compressed, budget);
    truncation = { ...fitted.report, chunks: chunks.length, dropped: chunks.length - fitted.report.kept };
    truncation.cutPositions = chunks.slice(fitted.report.kept).reduce((n, c) => n + Math.ceil(c.ids.length / model.encoder.poolingFactor) + 1, 0);
    compressedVectors = fitted.chunks.reduce((n, c) => n + c.count, 0);
    // Kept chunks are a prefix of the list; the ratio describes what reached the decoder.
    keptTokens = chunks.slice(0, fitted.report.kept).reduce((n, c) => n + c.ids.length, 0);
    prefix = buildPrefix(model, 'arc', fitted.chunks, question);
  } else if (mode === 'full') {
    const tok = decoderTokenizer(model);
    // Chunks were tokenized with the encoder tokenizer; the decoder may use another one.
    const ids = tok === model.tokenizer ? chunks.map((c) => c.ids) : chunks.map((c) => tok.encode(c.text));
    const fitted = truncateTokens(ids, budget);
    truncation = fitted.report;
    prefix = buildPrefix(model, 'full', fitted.chunks, question);
  } else {
    prefix = buildPrefix(model, 'none', [], question);
  }

  const it = decoder.generate(prefix.parts, gen);
  let answer = '';
  let timings: GenerationTimings;
  for (;;) {
    const r = await it.next();
    if (r.done) {
      timings = r.value;
      break;
    }
    answer += r.value;
    onPiece(r.value);
  }
  return {
    answer,
    mode,
    provider: model.provider,
    sourceTokens,
    compressedVectors,
    contextPositions: prefix.contextPositions,
    ratio: mode === 'arc' ? (compressedVectors > 0 ? keptTokens / compressedVectors : 0) : mode === 'full' ? 1 : 0,
    encodeMs,
    prefillMs: timings.prefillMs,
    ttftMs: encodeMs + timings.ttftMs,
    totalMs: performance.now() - start,
    generatedTokens: timings.generatedTokens,
    tokensPerSecond: timings.tokensPerSecond,
    truncation,
  };
}

function describeCut(r: TruncationReport): string {
  return `context cut to fit the decoder window: ${r.kept} of ${r.chunks} chunks kept whole, ${r.partial} cut, ${r.dropped} left out (${r.cutPositions} positions dropped)`;
}

export const command: Command = {
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        ...MODEL_OPTIONS,
        ...PIPELINE_OPTIONS,
        root: { type: 'string', multiple: true },
        include: { type: 'string', multiple: true },
        exclude: { type: 'string', multiple: true },
        file: { type: 'string', multiple: true },
        mode: { type: 'string' },
        json: { type: 'boolean' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-p': { type: 'string' },
        seed: { type: 'string' },
      },
      true,
    );
    if (values.help) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    const dir = modelDirFrom(values.model);
    const roots = values.root ?? [];
    const mode = (values.mode ?? 'arc') as AnswerMode;
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be arc, full or none (got "${values.mode}")`);
    const files = values.file ?? [];
    if (mode !== 'none' && files.length === 0 && roots.length === 0) throw new UsageError(`--root or --file is required in ${mode} mode`);
    const question = positionals.join(' ').trim();
    if (!question) throw new UsageError('the question is missing (give it as the last argument, in quotes)');
    const maxNew = parseIntOption(values['max-new-tokens'], '--max-new-tokens', 1);
    const temperature = parseNumberOption(values.temperature, '--temperature', 0, 10);
    const topP = parseNumberOption(values['top-p'], '--top-p', 0.01, 1);
    const seed = parseIntOption(values.seed, '--seed', 0);
    const opts = loadOptions(values, io);

    const model = await loadModel(dir, opts);
    try {
      const gen: GenerateOptions = { maxNewTokens: maxNew ?? model.manifest.prompt.maxNewTokens, stop: model.manifest.prompt.stop };
      if (temperature !== undefined) gen.temperature = temperature;
      if (topP !== undefined) gen.topP = topP;
      if (seed !== undefined) gen.seed = seed;
      if (io.signal) gen.signal = io.signal;
      if (roots.length > 0) {
        const sources: SourceInput[] = files.map((f) => ({ path: displayPath(f), absPath: resolve(f), origin: 'explicit' }));
        return await askRoots(model, { question, mode, roots, sources, include: values.include, exclude: values.exclude, maxNewTokens: gen.maxNewTokens, temperature, topP }, cacheDirFrom(values), io, values);
      }
      const result = await askFiles(model, mode, files, question, gen, (piece) => {
        if (!values.json) io.stdout.write(piece);
      });
      const cut = result.truncation && result.truncation.cutPositions > 0 ? result.truncation : null;
      if (values.json) {
        io.stdout.write(JSON.stringify(result) + '\n');
      } else {
        io.stdout.write('\n');
        if (cut) io.stderr.write(`arc-context: ${describeCut(cut)}\n`);
      }
      if (values.verbose) {
        io.stderr.write(
          `arc-context: ${mode}, ${result.provider}: ${result.sourceTokens} source tokens -> ${result.contextPositions} context positions; ` +
            `encode ${result.encodeMs.toFixed(0)} ms, prefill ${result.prefillMs.toFixed(0)} ms, first token ${result.ttftMs.toFixed(0)} ms, ` +
            `${result.generatedTokens} tokens at ${result.tokensPerSecond.toFixed(1)}/s, total ${result.totalMs.toFixed(0)} ms\n`,
        );
      }
      return 0;
    } finally {
      await model.dispose();
    }
  },
};

/** `ask --root`: the context pipeline (src/core/ask.ts) with its events printed. */
async function askRoots(
  model: ArcModel,
  request: Parameters<typeof askPipeline>[1],
  cacheDir: string | null,
  io: CommandIo,
  flags: { json?: boolean; verbose?: boolean },
): Promise<number> {
  const bar = progressBar(io);
  let answer = '';
  let stats: AskStats | null = null;
  let citations: Citation[] = [];
  let skipped = '';
  const log = (line: string): void => {
    bar.end();
    io.stderr.write(`arc-context: ${line}\n`);
  };
  for await (const e of askPipeline(model, request, { signal: io.signal, cacheDir, ...(flags.verbose ? { log } : {}) })) {
    if (e.type === 'progress' && e.done !== undefined && e.total !== undefined) bar.update(e.done, e.total, e.stage);
    else if (e.type === 'skipped') skipped = describeSkipped(e);
    else if (e.type === 'selection' && e.leftOut.length > 0 && !flags.json) {
      bar.end();
      io.stderr.write(`arc-context: the folder does not fit the window; ${e.included.length} ranges chosen, ${e.leftOut.length} left out\n`);
    } else if (e.type === 'token') {
      bar.end();
      answer += e.text;
      if (!flags.json) io.stdout.write(e.text);
    } else if (e.type === 'citations') citations = e.citations;
    else if (e.type === 'done') stats = e.stats;
    else if (e.type === 'error') {
      bar.end();
      throw new ArcError(e.code, e.message);
    }
  }
  bar.end();
  if (flags.json) {
    io.stdout.write(JSON.stringify({ answer, citations: citations.map(({ path, startLine, endLine }) => ({ path, startLine, endLine })), skipped, stats }) + '\n');
    return 0;
  }
  io.stdout.write('\n');
  for (const c of citations) io.stderr.write(`  ${c.path}:${c.startLine}-${c.endLine}\n`);
  if (flags.verbose && stats) {
    const s: AskStats = stats;
    io.stderr.write(
      `arc-context: ${s.mode}, ${s.provider}: ${s.sourceTokens} source tokens -> ${s.contextPositions} context positions (x${s.ratio.toFixed(2)}); ` +
        `cache ${s.cacheHits} hits / ${s.cacheMisses} encoded in ${s.encodeMs.toFixed(0)} ms; prefill ${s.prefillMs.toFixed(0)} ms, first token ${s.ttftMs.toFixed(0)} ms; ` +
        `skipped: ${skipped || 'none'}\n`,
    );
  }
  return 0;
}
