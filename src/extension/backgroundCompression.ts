// Compresses the rest of the workspace in the background after a question (which encoded only
// the chunks its window needed). Questions go first: one pauses the background run (its signal
// fires between encoder batches) and the run starts again when the question is done. Finished
// batches are in the vector cache, so a paused, cancelled or crashed run loses nothing and the
// next one only reads them back. No `vscode` import: the job and the state reports come in as
// plain functions, so this runs in unit tests on the real pipeline.

export type BackgroundState =
  | { kind: 'idle' }
  | { kind: 'running'; message: string; done?: number; total?: number }
  | { kind: 'paused' }
  | { kind: 'done' }
  | { kind: 'cancelled' }
  | { kind: 'failed'; message: string };

/** One pass over the workspace; rejects when `signal` fires. */
export type CompressJob = (signal: AbortSignal, onProgress: (message: string, done?: number, total?: number) => void) => Promise<void>;

export class BackgroundCompressor {
  private wanted = false;
  private pauses = 0;
  private run: { abort: AbortController; done: Promise<void> } | null = null;
  /** Passes started (a pause and a resume start a new one). */
  passes = 0;

  constructor(
    private readonly job: CompressJob,
    private readonly onState: (s: BackgroundState) => void = () => {},
  ) {}

  get running(): boolean {
    return this.run !== null;
  }

  /** Wants the workspace compressed; starts now unless a question holds it paused. */
  start(): void {
    this.wanted = true;
    this.kick();
  }

  /** A question starts: stop the current pass (resume() starts a new one). Nestable. */
  async pause(): Promise<void> {
    this.pauses++;
    const r = this.run;
    if (!r) return;
    r.abort.abort();
    await r.done;
  }

  /** The question is done: carry on if still wanted. */
  resume(): void {
    this.pauses = Math.max(0, this.pauses - 1);
    this.kick();
  }

  /** The user stops it; a later start() carries on from what is cached. */
  async cancel(): Promise<void> {
    this.wanted = false;
    const r = this.run;
    if (!r) return;
    r.abort.abort();
    await r.done;
  }

  /** Resolves when no pass is running. */
  async idle(): Promise<void> {
    while (this.run) await this.run.done;
  }

  private kick(): void {
    if (!this.wanted || this.pauses > 0 || this.run) return;
    const abort = new AbortController();
    this.passes++;
    const done = (async () => {
      try {
        this.onState({ kind: 'running', message: 'Compressing the workspace' });
        await this.job(abort.signal, (message, d, total) => this.onState({ kind: 'running', message, done: d, total }));
        this.wanted = false;
        this.onState({ kind: 'done' });
      } catch (e) {
        if (!abort.signal.aborted) {
          this.wanted = false;
          this.onState({ kind: 'failed', message: e instanceof Error ? e.message : String(e) });
        } else this.onState(this.wanted ? { kind: 'paused' } : { kind: 'cancelled' });
      } finally {
        this.run = null;
      }
    })();
    this.run = { abort, done };
    void done.then(() => this.kick());
  }
}
