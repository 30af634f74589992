// `arc-context ask`: answer a question about a folder (--root: the pipeline of src/core/ask.ts)
// or about given files (--file alone: split in order, no cache), in mixed (the best-ranked code
// as text, the rest compressed), arc (compressed), full (plain text) or none (closed book) mode.
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { AnswerMode, ArcModel, CompressedChunk, GenerateOptions, GenerationTimings } from '../core/api';
import { planInOrder, planMixedFor } from '../core/context/plan';
import { groupSizes } from '../core/encoder';
import { ArcError, errorMessage, isArcError } from '../core/errors';
import { TreeWatch } from '../core/context/treeWatch';
import { loadModel } from '../core/model';
import { buildPrefix, compressedCoster, compressedHeaderIds, contextBudget, contextOrder, decoderTokenizer, fitCompressed, mixedTextBudget, quotableChunks, splitDocument, truncateTokens, type BuiltPrefix, type TruncationReport } from '../core/prompt';
import { ask as askPipeline, mergeCitations } from '../core/ask';
import type { AskStats, Citation, SourceInput } from '../core/types';
import { PIPELINE_MODEL_USAGE, PIPELINE_OPTIONS, cacheDirFrom, describeSkipped, modelDirFrom, progressBar } from './compress';
import { ENGINE_OPTIONS, ENGINE_USAGE, engineFrom, withBackend } from './engineOptions';
import { MODEL_OPTIONS, TEXT_BUDGET_USAGE, UsageError, loadOptions, parse, parseIntOption, parseNumberOption, parseDecoding, parseTextBudget, type Command, type CommandIo } from './args';

const usage = `Usage: arc-context ask [--root DIR ...] [--file F ...] [--mode mixed|arc|full|none] [--text-budget N] [--json] "question"
       arc-context ask --root DIR ... --interactive [options]   (questions from standard input)
Answer a question about a folder (--root: scanned, chunked, cached, selected) or given files.
${PIPELINE_MODEL_USAGE}
${ENGINE_USAGE}
  --root DIR         folder to ask about (repeatable; .gitignore respected, compressed vectors cached)
  --include GLOB     with --root: only files matching (repeatable)
  --exclude GLOB     with --root: skip files matching (repeatable)
  --file F           a file to read (repeatable; with --root it is added as an explicit source)
  --mode M           mixed (default: the best-ranked code as text, the rest compressed), arc (all
                     compressed), full (plain text) or none (closed book)
${TEXT_BUDGET_USAGE}
  --max-new-tokens N answer length limit (default: the manifest's prompt.maxNewTokens)
  --temperature T    0 (default) is greedy; above 0 samples
  --top-p P          nucleus sampling mass (with --temperature)
  --seed S           sampling seed
  --json             print one JSON object with the answer and the figures instead of streaming
  --interactive      with --root: a session; one question per line from standard input, each
                     answered in turn by the model loaded once. The folder is watched for
                     changes, so a question after the first rescans it only when something under
                     it changed. With --json, one JSON object per line per question (a failed
                     question gives {"question", "error": {"code", "message"}}). Ctrl-C cancels
                     the answer under way (the session goes on) and, at the prompt, ends the
                     session (exit code 130); Ctrl-D ends it too`;

const MODES: readonly AnswerMode[] = ['mixed', 'arc', 'full', 'none'];

/** The path the model sees: relative to the working folder, with forward slashes. */
function displayPath(file: string): string {
  const abs = resolve(file);
  const rel = relative(process.cwd(), abs);
  const shown = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
  return shown.split(sep).join('/');
}

/**
 * What `ask --json` prints, the same object for --root and --file (README "CLI"): the answer,
 * the line ranges that reached the decoder, what the folder scan skipped, the pipeline's
 * AskStats, and for --file how the given files were fitted into the window.
 */
export interface AskJson {
  answer: string;
  citations: { path: string; startLine: number; endLine: number }[];
  /** e.g. "2 gitignored, 1 binary"; '' when nothing was skipped (always '' for --file). */
  skipped: string;
  stats: AskStats;
  /** --file: chunks kept whole / cut / dropped to fit the window; null for --root (see stats.chunksLeftOut). */
  truncation: TruncationReport | null;
}

export interface AskResult {
  answer: string;
  stats: AskStats;
  citations: Citation[];
  truncation: TruncationReport | null;
}

