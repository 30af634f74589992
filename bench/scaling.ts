// Large repositories: trees of about 1, 10 (and, when asked, 50) MB of real code copied from
// this package's node_modules, asked about through the CLI in new processes, as a user would:
//   cold   - empty cache: the first answer (scan, tokenize + index every file, encode only the
//            chunks the window holds);
//   compress - `arc-context compress` of the whole tree afterwards (what the extension does in
//            the background);
//   warm   - a new process on the warm cache and indexes, mixed and arc mode;
//   long-lived - the same question again and again in the bench's own process, as the extension
//            asks in its long-lived host (tree index kept in memory, code compiled).
// Each run reports the time to first token from ask()'s start (stats.ttftMs), the process's
// wall time (Node start + model load included) and its peak RSS (VmHWM at exit on Linux).
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { ArcModel } from '../src/core/api';
import { askOnce } from './ask';
import type { ScalingRun, ScalingSection, ScalingTree } from './types';
import { longLivedTtft, round, withTempDir } from './util';
import { RACY_MS } from '../src/core/context/treeIndex';
import { TreeWatch } from '../src/core/context/treeWatch';

export interface ScalingOptions {
  /** Tree sizes in MB (10^6 bytes of source). */
  sizesMB: number[];
  /** Where the real code comes from (default: this package's node_modules), in order. */
  from: string[];
  cli: string;
  modelDir: string;
  threads: number;
  /** The same model loaded in this process (the long-lived runs); none: not measured. */
  model?: ArcModel;
  signal?: AbortSignal;
  log: (line: string) => void;
}

/** Questions asked in the bench's own process per tree; the figure kept is the median of all but the first. */
export const LONG_LIVED_ASKS = 8;
/** New processes on the warm cache per mode; the run kept is the median by time to first token. */
export const WARM_RUNS = 3;

const CODE = /\.(js|mjs|cjs|ts|mts|cts|tsx|jsx|py)$/;
/** Bundles and minified files are not what people ask about, and one of them could be the whole tree. */
const SKIP = /\.min\.|\.bundle\.|(^|\/)(dist|umd|esm)\/.*\.map$/;
const MAX_FILE = 200_000;

/** Code files under `from`, in path order: what the trees are cut from. */
async function codeFiles(roots: string[]): Promise<{ from: string; rel: string; size: number }[]> {
  const out: { from: string; rel: string; size: number }[] = [];
  for (const from of roots) out.push(...(await codeFilesUnder(from)).map((f) => ({ from, ...f })));
  return out;
}

async function codeFilesUnder(from: string): Promise<{ rel: string; size: number }[]> {
  const out: { rel: string; size: number }[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== '.bin' && e.name !== '.cache') await walk(abs);
      } else if (e.isFile() && CODE.test(e.name) && !SKIP.test(abs)) {
        const size = (await stat(abs)).size;
        if (size >= 200 && size <= MAX_FILE) out.push({ rel: path.relative(from, abs), size });
      }
    }
  };
  await walk(from);
  return out;
}

/** Copies files in order until `bytes` are reached; returns the file count and bytes copied. */
async function buildTree(files: { from: string; rel: string; size: number }[], to: string, bytes: number): Promise<{ files: number; bytes: number }> {
  let total = 0;
  let n = 0;
  for (const f of files) {
    if (total >= bytes) break;
    // Each source root gets its own folder, named after it.
    const dest = path.join(to, path.basename(f.from), f.rel);
    await mkdir(path.dirname(dest), { recursive: true });
    await copyFile(path.join(f.from, f.rel), dest);
    total += f.size;
    n++;
  }
  return { files: n, bytes: total };
}

