// Turns one bench result (bench/results/*.json) into BENCHMARKS.md and an SVG plot of time to
// first token against context size. `arc-context bench` calls it after a full run; by hand:
//   node --import tsx bench/report.ts [bench/results/latest.json]
// Runs named in bench/report-companions.json (see Companions in types.ts) are shown too: a
// realistic-shape decoder's latency curve (section 7, with its own SVG) and further scaling trees
// (section 6), each with its result file.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { longLivedTtft } from './util';
import { fullMeasured, isSkipped, type BenchResult, type CompanionRun, type Companions, type FullNotMeasured, type LatencySection, type ModeRun, type NotFit, type ScalingSection, type ScalingTree, type Skipped } from './types';

export const SVG_NAME = 'bench/ttft-vs-context.svg';
export const COMPANIONS_FILE = 'bench/report-companions.json';

/** What renderMarkdown shows beside the main run. */
export interface ReportExtras {
  realistic?: CompanionRun & { svg: string | null };
  scaling?: CompanionRun[];
}

// ------------------------------------------------------------------ SVG

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface Series {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

/** A line chart with log-scaled axes (sizes double from point to point; times span decades). */
/** A vertical line at x with a label, e.g. where a mode's context stops fitting the window. */
export interface Marker {
  x: number;
  label: string;
}

export function lineChartSvg(series: Series[], title: string, xlabel: string, ylabel: string, markers: Marker[] = [], width = 760, height = 400): string {
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0);
  if (pts.length === 0) return '';
  const lx = (v: number): number => Math.log10(v);
  let [x0, x1] = [Math.min(...pts.map((p) => lx(p[0]))), Math.max(...pts.map((p) => lx(p[0])))];
  let [y0, y1] = [Math.floor(Math.min(...pts.map((p) => lx(p[1])))), Math.ceil(Math.max(...pts.map((p) => lx(p[1]))))];
  if (x1 === x0) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  if (y1 === y0) y1 = y0 + 1;
  const L = 70, R = 190, T = 34, B = 48;
  const W = width - L - R, H = height - T - B;
  const sx = (x: number): number => L + ((lx(x) - x0) / (x1 - x0)) * W;
  const sy = (y: number): number => T + H - ((lx(y) - y0) / (y1 - y0)) * H;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="${L}" y="20" font-size="13">${esc(title)}</text>`,
    `<rect x="${L}" y="${T}" width="${W}" height="${H}" fill="none" stroke="#999"/>`,
  ];
  // y grid at 1, 2, 5 x 10^k
  for (let e = y0; e <= y1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (lx(v) < y0 - 1e-9 || lx(v) > y1 + 1e-9) continue;
      const y = sy(v).toFixed(1);
      out.push(`<line x1="${L}" x2="${L + W}" y1="${y}" y2="${y}" stroke="${m === 1 ? '#ddd' : '#f0f0f0'}"/>`);
      out.push(`<text x="${L - 6}" y="${(Number(y) + 4).toFixed(1)}" text-anchor="end">${v >= 1000 ? `${v / 1000}k` : v}</text>`);
    }
  }
  const xs = [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b);
  for (const x of xs) {
    const px = sx(x).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${T}" y2="${T + H}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${px}" y="${T + H + 16}" text-anchor="middle">${x}</text>`);
  }
  markers.forEach((mk, i) => {
    if (mk.x <= 0 || lx(mk.x) < x0 || lx(mk.x) > x1) return;
    const px = sx(mk.x).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${T}" y2="${T + H}" stroke="#888" stroke-dasharray="2 3"/>`);
    // Labels right of the line, or left of it in the right half (the legend sits beyond the plot).
    const right = Number(px) > L + W / 2;
    out.push(`<text x="${(Number(px) + (right ? -4 : 4)).toFixed(1)}" y="${T + 12 + 13 * i}" fill="#555" text-anchor="${right ? 'end' : 'start'}">${esc(mk.label)}</text>`);
  });
  out.push(`<text x="${L + W / 2}" y="${height - 10}" text-anchor="middle">${esc(xlabel)}</text>`);
  out.push(`<text x="16" y="${T + H / 2}" transform="rotate(-90 16 ${T + H / 2})" text-anchor="middle">${esc(ylabel)}</text>`);
  series.forEach((s, k) => {
    const c = COLORS[k % COLORS.length]!;
    const p = s.points.filter(([x, y]) => x > 0 && y > 0);
    const dash = s.dashed ? ' stroke-dasharray="5 4"' : '';
    if (p.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${dash} points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of p) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"><title>${esc(`${s.name}: ${x} tokens, ${y} ms`)}</title></circle>`);
    out.push(`<line x1="${L + W + 12}" x2="${L + W + 30}" y1="${T + 8 + 16 * k}" y2="${T + 8 + 16 * k}" stroke="${c}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${L + W + 36}" y="${T + 12 + 16 * k}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

const fits = fullMeasured;

function notMeasured(m: ModeRun | NotFit | FullNotMeasured): m is FullNotMeasured {
  return 'measured' in m && m.measured === false;
}

/** The full-text TTFT cell: the time, or why there is none (never an estimate). */
function fullCell(full: ModeRun | NotFit | FullNotMeasured, detail: boolean): string {
  if (fits(full)) return `${f(full.ttftMs.median)} ms`;
  if (notMeasured(full)) return `not measured (above --full-max-tokens ${full.fullMaxTokens})`;
  return detail ? `does not fit (${full.contextTokens} > ${full.budget})` : 'does not fit';
}

/** "a", "a and b", "a, b and c". */
function words(items: string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** Sizes without a full-text figure because of --full-max-tokens, sizes cut short by the source tree, sizes left out. */
export function latencyNotes(lat: LatencySection): string[] {
  const out: string[] = [];
  const above = lat.sizes.filter((s) => notMeasured(s.full));
  if (above.length > 0) {
    const n = (above[0]!.full as FullNotMeasured).fullMaxTokens;
    out.push(
      `Full text was not measured at ${words(above.map((s) => String(s.sourceTokens)))} source tokens: above \`--full-max-tokens ${n}\`. It would fit the window, but its plain-text prefill was left out of the run; no figure is given for it, measured or extrapolated.`,
    );
  }
  for (const s of lat.sizes.filter((x) => x.wholeTree)) {
    out.push(`Size ${s.targetTokens}: the source tree ran out; the context is the whole of \`${lat.source}\`, ${s.sourceTokens} source tokens, fewer than asked for.`);
  }
  for (const x of lat.notMeasured ?? []) out.push(`Size ${x.targetTokens} was not measured: ${x.reason}.`);
  return out;
}

