// Loads onnxruntime-node lazily (after telemetry is switched off) and creates the sessions of a
// model on the best execution provider that actually initialises here.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as OrtModule from 'onnxruntime-node';
import type { LoadOptions, ProviderName } from './api';
import { ArcError, errorMessage } from './errors';

export type Ort = typeof OrtModule;
export type Session = OrtModule.InferenceSession;

// A local-first tool must not phone home: ONNX Runtime reads this once, when it initialises.
process.env.ORT_DISABLE_TELEMETRY = '1';

let ortModule: Ort | null = null;

/** The onnxruntime-node module, loaded on first use so the env var above is already set. */
export function loadOrt(): Ort {
  if (ortModule) return ortModule;
  process.env.ORT_DISABLE_TELEMETRY = '1';
  try {
    // require (not a static import) keeps the native binding out of module initialisation.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ortModule = require('onnxruntime-node') as Ort;
  } catch (e) {
    throw new ArcError('provider-unavailable', `Could not load onnxruntime-node (${errorMessage(e)}). Reinstall the extension or run npm install.`, { cause: e });
  }
  // Provider probes that fail are reported through LoadOptions.log; ORT's own error lines
  // would only repeat them on stderr.
  ortModule.env.logLevel = 'fatal';
  return ortModule;
}

export const PROVIDER_NAMES: readonly ProviderName[] = ['cuda', 'webgpu', 'dml', 'coreml', 'cpu'];

export function isProviderName(s: string): s is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(s);
}

/**
 * Providers to try, best first: the preference (if any), then cuda -> webgpu ->
 * dml (Windows) / coreml (macOS) -> cpu. cpu always ends the list.
 */
export function providerLadder(preference: ProviderName | 'auto' = 'auto', platform: NodeJS.Platform = process.platform): ProviderName[] {
  const ladder: ProviderName[] = ['cuda', 'webgpu'];
  if (platform === 'win32') ladder.push('dml');
  if (platform === 'darwin') ladder.push('coreml');
  ladder.push('cpu');
  if (preference === 'auto') return ladder;
  return [preference, ...ladder.filter((p) => p !== preference)];
}

/** Folder of the onnxruntime native binding, where the CUDA provider libraries must sit. */
export function bindingDir(): string | null {
  try {
    const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
    return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
}

/**
 * Why a provider cannot work here without asking ONNX Runtime, or null when it may.
 * CUDA needs provider libraries that npm install downloads separately (and that an offline
 * install skips); trying without them only produces a loader error.
 */
export function providerPrecheck(p: ProviderName, platform: NodeJS.Platform = process.platform): string | null {
  if (p === 'dml' && platform !== 'win32') return 'DirectML exists only on Windows';
  if (p === 'coreml' && platform !== 'darwin') return 'CoreML exists only on macOS';
  if (p === 'cuda') {
    if (platform !== 'linux' && platform !== 'win32') return 'CUDA is not built for this platform';
    const dir = bindingDir();
    const ext = platform === 'win32' ? '.dll' : '.so';
    const prefix = platform === 'win32' ? '' : 'lib';
    const libs = ['onnxruntime_providers_shared', 'onnxruntime_providers_cuda'].map((n) => `${prefix}${n}${ext}`);
    const missing = dir ? libs.filter((l) => !existsSync(join(dir, l))) : libs;
    if (missing.length) {
      return `CUDA provider libraries not installed (${missing.join(', ')} missing next to the onnxruntime binding; reinstall onnxruntime-node with network access)`;
    }
  }
  if (p === 'webgpu' && platform === 'linux' && !linuxLibraryPresent('libvulkan.so.1')) {
    // Dawn needs the Vulkan loader on Linux; without it, it prints a warning and fails.
    return 'WebGPU needs Vulkan and libvulkan.so.1 was not found (install the GPU driver\'s Vulkan support, e.g. libvulkan1)';
  }
  return null;
}

/** Whether the dynamic loader can find a library: LD_LIBRARY_PATH, the ld.so cache, usual dirs. */
export function linuxLibraryPresent(name: string): boolean {
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  dirs.push('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib');
  if (dirs.some((d) => existsSync(join(d, name)))) return true;
  try {
    // The cache lists every library ldconfig knows by name, as plain strings.
    return readFileSync('/etc/ld.so.cache').includes(name);
  } catch {
    return false;
  }
}

export function sessionOptions(p: ProviderName, threads: number | undefined): OrtModule.InferenceSession.SessionOptions {
  const opts: OrtModule.InferenceSession.SessionOptions = {
    executionProviders: [p],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  if (threads !== undefined) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new ArcError('internal', `threads must be a positive integer (got ${threads}).`);
    }
    opts.intraOpNumThreads = threads;
    // One model runs one graph at a time; extra inter-op threads would only compete.
    opts.interOpNumThreads = 1;
  }
  return opts;
}

/** One ONNX file to open, under a key the caller looks its session up by. */
export interface SessionSpec {
  key: string;
  path: string;
}

export interface OpenedSessions {
  provider: ProviderName;
  sessions: Map<string, Session>;
}

/**
 * Opens every file on one provider, walking the ladder: a provider that throws while creating
 * a session or running `probe` is logged and skipped. If cpu fails too, the file is at fault,
 * and the error names it.
 */
export async function openSessions(
  specs: readonly SessionSpec[],
  opts: LoadOptions,
  probe?: (sessions: Map<string, Session>, ort: Ort) => Promise<void>,
): Promise<OpenedSessions> {
  const ort = loadOrt();
  const log = opts.log ?? (() => {});
  const ladder = providerLadder(opts.provider ?? 'auto');
  for (const provider of ladder) {
    const why = providerPrecheck(provider);
    if (why) {
      log(`provider ${provider}: skipped: ${why}`);
      continue;
    }
    const sessions = new Map<string, Session>();
    let failedFile = '';
    try {
      const so = sessionOptions(provider, opts.threads);
      for (const s of specs) {
        failedFile = s.path;
        sessions.set(s.key, await ort.InferenceSession.create(s.path, so));
      }
      failedFile = '';
      if (probe) await probe(sessions, ort);
    } catch (e) {
      await Promise.all([...sessions.values()].map((s) => s.release().catch(() => undefined)));
      if (e instanceof ArcError) throw e;
      if (provider === 'cpu') {
        const what = failedFile ? `${failedFile} could not be loaded` : 'The model failed its first test run';
        throw new ArcError('model-corrupt', `${what} (${errorMessage(e)}). The file is damaged or not an ONNX model; copy or re-export the model package.`, { cause: e });
      }
      log(`provider ${provider}: skipped: ${errorMessage(e)}`);
      continue;
    }
    log(`provider ${provider}: using it`);
    return { provider, sessions };
  }
  // Unreachable while cpu ends the ladder; kept so the type checker sees every path return.
  throw new ArcError('provider-unavailable', 'No ONNX Runtime execution provider could be initialised.');
}
