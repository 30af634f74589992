// Small pieces the bench sections share: statistics, the machine description, git facts,
// temporary folders, memory sampling and reading a source tree.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { collectSources, type SourceFile } from '../src/core/context/sources';
import type { Machine, Sampled } from './types';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function sampled(samples: readonly number[]): Sampled {
  return { median: round(median(samples)), samples: samples.map(round) };
}

/** Rounds to 0.1 ms (or 3 significant decimals for small values): the noise here is far larger. */
export function round(x: number, digits = 1): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function mib(bytes: number): number {
  return round(bytes / 1024 / 1024);
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // Not Linux: os.cpus() below.
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) return `${m[1]} (${os.type()} ${os.release()}, ${os.arch()})`;
  } catch {
    // Not Linux.
  }
  return `${os.type()} ${os.release()} (${os.arch()})`;
}

function ortVersion(): string {
  try {
    const pj = require.resolve('onnxruntime-node/package.json');
    return (JSON.parse(readFileSync(pj, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machine(provider: string, threads: number): Machine {
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    ramGiB: round(os.totalmem() / 1024 ** 3),
    os: osName(),
    node: process.version,
    onnxruntime: ortVersion(),
    provider,
    threads,
    loadAverage: os.loadavg().map((x) => round(x, 2)),
  };
}

function git(cwd: string, args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** HEAD of the repository that holds `dir`, and whether its work tree has changes. */
export function gitState(dir: string): { commit: string | null; dirty: boolean | null } {
  const commit = git(dir, ['rev-parse', 'HEAD']);
  const status = commit === null ? null : git(dir, ['status', '--porcelain', '--untracked-files=no']);
  return { commit, dirty: status === null ? null : status !== '' };
}

/** The last commit that touched `dir` (a model package), if it is tracked, and whether its tracked files changed since. */
export function lastCommitOf(dir: string): { commit: string | null; subject: string | null; dirty: boolean } {
  const line = git(dir, ['log', '-1', '--format=%H %s', '--', '.']);
  if (!line) return { commit: null, subject: null, dirty: false };
  const i = line.indexOf(' ');
  const status = git(dir, ['status', '--porcelain', '--untracked-files=no', '--', '.']);
  return { commit: line.slice(0, i), subject: line.slice(i + 1), dirty: status !== null && status !== '' };
}

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Samples the process's memory every `intervalMs` while `fn` runs (ONNX Runtime works off the
 * main thread, so the timer keeps ticking during encoder calls) and returns the peaks.
 */
export async function withMemoryPeak<T>(fn: () => Promise<T>, intervalMs = 20): Promise<{ value: T; peakRss: number; peakHeap: number }> {
  let peakRss = process.memoryUsage.rss();
  let peakHeap = process.memoryUsage().heapUsed;
  const sample = (): void => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  };
  const timer = setInterval(sample, intervalMs);
  try {
    const value = await fn();
    sample();
    return { value, peakRss, peakHeap };
  } finally {
    clearInterval(timer);
  }
}

/** The readable source files under `root` (the pipeline's own scan: .gitignore, size, binary checks), path order. */
export async function readTree(root: string, signal?: AbortSignal): Promise<SourceFile[]> {
  const { files } = await collectSources({ roots: [root], signal });
  return files;
}

/** mulberry32-based Fisher-Yates shuffle, so every run builds the same rows. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function bytesOf(files: readonly { text: string }[]): number {
  return files.reduce((n, f) => n + Buffer.byteLength(f.text, 'utf8'), 0);
}

/** Median time to first token of the long-lived asks after the first (which loads the tree index). */
export function longLivedTtft(ttftMs: readonly number[]): number {
  return ttftMs.length > 1 ? median(ttftMs.slice(1)) : NaN;
}