export function ttftSvg(lat: LatencySection, modelName: string): string {
  const above = lat.sizes.filter((s) => notMeasured(s.full));
  const fullMax = above.length > 0 ? (above[0]!.full as FullNotMeasured).fullMaxTokens : null;
  const series: Series[] = [
    { name: 'arc, warm cache', points: lat.sizes.map((s) => [s.sourceTokens, s.arcWarm.ttftMs.median]) },
    { name: 'arc, cold (encoder)', points: lat.sizes.map((s) => [s.sourceTokens, s.arcCold.ttftMs.median]) },
    { name: 'mixed, warm cache', points: lat.sizes.flatMap((s) => (s.mixedWarm ? [[s.sourceTokens, s.mixedWarm.ttftMs.median] as [number, number]] : [])) },
    { name: fullMax === null ? 'full text (fits only)' : `full text (up to ${fullMax} tokens)`, points: lat.sizes.flatMap((s) => (fits(s.full) ? [[s.sourceTokens, s.full.ttftMs.median] as [number, number]] : [])) },
    { name: 'tokenize, first time', points: lat.sizes.map((s) => [s.sourceTokens, s.tokenizeMs.median]), dashed: true },
  ];
  const markers: Marker[] = [{ x: lat.budget, label: `full text fills the window (${lat.budget})` }];
  // Where full text stops being measured: its line ends there, with no estimate beyond.
  if (fullMax !== null) markers.push({ x: fullMax, label: `full text not measured above ${fullMax} (--full-max-tokens)` });
  const firstCut = lat.sizes.find((s) => s.arcWarm.chunksLeftOut > 0);
  if (firstCut) markers.push({ x: firstCut.sourceTokens, label: 'arc: selection leaves chunks out' });
  return lineChartSvg(series, `Time to first token vs context size (${modelName}, median of ${lat.reps})`, 'source tokens in the context (log scale)', 'milliseconds (log scale)', markers);
}

// ------------------------------------------------------------------ Markdown

const f = (x: number | null | undefined, digits = 0): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function skippedLine(what: string, s: Skipped): string {
  return `_${what} skipped: ${s.skipped}_\n`;
}

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n';
}

