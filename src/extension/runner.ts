// Runs ask() for the views: one run at a time (the model's ONNX sessions are shared), each with
// its own AbortController, every event forwarded to the view that asked. No `vscode` import: the
// adapter hands in the model getter and the pipeline, so this is unit tested with a fake ask().
import type { ArcModel, AskFn, AskOptions } from '../core/api';
import type { TreeWatch } from '../core/context/treeWatch';
import type { ArcErrorCode, AskEvent, AskRequest, AskStats } from '../core/types';
import { selectionPicture, type CompressionSnapshot, type HostMessage, type RunInfo, type SelectionPicture } from '../protocol';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type RunSink = (message: HostMessage) => void;

export type RunOutcome =
  | { outcome: 'done'; answer: string; stats: AskStats }
  | { outcome: 'error'; code: ArcErrorCode; message: string }
  | { outcome: 'cancelled' };

const ERROR_CODES: readonly ArcErrorCode[] = [
  'model-missing',
  'model-corrupt',
  'provider-unavailable',
  'no-sources',
  'empty-question',
  'cancelled',
  'context-too-large',
  'decoder-server',
  'internal',
];

/** The code of an ArcError (or of anything shaped like one), else 'internal'. */
export function errorCodeOf(e: unknown): ArcErrorCode {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code)) return code as ArcErrorCode;
  if ((e as { name?: unknown } | null)?.name === 'AbortError') return 'cancelled';
  return 'internal';
}

export function errorText(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/\s*\n\s*/g, ' ').trim() || 'Unknown error.';
}

/** The core's AskFn as the runner calls it: always with options (signal, cache, log). */
export type RunnerAskFn = (model: ArcModel, request: AskRequest, options: AskOptions) => ReturnType<AskFn>;

export interface RunnerDeps {
  ask: RunnerAskFn;
  cacheMaxBytes?: () => number;
  /** Loads (or returns the loaded) model; may throw ArcError('model-missing' | 'model-corrupt'). */
  getModel: (signal: AbortSignal) => Promise<ArcModel>;
  cacheDir: () => string | null;
  /** Change notifications of the folders asked about (treeWatch.ts); undefined: every question scans. */
  watch?: () => TreeWatch | undefined;
  log: Logger;
}

interface ActiveRun {
  info: RunInfo;
  controller: AbortController;
}

let nextId = 0;
/** Run ids only need to be unique within this extension host's lifetime. */
export function newRunId(): string {
  nextId += 1;
  return `r${Date.now().toString(36)}${nextId.toString(36)}`;
}

export class AskRunner {
  private readonly runs = new Map<string, ActiveRun>();
  /** Runs execute one after another; each waits on this chain. */
  private tail: Promise<unknown> = Promise.resolve();
  private snapshot: CompressionSnapshot | undefined;
  private readonly snapshotListeners = new Set<(s: CompressionSnapshot) => void>();

  constructor(private readonly deps: RunnerDeps) {}

  /** The compression picture of the most recent run that reached selection. */
  get lastCompression(): CompressionSnapshot | undefined {
    return this.snapshot;
  }

  onCompression(listener: (s: CompressionSnapshot) => void): { dispose(): void } {
    this.snapshotListeners.add(listener);
    return { dispose: () => this.snapshotListeners.delete(listener) };
  }

  /** Record a snapshot produced outside a question (e.g. "Compress Workspace"). */
  setCompression(s: CompressionSnapshot): void {
    this.snapshot = s;
    for (const l of this.snapshotListeners) l(s);
  }

  get activeRunIds(): string[] {
    return [...this.runs.keys()];
  }

  /**
   * Queue a run. `signal` (e.g. a progress notification's Cancel) aborts it like Stop does.
   * Resolves when the run has finished, with how it ended; never rejects.
   */
  start(info: RunInfo, request: AskRequest, sink: RunSink, signal?: AbortSignal): Promise<RunOutcome> {
    const controller = new AbortController();
    if (signal) {
      if (signal.aborted) controller.abort();
      else signal.addEventListener('abort', () => controller.abort(), { once: true });
    }
    this.runs.set(info.runId, { info, controller });
    sink({ type: 'runStarted', run: info });
    // execute() never rejects, so the chain cannot break.
    const result = this.tail.then(() => this.execute(info, request, sink, controller));
    this.tail = result;
    return result;
  }

  /** Run other model work (workspace compression, a reload) in the same one-at-a-time queue. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Stop one run, or every run when no id is given. Returns whether anything was stopped. */
  stop(runId?: string): boolean {
    let stopped = false;
    for (const [id, run] of this.runs) {
      if (runId === undefined || id === runId || run.info.compareGroup === runId) {
        run.controller.abort();
        stopped = true;
      }
    }
    return stopped;
  }

  dispose(): void {
    this.stop();
  }

  private async execute(
    info: RunInfo,
    request: AskRequest,
    sink: RunSink,
    controller: AbortController,
  ): Promise<RunOutcome> {
    const { signal } = controller;
    const started = Date.now();
    const emit = (event: AskEvent) => sink({ type: 'runEvent', runId: info.runId, event });
    let outcome: RunOutcome = { outcome: 'error', code: 'internal', message: 'The answer stream ended without a result.' };
    let cancelEventSent = false;
    let selection: SelectionPicture | undefined;
    try {
      if (signal.aborted) throw Object.assign(new Error('Cancelled before it started.'), { code: 'cancelled' });
      const model = await this.deps.getModel(signal);
      for await (const event of this.deps.ask(model, request, {
        signal,
        cacheDir: this.deps.cacheDir(),
        cacheMaxBytes: this.deps.cacheMaxBytes?.(),
        watch: this.deps.watch?.(),
        log: (line) => this.deps.log.info(line),
      })) {
        emit(event);
        if (event.type === 'selection') {
          selection = selectionPicture(event);
          this.setCompression({ title: info.question, ...selection });
        } else if (event.type === 'done') {
          outcome = { outcome: 'done', answer: event.answer, stats: event.stats };
          if (selection) this.setCompression({ title: info.question, ...selection, stats: event.stats });
        } else if (event.type === 'error') {
          if (event.code === 'cancelled') cancelEventSent = true;
          outcome =
            event.code === 'cancelled'
              ? { outcome: 'cancelled' }
              : { outcome: 'error', code: event.code, message: event.message };
        }
        if (signal.aborted && outcome.outcome !== 'done') outcome = { outcome: 'cancelled' };
      }
      if (signal.aborted && outcome.outcome !== 'done') outcome = { outcome: 'cancelled' };
    } catch (e) {
      const code = signal.aborted ? 'cancelled' : errorCodeOf(e);
      if (code === 'cancelled') {
        outcome = { outcome: 'cancelled' };
      } else {
        outcome = { outcome: 'error', code, message: errorText(e) };
        // The view only learns about failures through events; a thrown error gets one too.
        emit({ type: 'error', code, message: outcome.message });
      }
      if (code === 'internal') this.deps.log.error(`ask failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    } finally {
      this.runs.delete(info.runId);
    }
    if (outcome.outcome === 'cancelled' && !cancelEventSent) {
      emit({ type: 'error', code: 'cancelled', message: 'Stopped. The answer so far is kept.' });
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const tail = outcome.outcome === 'error' ? `error ${outcome.code}: ${outcome.message}` : outcome.outcome;
    this.deps.log.info(`run ${info.runId} (${request.mode}, ${info.sourceLabel}) ${tail} in ${secs}s`);
    sink({ type: 'runEnded', runId: info.runId, outcome: outcome.outcome });
    return outcome;
  }
}