/** The one --json shape from a result (absolute paths are left out: the paths shown are the ones asked with). */
export function askJson(answer: string, citations: readonly Citation[], skipped: string, stats: AskStats, truncation: TruncationReport | null): AskJson {
  return { answer, citations: citations.map(({ path, startLine, endLine }) => ({ path, startLine, endLine })), skipped, stats, truncation };
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

/** Vectors the encoder makes of a chunk of `tokens` ids (the BOS of encoder.addBos counts), known before encoding. */
function vectorCount(model: ArcModel, tokens: number): number {
  return groupSizes(tokens + (model.manifest.encoder.addBos ? 1 : 0), model.encoder.poolingFactor).length;
}

/** Runs one question; `onPiece` receives the answer as it streams. */
export async function askFiles(
  model: ArcModel,
  mode: AnswerMode,
  files: readonly string[],
  question: string,
  gen: GenerateOptions,
  onPiece: (piece: string) => void,
  textBudget?: number,
  extractive?: boolean,
): Promise<AskResult> {
  const start = performance.now();
  const decoder = model.decoder;
  if (!decoder) throw new ArcError('model-missing', `${model.dir} is an encoder-only package; ask needs one with a decoder.`);
  const m = model.manifest;
  const sources = mode === 'none' ? [] : await readSources(files);
  const chunks = sources.flatMap((s) => splitDocument(model.tokenizer, m.documentFormat, s.path, s.text, model.encoder.maxChunkTokens));
  const budget = contextBudget(model, question, gen.maxNewTokens);
  const tok = decoderTokenizer(model);
  // Chunks were tokenized with the encoder tokenizer; the decoder may use another one.
  const plainIds = () => (tok === model.tokenizer ? chunks.map((c) => c.ids) : chunks.map((c) => tok.encode(c.text)));

  let prefix: BuiltPrefix;
  /** The text the decoder read (for extractive decoding). */
  let spanText = '';
  let truncation: TruncationReport | null = null;
  let compressedVectors = 0;
  let encodeMs = 0;
  // Source tokens that reached the decoder, in all and as text, and chunks by form.
  let keptTokens = 0;
  let textTokens = 0;
  let textChunks = 0;
  let compressedChunks = 0;
  let encodedChunks = 0;
  /** Indices of the chunks that reached the decoder, for the citations. */
  let included: number[] = [];
  const encode = async (ids: number[][]): Promise<CompressedChunk[]> => {
    const t = performance.now();
    const out = await model.encoder.encode(ids, gen.signal);
    encodeMs = performance.now() - t;
    encodedChunks = ids.length;
    return out;
  };
  // A compressed chunk's positions: its header tokens (documentFormat.compressedHeader), vectors, <Cont>.
  const coster = compressedCoster(model);
  const compressedCost = (c: (typeof chunks)[number]) => coster(c.path, vectorCount(model, c.ids.length));
  if (mode === 'arc') {
    // A chunk's vector count is known before encoding, so chunks that cannot fit are never encoded.
    let left = budget;
    let fits = 0;
    while (fits < chunks.length && compressedCost(chunks[fits]!) <= left) {
      left -= compressedCost(chunks[fits]!);
      fits++;
    }
    const compressed = (await encode(chunks.slice(0, fits).map((c) => c.ids))).map((c, i) => ({ ...c, path: chunks[i]!.path }));
    const fitted = fitCompressed(compressed, budget, compressed.map((c) => compressedHeaderIds(model, c.path).length));
    truncation = { ...fitted.report, chunks: chunks.length, dropped: chunks.length - fitted.report.kept };
    truncation.cutPositions = chunks.slice(fitted.report.kept).reduce((n, c) => n + compressedCost(c), 0);
    compressedVectors = fitted.chunks.reduce((n, c) => n + c.count, 0);
    // Kept chunks are a prefix of the list.
    keptTokens = chunks.slice(0, fitted.report.kept).reduce((n, c) => n + c.ids.length, 0);
    compressedChunks = fitted.report.kept;
    included = chunks.slice(0, fitted.report.kept).map((_, i) => i);
    prefix = buildPrefix(model, 'arc', fitted.chunks, question);
    spanText = included.map((i) => chunks[i]!.text).join('\n');
  } else if (mode === 'full') {
    const ids = plainIds();
    const fitted = truncateTokens(ids, budget);
    truncation = fitted.report;
    // A cut chunk counts the share of its source tokens that was kept.
    keptTokens = fitted.chunks.reduce((n, kept, i) => n + (ids[i]!.length > 0 ? Math.round((chunks[i]!.ids.length * kept.length) / ids[i]!.length) : 0), 0);
    textTokens = keptTokens;
    textChunks = fitted.chunks.length;
    included = fitted.chunks.map((_, i) => i);
    prefix = buildPrefix(model, 'full', fitted.chunks, question);
    spanText = fitted.chunks.map((kept) => tok.decode(kept)).join('\n');
  } else if (mode === 'mixed') {
    const ids = plainIds();
    const costs = chunks.map((c, i) => ({ text: ids[i]!.length, compressed: compressedCost(c) }));
    const items = chunks.map((c) => ({ path: c.path, body: c.text, origin: 'explicit' as const }));
    const plan = planMixedFor(items, costs, question, mixedTextBudget(m, textBudget), budget);
    const laid = planInOrder(plan, contextOrder(m));
    // Only the chunks planned as compressed are encoded.
    const compressed = (await encode(laid.compressed.map((i) => chunks[i]!.ids))).map((c, k) => ({ ...c, path: chunks[laid.compressed[k]!]!.path }));
    compressedVectors = compressed.reduce((n, c) => n + c.count, 0);
    textTokens = plan.text.reduce((n, i) => n + chunks[i]!.ids.length, 0);
    keptTokens = textTokens + plan.compressed.reduce((n, i) => n + chunks[i]!.ids.length, 0);
    textChunks = plan.text.length;
    compressedChunks = plan.compressed.length;
    included = [...plan.text, ...plan.compressed].sort((a, b) => a - b);
    truncation = {
      chunks: chunks.length,
      kept: textChunks + compressedChunks,
      partial: 0,
      dropped: plan.leftOut.length,
      keptPositions: plan.used,
      // A left-out chunk would have cost at least its compressed form.
      cutPositions: plan.leftOut.reduce((n, i) => n + costs[i]!.compressed, 0),
    };
    prefix = buildPrefix(model, 'mixed', { compressed, text: laid.text.map((i) => ids[i]!) }, question);
    spanText = quotableChunks('mixed', plan, m.prompt.quoteChunks).map((i) => chunks[i]!.text).join('\n');
  } else {
    prefix = buildPrefix(model, 'none', [], question);
  }

  const it = decoder.generate(prefix.parts, extractive ?? m.prompt.extractive ? { ...gen, answerFrom: `${spanText}\n${question}` } : gen);
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
  const stats: AskStats = {
    mode,
    provider: model.provider,
    sourceTokens: keptTokens,
    textTokens,
    compressedVectors,
    contextPositions: prefix.contextPositions,
    ratio: prefix.contextPositions > 0 ? keptTokens / prefix.contextPositions : 0,
    encodeMs,
    prefillMs: timings.prefillMs,
    ttftMs: encodeMs + timings.ttftMs,
    totalMs: performance.now() - start,
    tokensPerSecond: timings.tokensPerSecond,
    generatedTokens: timings.generatedTokens,
    // No cache for --file: every chunk read compressed was encoded.
    cacheHits: 0,
    cacheMisses: encodedChunks,
    chunksIncluded: textChunks + compressedChunks,
    textChunks,
    compressedChunks,
    chunksLeftOut: chunks.length - (textChunks + compressedChunks),
    truncatedTokens: chunks.reduce((n, c) => n + c.ids.length, 0) - keptTokens,
    ...(timings.backend ? { decoderBackend: timings.backend, serverTtftMs: timings.serverTtftMs } : {}),
  };
  return { answer, stats, citations: mergeCitations(included.map((i) => chunks[i]!)), truncation };
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
        ...ENGINE_OPTIONS,
        root: { type: 'string', multiple: true },
        include: { type: 'string', multiple: true },
        exclude: { type: 'string', multiple: true },
        file: { type: 'string', multiple: true },
        mode: { type: 'string' },
        'text-budget': { type: 'string' },
        decoding: { type: 'string' },
        json: { type: 'boolean' },
        interactive: { type: 'boolean' },
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
    const mode = (values.mode ?? 'mixed') as AnswerMode;
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be mixed, arc, full or none (got "${values.mode}")`);
    const textBudget = parseTextBudget(values['text-budget'], mode);
    const extractive = parseDecoding(values.decoding);
    const files = values.file ?? [];
    if (values.interactive && roots.length === 0) throw new UsageError('--interactive needs --root (the folder the session asks about)');
    if (mode !== 'none' && files.length === 0 && roots.length === 0) throw new UsageError(`--root or --file is required in ${mode} mode`);
    const question = positionals.join(' ').trim();
    if (values.interactive) {
      if (question) throw new UsageError('with --interactive the questions come from standard input, one per line (no question argument)');
    } else if (!question) throw new UsageError('the question is missing (give it as the last argument, in quotes)');
    const maxNew = parseIntOption(values['max-new-tokens'], '--max-new-tokens', 1);
    const temperature = parseNumberOption(values.temperature, '--temperature', 0, 10);
    const topP = parseNumberOption(values['top-p'], '--top-p', 0.01, 1);
    const seed = parseIntOption(values.seed, '--seed', 0);
    const opts = loadOptions(values, io);
    const engine = engineFrom(values);

    // With an engine, decoder.onnx is neither needed nor opened.
    const model = withBackend(await loadModel(dir, engine ? { ...opts, decoderGraph: false } : opts), engine);
    try {
      const gen: GenerateOptions = { maxNewTokens: maxNew ?? model.manifest.prompt.maxNewTokens, stop: model.manifest.prompt.stop };
      if (temperature !== undefined) gen.temperature = temperature;
      if (topP !== undefined) gen.topP = topP;
      if (seed !== undefined) gen.seed = seed;
      if (io.signal) gen.signal = io.signal;
      if (roots.length > 0) {
        const sources: SourceInput[] = files.map((f) => ({ path: displayPath(f), absPath: resolve(f), origin: 'explicit' }));
        const request: Parameters<typeof askPipeline>[1] = { question, mode, roots, sources, include: values.include, exclude: values.exclude, maxNewTokens: gen.maxNewTokens, temperature, topP };
        if (textBudget !== undefined) request.textBudget = textBudget;
        if (extractive !== undefined) request.extractive = extractive;
        if (values.interactive) return await askSession(model, request, cacheDirFrom(values), io, values);
        return await askRoots(model, request, cacheDirFrom(values), io, values);
      }
      const result = await askFiles(model, mode, files, question, gen, (piece) => {
        if (!values.json) io.stdout.write(piece);
      }, textBudget, extractive);
      const cut = result.truncation && result.truncation.cutPositions > 0 ? result.truncation : null;
      if (values.json) {
        io.stdout.write(JSON.stringify(askJson(result.answer, result.citations, '', result.stats, result.truncation)) + '\n');
      } else {
        io.stdout.write('\n');
        if (cut) io.stderr.write(`arc-context: ${describeCut(cut)}\n`);
      }
      if (values.verbose) {
        const r = result.stats;
        io.stderr.write(
          `arc-context: ${mode}, ${r.provider}${r.decoderBackend ? `, decoder ${r.decoderBackend} (server first token ${r.serverTtftMs?.toFixed(0)} ms)` : ''}: ${r.sourceTokens} source tokens -> ${r.contextPositions} context positions (x${r.ratio.toFixed(2)}; ${r.textChunks} text / ${r.compressedChunks} compressed chunks); ` +
            `encode ${r.encodeMs.toFixed(0)} ms, prefill ${r.prefillMs.toFixed(0)} ms, first token ${r.ttftMs.toFixed(0)} ms, ` +
            `${r.generatedTokens} tokens at ${r.tokensPerSecond.toFixed(1)}/s, total ${r.totalMs.toFixed(0)} ms\n`,
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
  watch?: TreeWatch,
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
  for await (const e of askPipeline(model, request, { signal: io.signal, cacheDir, ...(flags.verbose ? { log } : {}), ...(watch ? { watch } : {}) })) {
    if (e.type === 'progress' && e.done !== undefined && e.total !== undefined) bar.update(e.done, e.total, e.stage);
    else if (e.type === 'skipped') skipped = describeSkipped(e);
    else if (e.type === 'selection' && e.leftOut.length > 0 && !flags.json) {
      bar.end();
      const forms = request.mode === 'mixed' ? ` (${e.text.length} as text, ${e.compressed.length} compressed)` : '';
      io.stderr.write(`arc-context: the folder does not fit the window; ${e.included.length} ranges chosen${forms}, ${e.leftOut.length} left out\n`);
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
    if (!stats) throw new ArcError('internal', 'The pipeline ended without a result.');
    io.stdout.write(JSON.stringify(askJson(answer, citations, skipped, stats, null)) + '\n');
    return 0;
  }
  io.stdout.write('\n');
  for (const c of citations) io.stderr.write(`  ${c.path}:${c.startLine}-${c.endLine}\n`);
  if (flags.verbose && stats) {
    const s: AskStats = stats;
    io.stderr.write(
      `arc-context: ${s.mode}, ${s.provider}${s.decoderBackend ? `, decoder ${s.decoderBackend} (server first token ${s.serverTtftMs?.toFixed(0)} ms)` : ''}: ${s.sourceTokens} source tokens -> ${s.contextPositions} context positions (x${s.ratio.toFixed(2)}; ${s.textChunks} text / ${s.compressedChunks} compressed chunks); ` +
        `cache ${s.cacheHits} hits / ${s.cacheMisses} encoded in ${s.encodeMs.toFixed(0)} ms; prefill ${s.prefillMs.toFixed(0)} ms, first token ${s.ttftMs.toFixed(0)} ms; ` +
        `skipped: ${skipped || 'none'}\n`,
    );
  }
  return 0;
}

const PROMPT = 'arc> ';

/**
 * `ask --interactive`: questions from standard input, one per line, answered in turn by one
 * model and one TreeWatch (src/core/context/treeWatch.ts), as the extension's long-lived host
 * answers: after the first questions a warm tree is rescanned only when something under a root
 * changed. A failed question is reported and the session goes on. Ctrl-C while a question is
 * being answered cancels that answer; at the prompt it ends the session (exit 130). End of input
 * (Ctrl-D) ends it too (exit 0, or 1 when a question failed).
 */
async function askSession(model: ArcModel, base: Parameters<typeof askPipeline>[1], cacheDir: string | null, io: CommandIo, flags: { json?: boolean; verbose?: boolean }): Promise<number> {
  const input = io.stdin ?? process.stdin;
  const prompt = (input as { isTTY?: boolean }).isTTY === true && !flags.json;
  const watch = new TreeWatch({ log: flags.verbose ? (line) => io.stderr.write(`arc-context: ${line}\n`) : undefined });
  const lines = createInterface({ input, terminal: false, crlfDelay: Infinity });
  const stop = (): void => lines.close();
  io.signal?.addEventListener('abort', stop, { once: true });
  // The answer under way, if any: Ctrl-C cancels it rather than the session.
  let answering: AbortController | null = null;
  io.onInterrupt?.(() => {
    if (!answering) return false;
    answering.abort();
    return true;
  });
  let failed = 0;
  // The watch starts being set up now, while the first question is typed (it is not waited for).
  void watch.whenWatching(base.roots ?? []);
  try {
    if (prompt) io.stderr.write(PROMPT);
    for await (const line of lines) {
      const question = line.trim();
      if (question !== '') {
        const mine = new AbortController();
        answering = mine;
        try {
          const signal = io.signal ? AbortSignal.any([io.signal, mine.signal]) : mine.signal;
          await askRoots(model, { ...base, question }, cacheDir, { ...io, signal }, flags, watch);
        } catch (e) {
          if (io.signal?.aborted) break;
          const cancelled = mine.signal.aborted;
          if (!cancelled) failed++;
          const code = cancelled ? 'cancelled' : isArcError(e) ? e.code : 'internal';
          const message = cancelled ? 'The answer was cancelled (Ctrl-C); the session goes on.' : errorMessage(e);
          if (flags.json) io.stdout.write(JSON.stringify({ question, error: { code, message } }) + '\n');
          else io.stderr.write(cancelled ? `\narc-context ask: ${message}\n` : `arc-context ask: error [${code}]: ${message}\n`);
        } finally {
          answering = null;
        }
      }
      if (io.signal?.aborted) break;
      if (prompt) io.stderr.write(PROMPT);
    }
  } finally {
    io.onInterrupt?.(null);
    io.signal?.removeEventListener('abort', stop);
    lines.close();
    await watch.dispose();
  }
  if (io.signal?.aborted) {
    if (prompt) io.stderr.write('\n');
    return 130;
  }
  return failed > 0 ? 1 : 0;
}