/** One line per section with its headline figures (all read from the result, ratios computed here). */
export function keyFigures(r: BenchResult): string[] {
  const lines: string[] = [];
  if (!isSkipped(r.latency)) {
    const sizes = r.latency.sizes;
    const lastFit = [...sizes].reverse().find((s) => s.ratios !== null);
    if (lastFit?.ratios) {
      lines.push(
        `At ${lastFit.sourceTokens} source tokens (the largest measured context that fits as plain text) full text takes ${f(lastFit.ratios.ttftFullOverArcWarm, 2)}x the time to first token of arc with a warm cache and ${f(lastFit.ratios.ttftFullOverArcCold, 2)}x that of arc cold.`,
      );
    }
    const big = sizes[sizes.length - 1];
    if (big && 'fits' in big.full) {
      lines.push(
        `At ${big.sourceTokens} source tokens full text does not fit the window; arc reads ${big.arcWarm.sourceTokensIncluded} of them (${big.arcWarm.chunksIncluded} of ${big.chunks} chunks chosen by the selection) with a first token after ${f(big.arcWarm.ttftMs.median)} ms warm and ${f(big.arcCold.ttftMs.median)} ms cold; tokenizing that context the first time takes ${f(big.tokenizeMs.median)} ms more.`,
      );
    }
  }
  if (!isSkipped(r.encoder)) {
    const e = r.encoder;
    if (!isSkipped(e.torch)) {
      lines.push(
        `Encoder: ONNX Runtime ${e.onnx.batched.tokensPerSecond} source tokens/s against PyTorch ${e.torch.batched.tokensPerSecond} (batched, ${e.threads} thread(s): ${f(e.onnx.batched.tokensPerSecond / e.torch.batched.tokensPerSecond, 2)}x)` +
          (e.ofPeak ? `, ${pct(e.ofPeak.onnxBatched)} and ${pct(e.ofPeak.torchBatched)} of the ${f(e.torch.sgemm.gflops_best, 1)} GFLOP/s sgemm peak.` : '.'),
      );
    } else lines.push(`Encoder: ONNX Runtime ${e.onnx.batched.tokensPerSecond} source tokens/s (PyTorch comparison skipped: ${e.torch.skipped}).`);
  }
  if (!isSkipped(r.tokenizers)) {
    const libs = r.tokenizers.libraries.filter((l) => l.status === 'measured' && l.mbPerSec !== undefined);
    const inUse = libs.find((l) => l.inUse);
    const library = libs.find((l) => l.name === '@huggingface/tokenizers');
    const best = libs.filter((l) => !l.inUse && l !== library).sort((a, b) => Math.max(b.mbPerSec ?? 0, b.batchMbPerSec ?? 0) - Math.max(a.mbPerSec ?? 0, a.batchMbPerSec ?? 0))[0];
    if (inUse) {
      lines.push(
        `Tokenizer: ${inUse.name} ${f(inUse.mbPerSec, 3)} MB/s` +
          (library ? ` (${library.name}'s own encode ${f(library.mbPerSec, 3)} MB/s: ${f((inUse.mbPerSec ?? 0) / (library.mbPerSec ?? 1), 1)}x, same ids on ${inUse.agreeingFiles}/${r.tokenizers.corpus.files} files)` : '') +
          (best ? `; fastest alternative ${best.name} ${f(best.mbPerSec, 3)} MB/s one file per call, ${f(best.batchMbPerSec, 3)} MB/s batched.` : '; no alternative measured.'),
      );
    }
  }
  if (!isSkipped(r.workspace)) {
    const w = r.workspace;
    lines.push(
      `Workspace (${w.files} files, ${f(w.bytes / 1e6, 2)} MB, ${w.sourceTokens} tokens): cold ${f(w.cold.totalMs / 1000, 1)} s, warm ${f(w.warm.totalMs / 1000, 1)} s (chunks of ${w.warm.filesFromIndex} files from the chunk index in ${f(w.warm.chunkMs / 1000, 1)} s), ` +
        `warm in the same process ${f(w.warmSameProcess.totalMs / 1000, 1)} s, after editing one file ${f(w.afterEdit.totalMs / 1000, 1)} s; peak RSS ${f(Math.max(w.cold.peakRssMiB, w.warm.peakRssMiB, w.afterEdit.peakRssMiB, w.warmSameProcess.peakRssMiB))} MiB.`,
    );
  }
  if (!isSkipped(r.quality)) {
    const q = r.quality;
    const mixed = q.modes.mixed ? `mixed ${pct(q.modes.mixed.exactMatch)}, ` : '';
    lines.push(`Quality (${q.rows} held-out rows, short contexts): exact match ${mixed}arc ${pct(q.modes.arc.exactMatch)}, full ${pct(q.modes.full.exactMatch)}, none ${pct(q.modes.none.exactMatch)}.`);
    if (q.repos) {
      const m = q.repos.modes;
      const part = (k: 'mixed' | 'arc' | 'full' | 'none'): string => (m[k] ? `${k} ${pct(m[k]!.exactMatch)}${k === 'none' ? '' : ` (${m[k]!.meanSourceTokens} source tokens read)`}` : `${k} –`);
      lines.push(`Quality on whole packages (${q.repos.rows} questions, each over a whole held-out package folder): exact match ${(['mixed', 'arc', 'full', 'none'] as const).map(part).join(', ')}.`);
    }
  }
  return lines;
}