/** A question about a function defined in the middle of the tree. */
async function questionFor(root: string, files: { from: string; rel: string }[]): Promise<string> {
  for (let i = files.length >> 1; i < files.length; i++) {
    const text = await readFile(path.join(root, path.basename(files[i].from), files[i].rel), 'utf8');
    const m = /(?:function|def)\s+([A-Za-z_$][\w$]{5,})\s*\(/.exec(text);
    if (m) return `Which file defines the function \`${m[1]}\`, and what does it return?`;
  }
  return 'Where is the main entry point defined?';
}

interface ChildResult {
  wallMs: number;
  maxRssMiB: number;
  stdout: string;
}

const PRELOAD = path.join(__dirname, '..', 'bench', 'maxrss-preload.cjs');

function runCli(cli: string, args: string[], signal?: AbortSignal): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(process.execPath, ['--require', PRELOAD, cli, ...args], { maxBuffer: 64 * 1024 * 1024, signal }, (err, stdout, stderr) => {
      const wallMs = performance.now() - t0;
      if (err) return reject(new Error(`arc-context ${args[0]} failed: ${err.message}\n${stderr.slice(-2000)}`));
      const m = /ARC_BENCH_MAXRSS_KB (\d+)/.exec(stderr);
      resolve({ wallMs, maxRssMiB: m ? round(Number(m[1]) / 1024) : NaN, stdout });
    });
  });
}

async function askRun(opts: ScalingOptions, root: string, cache: string, mode: string, question: string): Promise<ScalingRun> {
  const r = await runCli(opts.cli, ['ask', '--model', opts.modelDir, '--provider', 'cpu', '--threads', String(opts.threads), '--root', root, '--cache', cache, '--mode', mode, '--max-new-tokens', '1', '--json', question], opts.signal);
  const out = JSON.parse(r.stdout) as { stats: { ttftMs: number; encodeMs: number; prefillMs: number; cacheHits: number; cacheMisses: number; chunksIncluded: number } };
  const s = out.stats;
  return {
    ttftMs: round(s.ttftMs),
    wallMs: round(r.wallMs),
    maxRssMiB: r.maxRssMiB,
    encodeMs: round(s.encodeMs),
    prefillMs: round(s.prefillMs),
    encoded: s.cacheMisses,
    cacheHits: s.cacheHits,
    chunksIncluded: s.chunksIncluded,
  };
}

/**
 * `arc-context ask --interactive --json` in one new process: `question` asked `times` times on its
 * standard input, each after the previous answer came; ask()'s time to first token of each.
 */
function sessionRun(opts: ScalingOptions, root: string, cache: string, question: string, times: number): Promise<{ ttftMs: number[]; maxRssMiB: number }> {
  return new Promise((resolve, reject) => {
    const args = ['--require', PRELOAD, opts.cli, 'ask', '--interactive', '--model', opts.modelDir, '--provider', 'cpu', '--threads', String(opts.threads), '--root', root, '--cache', cache, '--mode', 'mixed', '--max-new-tokens', '1', '--json'];
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal });
    const ttftMs: number[] = [];
    let out = '';
    let err = '';
    const ask = () => child.stdin.write(`${question.replace(/\s+/g, ' ')}\n`);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const j = JSON.parse(line) as { stats?: { ttftMs: number }; error?: { message: string } };
        if (!j.stats) {
          child.kill();
          return reject(new Error(`arc-context ask --interactive: ${j.error?.message ?? line}`));
        }
        ttftMs.push(round(j.stats.ttftMs));
        if (ttftMs.length < times) ask();
        else child.stdin.end();
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 || ttftMs.length < times) return reject(new Error(`arc-context ask --interactive exited with ${code} after ${ttftMs.length} answers\n${err.slice(-2000)}`));
      const m = /ARC_BENCH_MAXRSS_KB (\d+)/.exec(err);
      resolve({ ttftMs, maxRssMiB: m ? round(Number(m[1]) / 1024) : NaN });
    });
    ask();
  });
}

/** The run with the median time to first token (of an odd count; the lower middle otherwise). */
export function medianRun(runs: readonly ScalingRun[]): ScalingRun {
  if (runs.length === 0) throw new Error('medianRun: no runs');
  const sorted = [...runs].sort((a, b) => a.ttftMs - b.ttftMs);
  return sorted[(sorted.length - 1) >> 1];
}

