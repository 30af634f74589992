// Encoder throughput: our ONNX path (OnnxEncoder.encode, the call the pipeline makes) against the
// PyTorch reference (bench/torch_encoder.py) on the same chunks, batches and thread count, and
// both against this machine's measured matrix-multiply peak.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { ArcModel } from '../src/core/api';
import { chunkFiles } from '../src/core/context/chunker';
import type { SourceFile } from '../src/core/context/sources';
import { DEFAULT_BATCH_POLICY, planBatches } from '../src/core/encoder';
import { errorMessage } from '../src/core/errors';
import { chunkOptions } from './latency';
import type { EncoderRun, EncoderSection, Skipped, TorchEncoder } from './types';
import { median, round, withTempDir } from './util';

export const PYTHON = '/usr/bin/python3';

export interface EncoderOptions {
  chunks: number;
  reps: number;
  threads: number;
  /** Size of the square matrices of the sgemm peak measurement. */
  sgemmN: number;
  /** Folder of bench/torch_encoder.py. */
  benchDir: string;
  /** Seconds the Python helper may take before it is stopped. */
  timeoutS: number;
  signal?: AbortSignal;
  log: (line: string) => void;
}

async function timeRuns(fn: () => Promise<unknown>, reps: number): Promise<number[]> {
  await fn(); // warm-up
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await fn();
    out.push((performance.now() - t) / 1000);
  }
  return out;
}

function encoderRun(calls: number, samples: number[], tokens: number, flops: number | null): EncoderRun {
  const s = median(samples);
  return {
    calls,
    secondsMedian: round(s, 4),
    samples: samples.map((x) => round(x, 4)),
    tokensPerSecond: Math.round(tokens / s),
    gflops: flops === null ? null : round(flops / s / 1e9, 2),
  };
}

interface TorchResponse {
  ok: boolean;
  skipped?: string;
  flops?: number;
  flopsPerToken?: number;
  torch?: string;
  threads?: number;
  blas?: string;
  weights?: string;
  config?: Record<string, number>;
  batched?: { calls: number; secondsMedian: number; samples: number[]; tokensPerSecond: number; gflops: number };
  single?: { calls: number; secondsMedian: number; samples: number[]; tokensPerSecond: number; gflops: number };
  parity?: TorchEncoder['parity'];
  sgemm?: TorchEncoder['sgemm'];
}

/** Why the PyTorch comparison cannot run here, or null when it can be tried. */
export function torchPrecheck(benchDir: string): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  if (!existsSync(path.join(benchDir, 'torch_encoder.py'))) return `${path.join(benchDir, 'torch_encoder.py')} not found`;
  return null;
}