export function renderMarkdown(r: BenchResult, resultFile: string, svgFile: string | null, extras: ReportExtras = {}): string {
  const m = r.machine;
  const out: string[] = [];
  out.push('# Benchmarks\n');
  const others = [...(extras.scaling ?? []).map((c) => c.file), ...(extras.realistic ? [extras.realistic.file] : [])];
  out.push(
    others.length === 0
      ? `Generated by \`bench/report.ts\` from \`${resultFile}\`; do not edit by hand. Every figure below was measured in that one run.\n`
      : `Generated by \`bench/report.ts\` from \`${resultFile}\` and the runs named in \`${COMPANIONS_FILE}\` (${others.map((o) => `\`${o}\``).join(', ')}); do not edit by hand. Sections 1-5 were measured in the first run; rows and sections from the others name their run.\n`,
  );
  out.push(
    `Model measured: **${r.model.name}** (\`${r.model.dir}\`), ` +
      (r.model.commit ? `package commit \`${r.model.commit.slice(0, 7)}\`: ${r.model.commitSubject ?? ''}${r.model.commitDirty ? ' (files changed since that commit)' : ''}` : 'a package outside version control') +
      `. Times to first token and throughputs depend on the architecture, not on the weights (total answer times also on how long the answers are); quality figures are those of these weights.\n`,
  );
  const key = keyFigures(r);
  if (key.length > 0) out.push('## Key figures\n', ...key.map((l) => `- ${l}`), '');
  out.push('## The run\n');
  out.push(
    table(
      ['', ''],
      [
        ['command', `\`${r.command}\``],
        ['mode', r.quick ? 'quick' : 'full'],
        ['started', r.startedAt],
        ['duration', `${f(r.seconds)} s`],
        ['code', `${r.git.commit ?? 'unknown'}${r.git.dirty ? ' (with uncommitted changes)' : ''}`],
        ['model', `${r.model.name} (\`${r.model.dir}\`), identity ${r.model.identity}`],
        ['model commit', r.model.commit ? `${r.model.commit} — ${r.model.commitSubject ?? ''}${r.model.commitDirty ? ' (package files changed since that commit)' : ''}` : 'not committed'],
        ['CPU', `${m.cpu}, ${m.cores} cores`],
        ['RAM', `${m.ramGiB} GiB`],
        ['OS', m.os],
        ['Node', m.node],
        ['ONNX Runtime', `onnxruntime-node ${m.onnxruntime}, provider ${m.provider}, ${m.threads} thread(s)`],
        ['load average at start', m.loadAverage.join(', ')],
      ],
    ),
  );
  const busy = (m.loadAverage[0] ?? 0) > m.cores / 2;
  out.push(
    (busy
      ? `The machine was busy when the run started (load average ${m.loadAverage[0]} on ${m.cores} cores): other processes shared the cores, so absolute times are noisy. `
      : `The machine was quiet when the run started (load average ${m.loadAverage[0]} on ${m.cores} cores). `) +
      'Modes, runtimes and libraries compared with each other were measured interleaved, which keeps their ratios fairer than their absolute values.\n',
  );
  out.push('To reproduce: `npm run build && npm install --prefix bench && npm run bench` (full, writes this file) or `npm run bench:quick` (under a minute, JSON only).\n');

  out.push('## 1. Time to first token and answer time against context size\n');
  if (isSkipped(r.latency)) out.push(skippedLine('Latency', r.latency));
  else {
    const lat = r.latency;
    out.push(
      `One question (\`\` ${lat.question} \`\`) over the first files of \`${lat.source}\`, cut to about each size. ` +
        `Times are from the start of \`ask()\` (the pipeline the editor runs) to the first answer token, and to the end of the answer, median of ${lat.reps}. ` +
        `The decoder window leaves ${lat.budget} positions for context (answer room ${lat.maxNewTokens} tokens). ` +
        '*arc warm*: compressed vectors from the cache; *arc cold*: empty cache, the chosen chunks through the encoder (selection comes first); *mixed warm*: the best-ranked chunks as text, the rest compressed, warm cache; *full*: plain-text prefill, only where the whole context fits. ' +
        'Files are tokenized once per process (chunk memo); the first question\'s tokenizing is the *tokenize* column.\n',
    );
    out.push(
      table(
        ['source tokens', 'tokenize (first time)', 'arc warm TTFT', 'arc cold TTFT', 'mixed warm TTFT', 'full TTFT', 'full / arc warm', 'full / arc cold', 'arc reads (tokens, chunks in/out, positions)'],
        lat.sizes.map((s) => [
          s.sourceTokens,
          `${f(s.tokenizeMs.median)} ms`,
          `${f(s.arcWarm.ttftMs.median)} ms`,
          `${f(s.arcCold.ttftMs.median)} ms`,
          s.mixedWarm ? `${f(s.mixedWarm.ttftMs.median)} ms` : '–',
          fullCell(s.full, true),
          s.ratios ? f(s.ratios.ttftFullOverArcWarm, 2) : '–',
          s.ratios ? f(s.ratios.ttftFullOverArcCold, 2) : '–',
          `${s.arcWarm.sourceTokensIncluded}, ${s.arcWarm.chunksIncluded}/${s.arcWarm.chunksLeftOut}, ${s.arcWarm.contextPositions}`,
        ]),
      ),
    );
    out.push(
      table(
        ['source tokens', 'arc warm total', 'arc cold total', 'full total', 'full / arc warm', 'full / arc cold', 'answer tokens (arc / full)', 'arc cold encode', 'prefill (arc / full)'],
        lat.sizes.map((s) => [
          s.sourceTokens,
          `${f(s.arcWarm.totalMs.median)} ms`,
          `${f(s.arcCold.totalMs.median)} ms`,
          fits(s.full) ? `${f(s.full.totalMs.median)} ms` : notMeasured(s.full) ? 'not measured' : 'does not fit',
          s.ratios ? f(s.ratios.totalFullOverArcWarm, 2) : '–',
          s.ratios ? f(s.ratios.totalFullOverArcCold, 2) : '–',
          `${s.arcWarm.generatedTokens} / ${fits(s.full) ? s.full.generatedTokens : '–'}`,
          `${f(s.arcCold.encodeMs)} ms`,
          `${f(s.arcWarm.prefillMs)} / ${fits(s.full) ? f(s.full.prefillMs) : '–'} ms`,
        ]),
      ),
    );
    out.push('Total times include generating the answer, whose length can differ between modes (the column *answer tokens*).\n');
    const notes = latencyNotes(lat);
    if (notes.length > 0) out.push(...notes.map((n) => `- ${n}`), '');
    if (svgFile) out.push(`![time to first token against context size](${svgFile})\n`);
  }

  out.push('## 2. Encoder throughput: ONNX Runtime against PyTorch and the hardware\n');
  if (isSkipped(r.encoder)) out.push(skippedLine('Encoder', r.encoder));
  else {
    const e = r.encoder;
    const t = e.torch;
    out.push(
      `${e.chunks} chunks (${e.tokens} source tokens, ${f(e.meanChunkTokens)} per chunk on average) from \`${e.source}\`, ${e.threads} thread(s) in both runtimes, median of the repetitions (ONNX Runtime is measured before and after the PyTorch process, so both see the same machine load). ` +
        '*batched*: the batches the pipeline\'s encoder forms (similar lengths, padded); *one chunk per call*: no batching. ' +
        `FLOPs are the encoder's matrix multiplications counted from its config: ${e.flopsPerToken === null ? 'not available (needs bench/torch_encoder.py)' : `${f(e.flopsPerToken / 1e6, 3)} MFLOP per source token`} (real tokens only; padding is not credited).\n`,
    );
    const peak = isSkipped(t) ? null : t.sgemm.gflops_best;
    const row = (name: string, run: { tokensPerSecond: number; gflops: number | null; calls: number }): (string | number)[] => [
      name,
      run.calls,
      run.tokensPerSecond,
      f(run.gflops, 2),
      peak !== null && run.gflops !== null ? pct(run.gflops / peak) : '–',
    ];
    const rows = [row('ONNX Runtime (ours), batched', e.onnx.batched), row('ONNX Runtime (ours), one chunk per call', e.onnx.single)];
    if (!isSkipped(t)) rows.push(row(`PyTorch ${t.torch} reference, batched`, t.batched), row(`PyTorch ${t.torch} reference, one chunk per call`, t.single));
    out.push(table(['runtime', 'calls', 'source tokens/s', 'achieved GFLOP/s', 'of sgemm peak'], rows));
    if (isSkipped(t)) out.push(skippedLine('PyTorch comparison', t));
    else {
      out.push(
        `sgemm peak: ${f(t.sgemm.gflops_best, 1)} GFLOP/s (best; median ${f(t.sgemm.gflops_median, 1)}) for ${t.sgemm.n}x${t.sgemm.n} fp32 \`torch.matmul\` on ${t.threads} thread(s), BLAS ${t.blas}. ` +
          `PyTorch weights: ${t.weights}.` +
          (t.parity && t.parity.maxAbsDiff !== undefined ? ` Parity on chunk ${t.parity.chunk}: max |torch - ONNX| = ${t.parity.maxAbsDiff.toExponential(2)} (values up to ${f(t.parity.maxAbs, 3)}).` : '') +
          (e.ofPeak ? ` ONNX batched runs at ${pct(e.ofPeak.onnxBatched)} of the peak, PyTorch at ${pct(e.ofPeak.torchBatched)}.` : '') +
          '\n',
      );
    }
  }

  out.push('## 3. Tokenizer throughput\n');
  if (isSkipped(r.tokenizers)) out.push(skippedLine('Tokenizers', r.tokenizers));
  else {
    const tk = r.tokenizers;
    out.push(`${tk.corpus.files} files, ${f(tk.corpus.bytes / 1e6, 2)} MB from \`${tk.corpus.root}\`, the package's tokenizer.json, median of ${tk.reps}. MB = 10^6 bytes of UTF-8 source.\n`);
    out.push(
      table(
        ['library', 'version', 'kind', 'MB/s (one file per call)', 'MB/s (batch call)', 'same ids as @huggingface/tokenizers', 'status'],
        tk.libraries.map((l) => [
          `${l.name}${l.inUse ? ' (in use)' : ''}`,
          l.version ?? '–',
          l.kind,
          f(l.mbPerSec, 3),
          f(l.batchMbPerSec, 3),
          l.agreeingFiles === undefined ? '–' : `${l.agreeingFiles}/${tk.corpus.files}`,
          l.status + (l.note ? `: ${l.note.replace(/\|/g, '\\|')}` : ''),
        ]),
      ),
    );
    for (const n of tk.notes) out.push(`- ${n}`);
    out.push('');
  }

  out.push('## 4. Compressing a workspace\n');
  if (isSkipped(r.workspace)) out.push(skippedLine('Workspace', r.workspace));
  else {
    const w = r.workspace;
    out.push(
      `\`${w.tree}\` copied to a temporary folder: ${w.files} files, ${f(w.bytes / 1e6, 2)} MB, ${w.chunks} chunks, ${w.sourceTokens} source tokens -> ${w.vectors} vectors. ` +
        `Scan + chunk (tokenize, or read the chunk index) + compress into an empty vector cache and chunk index, then again. *cold*, *warm* and *after edit* start with a fresh tokenizer, as a new CLI process does (unchanged files come from the chunk index on disk); ` +
        `*warm, same process* reuses the chunk memo, as the extension does. The edit inserts one line in \`${w.edited}\`.\n`,
    );
    const row = (name: string, x: typeof w.cold): (string | number)[] => [name, `${f(x.totalMs)} ms`, `${f(x.scanMs)} ms`, `${f(x.chunkMs)} ms`, x.filesFromIndex ?? '–', `${f(x.compressMs)} ms`, x.encoded, x.cacheHits, `${f(x.peakRssMiB)} MiB`, `${f(x.peakHeapMiB)} MiB`];
    out.push(
      table(
        ['run', 'total', 'scan', 'chunk (tokenize or index)', 'files from index', 'compress (cache + encoder)', 'chunks encoded', 'cache hits', 'peak RSS', 'peak JS heap'],
        [row('cold', w.cold), row('warm', w.warm), row('warm, same process', w.warmSameProcess), row('after editing one file', w.afterEdit)],
      ),
    );
    out.push(`RSS before the section: ${f(w.baselineRssMiB)} MiB; process maxRSS at its end (whole process so far): ${f(w.processMaxRssMiB)} MiB. Peaks are sampled every 20 ms.\n`);
  }

  out.push('## 5. Answer quality\n');
  if (isSkipped(r.quality)) out.push(skippedLine('Quality', r.quality));
  else {
    const q = r.quality;
    const kinds = [...new Set(Object.values(q.modes).flatMap((m) => Object.keys(m.perKind)))].sort();
    const shortModes = (['mixed', 'arc', 'full', 'none'] as const).filter((m) => q.modes[m] !== undefined);
    out.push(
      `Exact match on ${q.rows} rows of \`${q.data}\` (taken in turn from each kind), through \`ask()\` in each mode, as \`arc-context eval\` does, ` +
        'except that every file of a row is its own source: eval passes files by path, and the pipeline keeps one source per path, so two pieces of one file in a row would collapse into the last one.\n',
    );
    out.push(
      table(
        ['mode', 'exact match', ...kinds],
        shortModes.map((mode) => {
          const m = q.modes[mode]!;
          return [mode, pct(m.exactMatch), ...kinds.map((k) => (m.perKind[k] ? `${pct(m.perKind[k]!.exactMatch)} (n=${m.perKind[k]!.n})` : '–'))];
        }),
      ),
    );
    const cell = (t: string): string => (t === '' ? '(empty)' : `\`\` ${t.replace(/\|/g, '\\|').replace(/\n/g, ' ')} \`\``);
    const ex = q.modes.arc.examples;
    if (ex.length > 0) {
      out.push(`The first ${ex.length} rows as answered in each mode:\n`);
      out.push(
        table(
          ['row', 'question', 'expected', ...shortModes],
          ex.map((e, i) => [
            e.id,
            cell(e.question),
            cell(e.expected),
            ...shortModes.map((mode) => {
              const x = q.modes[mode]!.examples[i];
              return x ? `${cell(x.prediction)}${x.correct ? ' ✓' : ''}` : '–';
            }),
          ]),
        ),
      );
    }
    const errs = shortModes.filter((m) => q.modes[m]!.errors > 0).map((m) => `${m} ${q.modes[m]!.errors}`);
    if (errs.length > 0) out.push(`Rows that ended in a pipeline error (scored as wrong): ${errs.join(', ')}.\n`);
    const c = q.curve[0];
    out.push(
      `Accuracy against codebase size: the answer's file plus N distractor files (the row's own, then held-out files of the same package, then any; none defines the asked name), ` +
        `${c ? c.rows : 0} rows, same decoder budget. *answer chunk chosen*: how often the pipeline's selection put the answer's chunk into the context; ` +
        '*reads*: source tokens of the chunks that reached the decoder (in full mode a chunk cut at the window counts whole).\n',
    );
    const hasMixed = q.curve.some((p) => p.mixed !== undefined);
    out.push(
      hasMixed
        ? table(
            ['distractors', 'context (source tokens)', 'mixed EM', 'arc EM', 'full EM', 'mixed: answer chunk chosen', 'arc: answer chunk chosen', 'full: answer chunk chosen', 'mixed reads (tokens)', 'arc reads (tokens)', 'full reads (tokens)'],
            q.curve.map((p) => [p.distractors, p.arc.meanSourceTokens, pct(p.mixed?.exactMatch ?? 0), pct(p.arc.exactMatch), pct(p.full.exactMatch), pct(p.mixed?.answerIncluded ?? 0), pct(p.arc.answerIncluded), pct(p.full.answerIncluded), p.mixed?.meanIncludedTokens ?? 0, p.arc.meanIncludedTokens, p.full.meanIncludedTokens]),
          )
        : table(
            ['distractors', 'context (source tokens)', 'arc EM', 'full EM', 'arc: answer chunk chosen', 'full: answer chunk chosen', 'arc reads (tokens)', 'full reads (tokens)'],
            q.curve.map((p) => [p.distractors, p.arc.meanSourceTokens, pct(p.arc.exactMatch), pct(p.full.exactMatch), pct(p.arc.answerIncluded), pct(p.full.answerIncluded), p.arc.meanIncludedTokens, p.full.meanIncludedTokens]),
          ),
    );
    if (q.repos) {
      const rp = q.repos;
      const rm = (['mixed', 'arc', 'full', 'none'] as const).filter((m) => rp.modes[m] !== undefined);
      const rkinds = [...new Set(rm.flatMap((m) => Object.keys(rp.modes[m]!.perKind)))].sort();
      out.push(
        `Whole packages: ${rp.rows} questions of \`${rp.data}\`, each about a whole held-out package folder several times the decoder window, asked like \`ask --root FOLDER\` (scan, chunk, select, compress) through \`arc-context eval\`'s row runner. ` +
          '*answer chunk as text / compressed*: how often the chunk defining the asked name reached the decoder in that form; *source tokens*: tokens of the chunks the decoder read in any form.\n',
      );
      out.push(
        table(
          ['mode', 'exact match', ...rkinds, 'answer chunk as text', 'compressed', 'absent', 'source tokens', 'context positions', 'median TTFT ms'],
          rm.map((mode) => {
            const m = rp.modes[mode]!;
            return [mode, pct(m.exactMatch), ...rkinds.map((k) => (m.perKind[k] ? `${pct(m.perKind[k]!.exactMatch)} (n=${m.perKind[k]!.n})` : '–')), pct(m.answerChunk.text), pct(m.answerChunk.compressed), pct(m.answerChunk.absent), m.meanSourceTokens, m.meanContextPositions, m.medianTtftMs];
          }),
        ),
      );
    }
    out.push(`Quality section: ${f(q.seconds)} s.\n`);
  }
  const scalingRuns: { file: string; result: BenchResult; section: ScalingSection }[] = [];
  if (r.scaling && !isSkipped(r.scaling)) scalingRuns.push({ file: resultFile, result: r, section: r.scaling });
  for (const c of extras.scaling ?? []) if (c.result.scaling && !isSkipped(c.result.scaling)) scalingRuns.push({ file: c.file, result: c.result, section: c.result.scaling });
  if (scalingRuns.length === 1 && scalingRuns[0].file === resultFile) out.push(renderScaling(scalingRuns[0].section));
  else if (scalingRuns.length > 0) out.push(renderScalingRuns(scalingRuns));
  if (extras.realistic) out.push(renderRealistic(extras.realistic));
  return out.join('\n');
}

