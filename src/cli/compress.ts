// `arc-context compress`: fill the vector cache for folders so that later questions about them
// start from cached compressed context, and print what the compression achieved.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ArcModel } from '../core/api';
import { ArcError } from '../core/errors';
import { loadModel } from '../core/model';
import { VectorCache } from '../core/context/cache';
import { openChunkIndex } from '../core/context/chunkIndex';
import { compressFiles } from '../core/context/compress';
import { defaultCacheDir, defaultModelDir } from '../core/context/locations';
import { collectSources, type SkipReport } from '../core/context/sources';
import { MODEL_OPTIONS, UsageError, loadOptions, parse, parseIntOption, type CommandIo, type Command } from './args';

/** Options shared by the commands that run the context pipeline (compress, ask --root, eval). */
export const PIPELINE_OPTIONS = {
  cache: { type: 'string' },
  'no-cache': { type: 'boolean' },
} as const;

export const PIPELINE_MODEL_USAGE = `  --model DIR        arc-model/1 package folder (default: the bundled models/arc-tiny-code)
  --provider P       auto (default), cuda, webgpu, dml, coreml or cpu; unavailable ones fall back down the ladder
  --threads N        CPU threads for ONNX Runtime
  --cache DIR        compressed-vector cache folder, also holding the chunk index (default: ${defaultCacheDir()})
  --no-cache         neither read nor write the cache or the chunk index
  -v, --verbose      log provider choice, cache repairs and timings to stderr`;

/** --model, or the package shipped next to the CLI (dist/cli.js -> ../models/arc-tiny-code). */
export function modelDirFrom(value: string | undefined): string {
  if (value !== undefined && value !== '') return value;
  const dir = defaultModelDir(__dirname);
  if (!existsSync(path.join(dir, 'arc-model.json'))) {
    throw new ArcError('model-missing', `No model given and the default package ${dir} is missing. Pass --model DIR (an arc-model/1 folder) or install the default model.`);
  }
  return dir;
}

export function cacheDirFrom(values: { cache?: string; 'no-cache'?: boolean }): string | null {
  if (values['no-cache']) {
    if (values.cache !== undefined) throw new UsageError('--cache and --no-cache exclude each other');
    return null;
  }
  return values.cache ?? defaultCacheDir();
}

export function describeSkipped(s: SkipReport): string {
  const parts = Object.entries(s.counts).map(([reason, n]) => `${n} ${reason}`);
  if (parts.length === 0) return 'none';
  const ex = s.examples.slice(0, 4).map((e) => e.path);
  return `${parts.join(', ')} (e.g. ${ex.join(', ')})`;
}