function runPython(script: string, args: string[], threads: number, timeoutS: number, signal?: AbortSignal): Promise<void> {
  // OpenBLAS and OpenMP read their thread counts at start-up, before torch.set_num_threads.
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [script, ...args], { env, timeout: timeoutS * 1000, signal, maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${errorMessage(err)}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`));
      else resolve();
    });
  });
}

/** Runs bench/torch_encoder.py on the same chunks and batches; its FLOP count serves both runtimes. */
async function runTorch(
  model: ArcModel,
  chunks: number[][],
  batches: number[][],
  tokens: number,
  opts: EncoderOptions,
): Promise<{ torch: TorchEncoder | Skipped; flops: number | null }> {
  opts.log('encoder: running the PyTorch reference (bench/torch_encoder.py)');
  // ONNX output of the first chunk: the script compares it with its own when it has the real weights.
  const [ref] = await model.encoder.encode([chunks[0]!], opts.signal);
  return withTempDir('arc-bench-torch-', async (dir) => {
    const req = path.join(dir, 'request.json');
    const res = path.join(dir, 'response.json');
    await writeFile(
      req,
      JSON.stringify({
        model_dir: model.dir,
        threads: opts.threads,
        reps: opts.reps,
        chunks,
        batches,
        sgemm_n: opts.sgemmN,
        sgemm_reps: Math.max(3, opts.reps),
        reference: { chunk: 0, embeddings: Array.from(ref!.vectors) },
      }),
    );
    try {
      await runPython(path.join(opts.benchDir, 'torch_encoder.py'), [req, res], opts.threads, opts.timeoutS, opts.signal);
    } catch (e) {
      return { torch: { skipped: `bench/torch_encoder.py failed: ${errorMessage(e)}` }, flops: null };
    }
    const r = JSON.parse(await readFile(res, 'utf8')) as TorchResponse;
    if (!r.ok || !r.batched || !r.single || !r.sgemm) return { torch: { skipped: r.skipped ?? 'bench/torch_encoder.py gave no figures' }, flops: null };
    const flops = r.flops ?? null;
    const fix = (x: NonNullable<TorchResponse['batched']>): EncoderRun => encoderRun(x.calls, x.samples, tokens, flops);
    const torch: TorchEncoder = {
      torch: r.torch ?? 'unknown',
      threads: r.threads ?? opts.threads,
      blas: r.blas ?? 'unknown',
      weights: r.weights ?? 'unknown',
      config: r.config ?? {},
      batched: fix(r.batched),
      single: fix(r.single),
      parity: r.parity ?? null,
      sgemm: { ...r.sgemm, gflops_best: round(r.sgemm.gflops_best, 2), gflops_median: round(r.sgemm.gflops_median, 2) },
    };
    return { torch, flops };
  });
}

export async function runEncoder(model: ArcModel, sourceRoot: string, tree: readonly SourceFile[], opts: EncoderOptions): Promise<EncoderSection> {
  const all = chunkFiles([...tree], model.tokenizer, chunkOptions(model));
  const chunks = all.slice(0, opts.chunks).map((c) => c.tokenIds);
  const tokens = chunks.reduce((n, c) => n + c.length, 0);
  const enc = model.encoder;
  opts.log(`encoder: ${chunks.length} chunks, ${tokens} tokens, ${opts.threads} thread(s)`);
  const batched = (): Promise<unknown> => enc.encode(chunks, opts.signal);
  const single = async (): Promise<void> => {
    for (const c of chunks) await enc.encode([c], opts.signal);
  };
  // The batches OnnxEncoder.encode forms; PyTorch runs the same ones, padded the same way.
  const batches = planBatches(
    chunks.map((c) => c.length),
    DEFAULT_BATCH_POLICY,
  );
  // ONNX is measured before and after the PyTorch run, so a change in the machine's load
  // (other processes share these cores) affects both runtimes alike.
  const batchedSamples = await timeRuns(batched, opts.reps);
  const singleSamples = await timeRuns(single, opts.reps);
  const why = torchPrecheck(opts.benchDir);
  const { torch, flops } = why ? { torch: { skipped: why }, flops: null } : await runTorch(model, chunks, batches, tokens, opts);
  if (!why) {
    batchedSamples.push(...(await timeRuns(batched, opts.reps)));
    singleSamples.push(...(await timeRuns(single, opts.reps)));
  }
  const onnx = { batched: encoderRun(batches.length, batchedSamples, tokens, flops), single: encoderRun(chunks.length, singleSamples, tokens, flops) };
  const peak = 'sgemm' in torch ? torch.sgemm.gflops_best : null;
  const torchBatched = 'batched' in torch ? torch.batched.gflops : null;
  return {
    source: sourceRoot,
    chunks: chunks.length,
    tokens,
    meanChunkTokens: round(tokens / Math.max(1, chunks.length)),
    threads: opts.threads,
    flopsPerToken: flops === null ? null : Math.round(flops / Math.max(1, tokens)),
    onnx,
    torch,
    ofPeak:
      peak !== null && onnx.batched.gflops !== null && torchBatched !== null
        ? { onnxBatched: round(onnx.batched.gflops / peak, 3), torchBatched: round(torchBatched / peak, 3) }
        : null,
  };
}