/** Section 6 from several runs: one row per tree and run, the run named. */
export function renderScalingRuns(runs: { file: string; result: BenchResult; section: ScalingSection }[]): string {
  const out: string[] = ['## 6. Large repositories\n'];
  const rows: (string | number)[][] = [];
  runs.forEach((run, k) => {
    for (const t of run.section.trees) rows.push([...scalingRow(t), `[${k + 1}]`]);
  });
  out.push(
    table(
      ['tree', 'files', 'chunks', 'source tokens', 'cold: first answer TTFT (process)', 'cold: chunks encoded', 'whole-tree compress (process)', 'warm TTFT mixed (process)', 'warm TTFT arc (process)', 'warm TTFT mixed, long-lived process', 'same, watched (nothing changed)', 'CLI session (ask --interactive)', 'peak RSS ask / compress', 'run'],
      rows,
    ),
  );
  runs.forEach((run, k) => {
    const r = run.result;
    out.push(
      `[${k + 1}] \`${run.file}\`: \`${r.command}\`, code ${r.git.commit ? r.git.commit.slice(0, 7) : 'unknown'}${r.git.dirty ? ' (with uncommitted changes)' : ''}, ${r.model.name}, ${run.section.threads} thread(s), started ${r.startedAt}, load average at start ${r.machine.loadAverage[0] ?? '?'} on ${r.machine.cores} cores; trees from ${run.section.from}.`,
    );
  });
  out.push('');
  // The notes say the same in every run; the latest run's are shown.
  for (const n of runs[runs.length - 1].section.notes) out.push(`- ${n}`);
  // "<label> A ms at 1 MB, B ms at 10 MB; Rx the 1 MB tree's at 10 MB.": each tree against the first.
  const ratioLine = (label: string, points: { targetMB: number; ms: number }[]) =>
    `- Run [${runs.length}]${label} ${points.map((p) => `${f(p.ms)} ms at ${p.targetMB} MB`).join(', ')}; ` +
    `${points
      .slice(1)
      .map((p) => `${f(p.ms / points[0].ms, 2)}x the ${points[0].targetMB} MB tree's at ${p.targetMB} MB`)
      .join(', ')}.`;
  const last = runs[runs.length - 1].section.trees.flatMap((t) => ('skipped' in t ? [] : [t]));
  if (last.length > 1) {
    out.push(ratioLine(': warm time to first token (the slower of mixed and arc)', last.map((t) => ({ targetMB: t.targetMB, ms: Math.max(t.warmMixed.ttftMs, t.warmArc.ttftMs) }))));
    const lived = last.flatMap((t) => (t.longLived ? [{ targetMB: t.targetMB, ms: longLivedTtft(t.longLived.ttftMs) }] : []));
    if (lived.length > 1 && lived[0].targetMB === last[0].targetMB) out.push(ratioLine(', long-lived process (as the extension asks):', lived));
    const watched = last.flatMap((t) => (t.longLivedWatched ? [{ targetMB: t.targetMB, ms: longLivedTtft(t.longLivedWatched.ttftMs) }] : []));
    if (watched.length > 1 && watched[0].targetMB === last[0].targetMB) out.push(ratioLine(', long-lived process with change notifications, nothing changed between questions (as the extension asks):', watched));
    const session = last.flatMap((t) => (t.session ? [{ targetMB: t.targetMB, ms: longLivedTtft(t.session.ttftMs) }] : []));
    if (session.length > 1 && session[0].targetMB === last[0].targetMB) out.push(ratioLine(', the CLI\'s session (`ask --interactive`, one process, change notifications):', session));
  }
  out.push('');
  return out.join('\n');
}

function scalingRow(t: ScalingTree): (string | number)[] {
  return 'skipped' in t
    ? [`${t.targetMB} MB`, '–', '–', '–', t.skipped, '–', '–', '–', '–', '–', '–', '–', '–']
    : [
        `${f(t.bytes / 1e6, 2)} MB`,
        t.files,
        t.chunks ?? '–',
        t.sourceTokens ?? '–',
        `${f(t.cold.ttftMs)} ms (${f(t.cold.wallMs)} ms)`,
        `${t.cold.encoded} of ${t.chunks ?? '?'}`,
        `${f(t.compress.wallMs / 1000, 1)} s, ${t.compress.encoded ?? '?'} encoded`,
        `${f(t.warmMixed.ttftMs)} ms (${f(t.warmMixed.wallMs)} ms)`,
        `${f(t.warmArc.ttftMs)} ms (${f(t.warmArc.wallMs)} ms)`,
        t.longLived ? `${f(longLivedTtft(t.longLived.ttftMs))} ms` : '–',
        t.longLivedWatched ? `${f(longLivedTtft(t.longLivedWatched.ttftMs))} ms` : '–',
        t.session ? `${f(longLivedTtft(t.session.ttftMs))} ms` : '–',
        `${f(Math.max(t.cold.maxRssMiB, t.warmMixed.maxRssMiB, t.warmArc.maxRssMiB, t.session?.maxRssMiB ?? 0))} / ${f(t.compress.maxRssMiB)} MiB`,
      ];
}

/** Section 7: time to first token against context size on a decoder of realistic shape (another run's latency section). */
export function renderRealistic(run: CompanionRun & { svg: string | null }): string {
  const r = run.result;
  const out: string[] = ['## 7. Time to first token against context size on a realistic decoder shape\n'];
  if (isSkipped(r.latency)) {
    out.push(skippedLine('Latency', r.latency));
    return out.join('\n');
  }
  const lat = r.latency;
  const d = r.model.decoder;
  const random = /random/i.test(r.model.name);
  out.push(
    `Model: **${r.model.name}** (\`${r.model.dir}\`)` +
      (d ? `: decoder of ${d.numLayers} layers, width ${d.hiddenSize}, vocabulary ${d.vocabSize}, a ${d.contextLength}-position window; encoder x${r.model.encoder.poolingFactor}` : '') +
      (random ? '. **Random weights**: these figures give the speed of this shape, not its answers.' : '.') +
      ` Run: \`${run.file}\` (\`${r.command}\`, ${r.machine.threads} ONNX Runtime thread(s), ${r.machine.provider}, median of ${lat.reps}, started ${r.startedAt}, load average at start ${r.machine.loadAverage[0] ?? '?'} on ${r.machine.cores} cores). ` +
      `The question and answer room leave ${lat.budget} positions for context.\n`,
  );
  out.push(
    table(
      ['source tokens', 'arc warm TTFT', 'arc cold TTFT', 'mixed warm TTFT', 'full TTFT', 'full / arc warm', 'full / mixed warm', 'decoder positions (arc / mixed / full)'],
      lat.sizes.map((s) => {
        const full = fits(s.full) ? s.full : null;
        return [
          s.sourceTokens,
          `${f(s.arcWarm.ttftMs.median)} ms`,
          `${f(s.arcCold.ttftMs.median)} ms`,
          s.mixedWarm ? `${f(s.mixedWarm.ttftMs.median)} ms` : '–',
          fullCell(s.full, false),
          s.ratios ? f(s.ratios.ttftFullOverArcWarm, 2) : '–',
          full && s.mixedWarm ? f(full.ttftMs.median / s.mixedWarm.ttftMs.median, 2) : '–',
          `${s.arcWarm.contextPositions} / ${s.mixedWarm ? s.mixedWarm.contextPositions : '–'} / ${full ? full.contextPositions : '–'}`,
        ];
      }),
    ),
  );
  if (run.svg) out.push(`![time to first token against context size, ${r.model.name}](${run.svg})\n`);
  const withRatio = lat.sizes.filter((s) => s.ratios !== null);
  const top = withRatio[withRatio.length - 1];
  const above = lat.sizes.filter((s) => notMeasured(s.full));
  if (top?.ratios) {
    out.push(
      `- At ${top.sourceTokens} source tokens (${above.length > 0 ? 'the largest where full text was measured' : 'the largest measured where full text fits'}) arc's first token comes ${f(top.ratios.ttftFullOverArcWarm, 2)}x sooner than full-text prefill with a warm cache and ${f(top.ratios.ttftFullOverArcCold, 2)}x cold ` +
        `(the decoder reads ${top.arcWarm.contextPositions} positions instead of ${fits(top.full) ? top.full.contextPositions : '?'}).`,
    );
  }
  const biggest = lat.sizes[lat.sizes.length - 1];
  if (biggest && notMeasured(biggest.full)) {
    out.push(
      `- At ${biggest.sourceTokens} source tokens the decoder reads ${biggest.arcWarm.contextPositions} positions in arc (first token after ${f(biggest.arcWarm.ttftMs.median)} ms warm, ${f(biggest.arcCold.ttftMs.median)} ms cold)` +
        (biggest.mixedWarm ? ` and ${biggest.mixedWarm.contextPositions} in mixed (${f(biggest.mixedWarm.ttftMs.median)} ms warm)` : '') +
        `; full text would read ${biggest.full.contextTokens} and was not measured.`,
    );
  }
  for (const n of latencyNotes(lat)) out.push(`- ${n}`);
  if (biggest) out.push(`- Largest context measured: ${biggest.sourceTokens} source tokens; sizes: ${lat.sizes.map((s) => s.targetTokens).join(', ')} (requested).`);
  out.push('');
  return out.join('\n');
}

