// `arc-context bench`: speed and quality figures of a model package on this machine, measured
// side by side in one run (the sections live in bench/*.ts; bench/report.ts writes BENCHMARKS.md).
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { runEncoder } from '../../bench/encoder';
import { fullText, runLatency } from '../../bench/latency';
import { runQuality } from '../../bench/quality';
import { writeReport } from '../../bench/report';
import { runScaling } from '../../bench/scaling';
import { runTokenizers } from '../../bench/tokenizers';
import { BENCH_SCHEMA, isSkipped, type BenchResult, type Skipped } from '../../bench/types';
import { bytesOf, gitState, lastCommitOf, machine, readTree, round } from '../../bench/util';
import { runWorkspace } from '../../bench/workspace';
import type { ArcModel } from '../core/api';
import { packageRoot } from '../core/context/locations';
import type { SourceFile } from '../core/context/sources';
import { errorMessage, isArcError } from '../core/errors';
import { loadModel } from '../core/model';
import { MODEL_OPTIONS, UsageError, loadOptions, parse, parseIntOption, type Command, type CommandIo } from './args';
import { modelDirFrom } from './compress';

export const SECTIONS = ['latency', 'encoder', 'tokenizers', 'workspace', 'quality', 'scaling'] as const;
export type Section = (typeof SECTIONS)[number];

const usage = `Usage: arc-context bench [--model DIR] [--quick] [--out bench/results] [--json] [options]
Measure time to first token (arc warm / arc cold / full text) against context size, encoder
throughput (ONNX Runtime against the PyTorch reference and the machine's sgemm peak), tokenizer
throughput, workspace compression and (full runs) answer quality. Writes a JSON per run to --out
(plus latest.json; quick runs: latest-quick.json) and, after a full run, BENCHMARKS.md.
  --model DIR        arc-model/1 package folder (default: the bundled models/arc-tiny-code)
  --provider P       auto, cuda, webgpu, dml, coreml or cpu (default cpu: comparable figures)
  --threads N        CPU threads for ONNX Runtime and PyTorch (default 1)
  --quick            small sizes, few repetitions, no quality section: under a minute
  --out DIR          results folder (default: bench/results of this package)
  --json             print the result JSON instead of the summary
  --sections LIST    comma-separated subset of ${SECTIONS.join(',')}
  --sizes LIST       context sizes in source tokens (default 125,250,500,1000,2000,4000,8000)
  --reps N           repetitions per measurement (default 5; quick 2)
  --full-max-tokens N  latency: sizes above N source tokens measure arc and mixed only; full text
                     is recorded as not measured (long plain-text prefill: time, memory); default: none
  --source DIR       source tree for the contexts and encoder chunks (default: this package's src/;
                     sizes beyond its tokens measure the whole tree once and say so)
  --tree DIR         tree to compress and tokenize (default node_modules/@types/node; quick: node_modules/picomatch)
  --encoder-chunks N chunks for the encoder throughput (default 256; quick 16)
  --scaling-mb LIST  scaling section: tree sizes in MB of real code from node_modules (default 1,10;
                     the issue's 50 MB point: 1,10,50); not in quick runs unless --sections names it
  --scaling-from L   comma-separated folders the trees are cut from, in order (default node_modules)
  --qa FILE          held-out questions (default: <model>/heldout-qa.jsonl)
  --qa-rows N        rows for the per-mode exact match (default 0 = all)
  --curve-rows N     rows for the accuracy-versus-size curve (default 60)
  --max-new-tokens N answer length limit (default: the manifest's)
  --no-report        do not write BENCHMARKS.md and the SVG after a full run
  -v, --verbose      log provider choice`;

function parseList(value: string | undefined, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p) || Number(p) < 1)) throw new UsageError(`${flag} must be comma-separated positive integers (got "${value}")`);
  return parts.map(Number);
}

function parseSections(value: string | undefined): Set<Section> {
  if (value === undefined) return new Set(SECTIONS);
  const names = value.split(',').map((s) => s.trim());
  for (const n of names) if (!(SECTIONS as readonly string[]).includes(n)) throw new UsageError(`--sections takes ${SECTIONS.join(', ')} (got "${n}")`);
  return new Set(names as Section[]);
}

function firstExisting(...dirs: string[]): string | null {
  return dirs.find((d) => existsSync(d)) ?? null;
}