/** A one-line progress bar, redrawn in place; only on a terminal. */
export function progressBar(io: CommandIo): { update(done: number, total: number, note: string): void; end(): void } {
  const tty = (io.stderr as NodeJS.WriteStream).isTTY === true;
  let drawn = false;
  return {
    update(done, total, note) {
      if (!tty || total === 0) return;
      const width = 30;
      const filled = Math.round((done / total) * width);
      io.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${note}\x1b[K`);
      drawn = true;
    },
    end() {
      if (drawn) io.stderr.write('\r\x1b[K');
      drawn = false;
    },
  };
}

const usage = `Usage: arc-context compress --root DIR [--root DIR2 ...] [options]
Compress every source file under the folders into the vector cache and print the figures.
${PIPELINE_MODEL_USAGE}
  --root DIR         folder to scan (repeatable; .gitignore files are respected)
  --include GLOB     only files matching (repeatable, e.g. "src/**/*.ts")
  --exclude GLOB     skip files matching (repeatable)
  --max-file-kb N    skip files larger than N KiB (default 1024)
  --json             print one JSON object with the figures`;

export interface CompressFigures {
  model: string;
  provider: string;
  cacheDir: string | null;
  files: number;
  skipped: SkipReport;
  chunks: number;
  /** Files whose chunks came from the chunk index (unchanged since an earlier run), untokenized. */
  filesFromIndex: number;
  sourceTokens: number;
  vectors: number;
  ratio: number;
  cacheHits: number;
  encoded: number;
  encodeMs: number;
  totalMs: number;
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
        'max-file-kb': { type: 'string' },
        json: { type: 'boolean' },
      },
      false,
    );
    if (values.help) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const roots = values.root ?? [];
    if (roots.length === 0) throw new UsageError('--root is required');
    const maxKb = parseIntOption(values['max-file-kb'], '--max-file-kb', 1);
    const cacheDir = cacheDirFrom(values);
    const opts = loadOptions(values, io);
    const t0 = performance.now();
    const model: ArcModel = await loadModel(modelDirFrom(values.model), opts);
    try {
      const bar = progressBar(io);
      const collected = await collectSources({
        roots,
        include: values.include,
        exclude: values.exclude,
        maxFileBytes: maxKb !== undefined ? maxKb * 1024 : undefined,
        signal: io.signal,
        onProgress: (n) => bar.update(0, 1, `scanning (${n} entries)`),
      });
      bar.end();
      if (collected.files.length === 0) {
        throw new ArcError('no-sources', `No readable text files in ${roots.join(', ')} (skipped: ${describeSkipped(collected.skipped)}).`);
      }
      const log = (line: string): void => {
        bar.end();
        io.stderr.write(`arc-context: ${line}\n`);
      };
      const index = await openChunkIndex(model, cacheDir, { log });
      const cache = cacheDir ? new VectorCache(cacheDir, { log }) : null;
      // Tokenizing (a worker thread) and encoding (this thread) overlap; see compressFiles.
      const it = compressFiles(collected.files, {
        encoder: model.encoder,
        modelIdentity: model.identity,
        cache,
        signal: io.signal,
        tokenizer: model.tokenizer,
        chunkOptions: { maxTokens: model.encoder.maxChunkTokens, header: model.manifest.documentFormat.header },
        index,
        log: values.verbose ? log : undefined,
      });
      let r = await it.next();
      while (!r.done) {
        const p = r.value;
        // The total grows while files are still being chunked: until then it is extrapolated.
        const chunking = p.filesDone < p.files;
        const total = chunking ? Math.max(p.total, Math.round((p.total * p.files) / Math.max(1, p.filesDone))) : p.total;
        bar.update(p.done, total, `chunks${chunking ? ' (estimated)' : ''}, ${p.cacheHits} cached; ${p.filesDone}/${p.files} files`);
        r = await it.next();
      }
      bar.end();
      const res = r.value;
      const fig: CompressFigures = {
        model: model.manifest.name,
        provider: model.provider,
        cacheDir,
        files: collected.files.length,
        skipped: collected.skipped,
        chunks: res.chunks,
        filesFromIndex: res.fromIndex,
        sourceTokens: res.sourceTokens,
        vectors: res.vectors,
        ratio: res.vectors > 0 ? res.sourceTokens / res.vectors : 0,
        cacheHits: res.cacheHits,
        encoded: res.encoded,
        encodeMs: Math.round(res.encodeMs),
        totalMs: Math.round(performance.now() - t0),
      };
      if (values.json) io.stdout.write(JSON.stringify(fig) + '\n');
      else {
        io.stdout.write(
          [
            `model      ${fig.model} (${fig.provider})`,
            `files      ${fig.files} read (${fig.filesFromIndex} unchanged, from the chunk index); skipped: ${describeSkipped(fig.skipped)}`,
            `chunks     ${fig.chunks}: ${fig.cacheHits} from cache, ${fig.encoded} encoded in ${fig.encodeMs} ms`,
            `tokens     ${fig.sourceTokens} -> ${fig.vectors} vectors (x${fig.ratio.toFixed(2)})`,
            `cache      ${fig.cacheDir ?? 'off'}`,
            `total      ${fig.totalMs} ms`,
          ].join('\n') + '\n',
        );
      }
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