export async function runScaling(opts: ScalingOptions): Promise<ScalingSection> {
  const pool = await codeFiles(opts.from);
  const poolBytes = pool.reduce((n, f) => n + f.size, 0);
  const trees: ScalingTree[] = [];
  for (const mb of opts.sizesMB) {
    const want = mb * 1e6;
    if (want > poolBytes) {
      trees.push({ targetMB: mb, skipped: `only ${round(poolBytes / 1e6)} MB of code under ${opts.from.join(', ')} (--scaling-from adds folders)` });
      continue;
    }
    trees.push(
      await withTempDir('arc-bench-scale-', async (dir) => {
        const root = path.join(dir, 'tree');
        const cache = path.join(dir, 'cache');
        const built = await buildTree(pool, root, want);
        const question = await questionFor(root, pool.slice(0, built.files));
        // A tree written just now is "racily clean" (treeIndex.ts): files whose mtime is within the
        // timestamp granularity of the scan are read again until the next question. A repository
        // is not written the instant before it is asked about: let that margin pass first.
        await new Promise((r) => setTimeout(r, RACY_MS + 100));
        opts.log(`scaling: ${mb} MB tree: ${built.files} files, ${round(built.bytes / 1e6, 2)} MB; question: ${question}`);
        const cold = await askRun(opts, root, cache, 'mixed', question);
        opts.log(`scaling: ${mb} MB cold first answer ${cold.ttftMs} ms (process ${cold.wallMs} ms, ${cold.encoded} chunks encoded, peak RSS ${cold.maxRssMiB} MiB)`);
        const c = await runCli(opts.cli, ['compress', '--model', opts.modelDir, '--provider', 'cpu', '--threads', String(opts.threads), '--root', root, '--cache', cache, '--json'], opts.signal);
        const fig = JSON.parse(c.stdout) as { chunks?: number; encoded?: number; sourceTokens?: number };
        opts.log(`scaling: ${mb} MB whole-tree compress ${round(c.wallMs)} ms (peak RSS ${c.maxRssMiB} MiB)`);
        // One process can meet a burst of load on a shared machine: the median of a few, per mode.
        const mixedRuns: ScalingRun[] = [];
        const arcRuns: ScalingRun[] = [];
        for (let k = 0; k < WARM_RUNS; k++) {
          mixedRuns.push(await askRun(opts, root, cache, 'mixed', question));
          arcRuns.push(await askRun(opts, root, cache, 'arc', question));
        }
        const warmMixed = medianRun(mixedRuns);
        const warmArc = medianRun(arcRuns);
        opts.log(`scaling: ${mb} MB warm TTFT mixed ${mixedRuns.map((r) => r.ttftMs).join(', ')} ms, arc ${arcRuns.map((r) => r.ttftMs).join(', ')} ms (medians ${warmMixed.ttftMs} / ${warmArc.ttftMs} ms, peak RSS ${Math.max(...mixedRuns.map((r) => r.maxRssMiB), ...arcRuns.map((r) => r.maxRssMiB))} MiB)`);
        // The CLI's session: one process, questions on standard input, change notifications.
        const session = await sessionRun(opts, root, cache, question, LONG_LIVED_ASKS);
        opts.log(`scaling: ${mb} MB CLI session (ask --interactive) TTFT mixed ${session.ttftMs.join(', ')} ms (median after the first ${round(longLivedTtft(session.ttftMs))} ms, peak RSS ${session.maxRssMiB} MiB)`);
        let longLived: { ttftMs: number[] } | undefined;
        let longLivedWatched: { ttftMs: number[] } | undefined;
        if (opts.model) {
          const ttftMs: number[] = [];
          for (let k = 0; k < LONG_LIVED_ASKS; k++) {
            const r = await askOnce(opts.model, { question, roots: [root], mode: 'mixed', maxNewTokens: 1 }, cache, opts.signal);
            ttftMs.push(round(r.stats.ttftMs));
          }
          longLived = { ttftMs };
          opts.log(`scaling: ${mb} MB long-lived process TTFT mixed ${ttftMs.join(', ')} ms (median after the first ${round(longLivedTtft(ttftMs))} ms)`);
          // As the extension holds one: the first ask once watching began scans, the rest reuse it.
          const watch = new TreeWatch({ log: opts.log });
          try {
            if (await watch.whenWatching([root])) {
              const watchedMs: number[] = [];
              for (let k = 0; k < LONG_LIVED_ASKS; k++) {
                const r = await askOnce(opts.model, { question, roots: [root], mode: 'mixed', maxNewTokens: 1 }, cache, opts.signal, watch);
                watchedMs.push(round(r.stats.ttftMs));
              }
              longLivedWatched = { ttftMs: watchedMs };
              opts.log(`scaling: ${mb} MB long-lived process with change notifications, TTFT mixed ${watchedMs.join(', ')} ms (median after the first ${round(longLivedTtft(watchedMs))} ms)`);
            }
          } finally {
            await watch.dispose();
          }
        }
        return {
          targetMB: mb,
          files: built.files,
          bytes: built.bytes,
          question,
          chunks: fig.chunks ?? null,
          sourceTokens: fig.sourceTokens ?? null,
          cold,
          compress: { wallMs: round(c.wallMs), maxRssMiB: c.maxRssMiB, encoded: fig.encoded ?? null },
          warmMixed,
          warmArc,
          ...(longLived ? { longLived } : {}),
          ...(longLivedWatched ? { longLivedWatched } : {}),
          session,
        };
      }),
    );
  }
  return {
    from: opts.from.join(', '),
    threads: opts.threads,
    trees,
    notes: [
      `Trees: .js/.ts/.py files of 200 B to 200 KB (no minified bundles) from ${opts.from.join(', ')}, in path order, copied until the size is reached.`,
      'Each run is a new `arc-context` process (`ask --json --max-new-tokens 1`, `compress --json`); TTFT is ask()\'s own figure (from the start of the pipeline, model load excluded), wall time is the whole process, peak RSS is the high-water mark of that process alone (VmHWM on Linux).',
      `cold: empty cache and indexes; every file is tokenized and indexed, only the chosen chunks are encoded. compress: the whole tree afterwards (a cold question on a large tree stores its files' lexicons, not their token ids: compression tokenizes again, in a worker thread beside the encoder). warm: a new process on the warm cache, ${WARM_RUNS} per mode (mixed and arc alternating), the median kept.`,
      ...(opts.model
        ? [`long-lived: the same question asked ${LONG_LIVED_ASKS} times in the bench's own process (mixed mode, ${opts.threads} thread(s)), as the extension asks in its long-lived host; the figure is the median of the asks after the first (which loads the tree index into the process). Every ask scans the tree (a stat per file) and checks it against the index.`,
            `long-lived, watched: the same again with change notifications (src/core/context/treeWatch.ts, @parcel/watcher), as the extension holds them: the first ask once the watch is established scans and is remembered; the following asks find that nothing under the tree changed and reuse that scan (a question after any change, or more than 5 minutes after the last scan, scans again: the long-lived figure). The figure is the median of the asks after the first.`]
        : []),
      `CLI session: \`arc-context ask --interactive --json\` in one new process, the same question ${LONG_LIVED_ASKS} times on its standard input (mixed mode); the CLI holds change notifications as the extension does (the first two questions scan, the first while the watch is being set up; the rest reuse the second's scan while nothing changes). The figure is the median of the asks after the first; its peak RSS counts in the ask column.`,
      `Each tree is left ${RACY_MS + 100} ms after copying before its first question: files written within ${RACY_MS} ms of a scan are "racily clean" and read again by the next question (treeIndex.ts).`,
    ],
  };
}