/** Runs a section; a failure other than cancellation is recorded as skipped, with its reason. */
async function section<T extends object>(name: string, enabled: boolean, io: CommandIo, fn: () => Promise<T>): Promise<T | Skipped> {
  if (!enabled) return { skipped: 'not selected (--sections)' };
  const t = performance.now();
  try {
    const r = await fn();
    io.stderr.write(`arc-context bench: ${name} done in ${round((performance.now() - t) / 1000)} s\n`);
    return r;
  } catch (e) {
    if (io.signal?.aborted || (isArcError(e) && e.code === 'cancelled')) throw e;
    io.stderr.write(`arc-context bench: ${name} failed: ${errorMessage(e)}\n`);
    return { skipped: `failed: ${errorMessage(e)}` };
  }
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z');
}

function summary(r: BenchResult): string {
  const lines: string[] = [`model ${r.model.name} (${r.machine.provider}, ${r.machine.threads} thread(s)), ${r.quick ? 'quick' : 'full'} run, ${r.seconds} s`];
  if (!isSkipped(r.latency)) {
    lines.push('source tokens | first token: arc warm / arc cold / full | full/arc warm | full/arc cold');
    for (const s of r.latency.sizes) {
      const tree = s.wholeTree ? ` (whole source tree; ${s.targetTokens} asked for)` : '';
      lines.push(`${String(s.sourceTokens).padStart(13)} | ${s.arcWarm.ttftMs.median} / ${s.arcCold.ttftMs.median} / ${fullText(s.full)} | ${s.ratios?.ttftFullOverArcWarm ?? '-'} | ${s.ratios?.ttftFullOverArcCold ?? '-'}${tree}`);
    }
    for (const n of r.latency.notMeasured ?? []) lines.push(`size ${n.targetTokens} not measured: ${n.reason}`);
  } else lines.push(`latency: ${r.latency.skipped}`);
  if (!isSkipped(r.encoder)) {
    const e = r.encoder;
    const t = isSkipped(e.torch) ? `torch skipped: ${e.torch.skipped}` : `torch ${e.torch.batched.tokensPerSecond} tokens/s, sgemm peak ${round(e.torch.sgemm.gflops_best)} GFLOP/s`;
    lines.push(`encoder: onnx ${e.onnx.batched.tokensPerSecond} tokens/s (${e.onnx.batched.gflops ?? '-'} GFLOP/s); ${t}`);
  } else lines.push(`encoder: ${r.encoder.skipped}`);
  if (!isSkipped(r.tokenizers)) {
    lines.push(`tokenizers: ${r.tokenizers.libraries.map((l) => `${l.name} ${l.status === 'measured' ? `${l.mbPerSec} MB/s` : l.status}`).join('; ')}`);
  } else lines.push(`tokenizers: ${r.tokenizers.skipped}`);
  if (!isSkipped(r.workspace)) {
    const w = r.workspace;
    lines.push(`workspace: ${w.files} files, ${w.sourceTokens} tokens: cold ${w.cold.totalMs} ms, warm ${w.warm.totalMs} ms, after edit ${w.afterEdit.totalMs} ms, peak RSS ${w.cold.peakRssMiB} MiB`);
  } else lines.push(`workspace: ${r.workspace.skipped}`);
  if (!isSkipped(r.quality)) {
    const q = r.quality;
    lines.push(`quality: EM mixed ${q.modes.mixed?.exactMatch ?? '-'}, arc ${q.modes.arc.exactMatch}, full ${q.modes.full.exactMatch}, none ${q.modes.none.exactMatch} (${q.rows} rows)`);
    for (const p of q.curve) lines.push(`  ${p.distractors} distractors: mixed ${p.mixed?.exactMatch ?? '-'}, arc ${p.arc.exactMatch}, full ${p.full.exactMatch}`);
    if (q.repos) {
      const m = q.repos.modes;
      lines.push(`quality (whole packages, ${q.repos.rows} rows): EM ${(['mixed', 'arc', 'full', 'none'] as const).map((k) => `${k} ${m[k]?.exactMatch ?? '-'}`).join(', ')}`);
    }
  } else lines.push(`quality: ${r.quality.skipped}`);
  if (r.scaling && !isSkipped(r.scaling)) {
    for (const t of r.scaling.trees) {
      if ('skipped' in t) lines.push(`scaling ${t.targetMB} MB: ${t.skipped}`);
      else lines.push(`scaling ${t.targetMB} MB (${t.files} files): cold first answer ${t.cold.ttftMs} ms, whole-tree compress ${t.compress.wallMs} ms, warm TTFT mixed ${t.warmMixed.ttftMs} ms / arc ${t.warmArc.ttftMs} ms, peak RSS ${Math.max(t.cold.maxRssMiB, t.warmMixed.maxRssMiB, t.warmArc.maxRssMiB)} MiB (ask), ${t.compress.maxRssMiB} MiB (compress)`);
    }
  } else if (r.scaling) lines.push(`scaling: ${r.scaling.skipped}`);
  return lines.join('\n') + '\n';
}