/** Section 6: large repositories (cold first answer, whole-tree compression, warm TTFT, peak RSS). */
export function renderScaling(sc: ScalingSection): string {
  const out: string[] = ['## 6. Large repositories\n'];
  out.push(
    table(
      ['tree', 'files', 'chunks', 'source tokens', 'cold: first answer TTFT (process)', 'cold: chunks encoded', 'whole-tree compress (process)', 'warm TTFT mixed (process)', 'warm TTFT arc (process)', 'warm TTFT mixed, long-lived process', 'same, watched (nothing changed)', 'CLI session (ask --interactive)', 'peak RSS ask / compress'],
      sc.trees.map(scalingRow),
    ),
  );
  for (const n of sc.notes) out.push(`- ${n}`);
  out.push('');
  return out.join('\n');
}

/** The companion runs named in bench/report-companions.json, when it exists. */
export function loadCompanions(repoRoot: string): { realistic?: CompanionRun; scaling?: CompanionRun[] } {
  const file = path.join(repoRoot, COMPANIONS_FILE);
  if (!existsSync(file)) return {};
  const c = JSON.parse(readFileSync(file, 'utf8')) as Companions;
  const read = (rel: string): CompanionRun => ({ file: rel, result: JSON.parse(readFileSync(path.join(repoRoot, rel), 'utf8')) as BenchResult });
  return { ...(c.realistic ? { realistic: read(c.realistic) } : {}), ...(c.scaling ? { scaling: c.scaling.map(read) } : {}) };
}