export const command: Command = {
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        ...MODEL_OPTIONS,
        quick: { type: 'boolean' },
        out: { type: 'string' },
        json: { type: 'boolean' },
        sections: { type: 'string' },
        sizes: { type: 'string' },
        'scaling-mb': { type: 'string' },
        'scaling-from': { type: 'string' },
        reps: { type: 'string' },
        source: { type: 'string' },
        tree: { type: 'string' },
        'encoder-chunks': { type: 'string' },
        qa: { type: 'string' },
        'qa-rows': { type: 'string' },
        'curve-rows': { type: 'string' },
        'max-new-tokens': { type: 'string' },
        'full-max-tokens': { type: 'string' },
        'no-report': { type: 'boolean' },
      },
      false,
    );
    if (values.help) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const quick = values.quick === true;
    const sections = parseSections(values.sections);
    const sizes = parseList(values.sizes, '--sizes') ?? (quick ? [250, 500, 1000, 2000, 4000, 8000] : [125, 250, 500, 1000, 2000, 4000, 8000]);
    const reps = parseIntOption(values.reps, '--reps', 1) ?? (quick ? 2 : 5);
    const threads = parseIntOption(values.threads, '--threads', 1) ?? 1;
    const encoderChunks = parseIntOption(values['encoder-chunks'], '--encoder-chunks', 1) ?? (quick ? 16 : 256);
    const qaRows = parseIntOption(values['qa-rows'], '--qa-rows', 0) ?? 0;
    const curveRows = parseIntOption(values['curve-rows'], '--curve-rows', 1) ?? 60;
    const maxNew = parseIntOption(values['max-new-tokens'], '--max-new-tokens', 1);
    const fullMaxTokens = parseIntOption(values['full-max-tokens'], '--full-max-tokens', 1);
    const root = packageRoot(__dirname) ?? process.cwd();
    const benchDir = path.join(root, 'bench');
    const outDir = path.resolve(values.out ?? path.join(benchDir, 'results'));
    const source = path.resolve(values.source ?? path.join(root, 'src'));
    const tree =
      values.tree !== undefined
        ? path.resolve(values.tree)
        : quick
          ? firstExisting(path.join(root, 'node_modules', 'picomatch'), source)
          : firstExisting(path.join(root, 'node_modules', '@types', 'node'), source);
    const opts = loadOptions({ ...values, provider: values.provider ?? 'cpu', threads: String(threads) }, io);
    const log = (line: string): void => void io.stderr.write(`arc-context bench: ${line}\n`);

    const started = new Date();
    const modelDir = path.resolve(modelDirFrom(values.model));
    const model: ArcModel = await loadModel(modelDir, opts);
    try {
      const dec = model.manifest.decoder;
      const maxNewTokens = maxNew ?? model.manifest.prompt.maxNewTokens;
      const tokenizerPath = path.resolve(model.dir, model.manifest.encoder.tokenizer);
      const sourceFiles: SourceFile[] = await readTree(source, io.signal);
      const commit = lastCommitOf(modelDir);
      const noDecoder = !dec || !model.decoder ? 'the package has no decoder (encoder-only)' : null;

      // Workspace first: its memory peak is then the model plus this section, not what earlier
      // sections left behind (ONNX Runtime arenas, the optional native tokenizers).
      const workspace = await section('workspace', sections.has('workspace'), io, async () => {
        if (!tree) return { skipped: 'no tree to compress (--tree)' };
        return runWorkspace(model, tree, { tokenizerPath, signal: io.signal, log });
      });
      const latency = await section('latency', sections.has('latency'), io, async () => {
        if (noDecoder) return { skipped: noDecoder };
        return runLatency(model, source, sourceFiles, { sizes, reps, maxNewTokens, ...(fullMaxTokens !== undefined ? { fullMaxTokens } : {}), signal: io.signal, log });
      });
      const encoder = await section('encoder', sections.has('encoder'), io, () =>
        runEncoder(model, source, sourceFiles, { chunks: encoderChunks, reps: Math.min(reps, 3), threads, sgemmN: quick ? 1024 : 2048, benchDir, timeoutS: 600, signal: io.signal, log }),
      );
      const tokenizers = await section('tokenizers', sections.has('tokenizers'), io, async () => {
        if (!tree) return { skipped: 'no tree to tokenize (--tree)' };
        const files = await readTree(tree, io.signal);
        // Quick runs tokenize the first 256 KB: the pure-JS tokenizer is slow.
        const corpus = quick ? files.filter((_, i) => bytesOf(files.slice(0, i)) < 256 * 1024) : files;
        return runTokenizers(tree, corpus, { tokenizerPath, reps: quick ? 1 : Math.min(reps, 2), benchDir, log });
      });
      const scaling = await section('scaling', sections.has('scaling') && (!quick || values.sections !== undefined), io, async () => {
        const cli = path.join(root, 'dist', 'cli.js');
        if (!existsSync(cli)) return { skipped: `${cli} not built (npm run build)` };
        return runScaling({ sizesMB: parseList(values['scaling-mb'], '--scaling-mb') ?? [1, 10], from: values['scaling-from'] ? values['scaling-from'].split(',').map((d) => path.resolve(d)) : [path.join(root, 'node_modules')], cli, modelDir, threads, ...(noDecoder ? {} : { model }), signal: io.signal, log });
      });
      const qaPath = path.resolve(values.qa ?? path.join(modelDir, 'heldout-qa.jsonl'));
      const quality = await section('quality', sections.has('quality'), io, async () => {
        if (quick && values.qa === undefined) return { skipped: 'quick mode (quality runs in full mode, or with --qa)' };
        if (noDecoder) return { skipped: noDecoder };
        if (!existsSync(qaPath)) return { skipped: `${qaPath} not found` };
        // The whole-package set ships beside the model's own held-out file when the package has one.
        const repos = path.join(path.dirname(qaPath), 'heldout-repos.jsonl');
        return runQuality(model, qaPath, { rows: qaRows, curveRows, distractors: [0, 4, 16, 64], ...(existsSync(repos) ? { reposData: repos } : {}), maxNewTokens: maxNew, signal: io.signal, log });
      });

      // Paths inside this package are recorded relative to it, so results read the same on any clone.
      const shown = (p: string): string => (p.startsWith(root + path.sep) ? path.relative(root, p).split(path.sep).join('/') : p);
      if (!isSkipped(latency)) latency.source = shown(latency.source);
      if (!isSkipped(encoder)) encoder.source = shown(encoder.source);
      if (!isSkipped(tokenizers)) tokenizers.corpus.root = shown(tokenizers.corpus.root);
      if (!isSkipped(workspace)) workspace.tree = shown(workspace.tree);
      if (!isSkipped(quality) && quality.repos) quality.repos.data = shown(quality.repos.data);
      if (!isSkipped(quality)) quality.data = shown(quality.data);
      if (!isSkipped(scaling)) {
        for (const dir of scaling.from.split(', ')) scaling.notes = scaling.notes.map((n) => n.split(dir).join(shown(dir)));
        scaling.from = scaling.from.split(', ').map(shown).join(', ');
      }
      const finished = new Date();
      const result: BenchResult = {
        schema: BENCH_SCHEMA,
        startedAt: started.toISOString(),
        finishedAt: finished.toISOString(),
        seconds: round((finished.getTime() - started.getTime()) / 1000),
        command: ['arc-context', 'bench', ...argv].join(' '),
        quick,
        git: gitState(root),
        machine: machine(model.provider, threads),
        model: {
          dir: modelDir.startsWith(root + path.sep) ? path.relative(root, modelDir).split(path.sep).join('/') : modelDir,
          name: model.manifest.name,
          identity: model.identity,
          commit: commit.commit,
          commitSubject: commit.subject,
          commitDirty: commit.dirty,
          encoder: {
            poolingFactor: model.manifest.encoder.poolingFactor,
            maxChunkTokens: model.manifest.encoder.maxChunkTokens,
            hiddenSize: model.manifest.encoder.hiddenSize,
            outputSize: model.manifest.encoder.outputSize,
          },
          decoder: dec ? { hiddenSize: dec.hiddenSize, numLayers: dec.numLayers, vocabSize: dec.vocabSize, contextLength: dec.contextLength } : null,
        },
        latency,
        encoder,
        tokenizers,
        workspace,
        quality,
        scaling,
      };
      await mkdir(outDir, { recursive: true });
      const suffix = quick ? '-quick' : '';
      const file = path.join(outDir, `${stamp(started)}${suffix}.json`);
      const text = JSON.stringify(result, null, 1) + '\n';
      await writeFile(file, text);
      await writeFile(path.join(outDir, `latest${suffix}.json`), text);
      log(`wrote ${file}`);
      if (!quick && !values['no-report']) {
        const rel = path.relative(root, file).split(path.sep).join('/');
        for (const p of writeReport(result, root, rel)) log(`wrote ${p}`);
      }
      io.stdout.write(values.json ? text : summary(result));
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