/** Writes BENCHMARKS.md and the SVGs into `repoRoot`; returns the paths written. */
export function writeReport(r: BenchResult, repoRoot: string, resultFile: string): string[] {
  const written: string[] = [];
  const companions = loadCompanions(repoRoot);
  const extras: ReportExtras = { ...(companions.scaling ? { scaling: companions.scaling } : {}) };
  if (companions.realistic) {
    const real = companions.realistic.result;
    let svgName: string | null = null;
    if (!isSkipped(real.latency)) {
      const text = ttftSvg(real.latency, real.model.name);
      if (text) {
        svgName = `bench/ttft-vs-context-${path.basename(real.model.dir)}.svg`;
        writeFileSync(path.join(repoRoot, svgName), text);
        written.push(svgName);
      }
    }
    extras.realistic = { ...companions.realistic, svg: svgName };
  }
  let svg: string | null = null;
  if (!isSkipped(r.latency)) {
    const text = ttftSvg(r.latency, r.model.name);
    if (text) {
      writeFileSync(path.join(repoRoot, SVG_NAME), text);
      written.push(SVG_NAME);
      svg = SVG_NAME;
    }
  }
  writeFileSync(path.join(repoRoot, 'BENCHMARKS.md'), renderMarkdown(r, resultFile, svg, extras));
  written.push('BENCHMARKS.md');
  return written;
}

// Run as a script only: this module is also bundled into dist/cli.js, where require.main === module
// would hold for the bundle.
if (process.argv[1] !== undefined && path.basename(process.argv[1]).startsWith('report.')) {
  const root = path.resolve(__dirname, '..');
  const file = process.argv[2] ?? path.join(root, 'bench', 'results', 'latest.json');
  const result = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
  for (const p of writeReport(result, root, path.relative(root, path.resolve(file)).split(path.sep).join('/'))) process.stdout.write(`wrote ${p}\n`);
}
