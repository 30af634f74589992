// One question through the real pipeline (src/core/ask.ts), with the figures the bench keeps.
import type { ArcModel } from '../src/core/api';
import { ask } from '../src/core/ask';
import type { TreeWatch } from '../src/core/context/treeWatch';
import { ArcError } from '../src/core/errors';
import type { AskRequest, AskStats, Citation } from '../src/core/types';

export interface AskOutcome {
  answer: string;
  stats: AskStats;
  included: Citation[];
  leftOut: Citation[];
}

/** Runs ask() to the end; a pipeline error becomes an ArcError (the bench stops on it). */
export async function askOnce(model: ArcModel, request: AskRequest, cacheDir: string | null, signal?: AbortSignal, watch?: TreeWatch): Promise<AskOutcome> {
  let included: Citation[] = [];
  let leftOut: Citation[] = [];
  for await (const e of ask(model, request, { cacheDir, signal, ...(watch ? { watch } : {}) })) {
    if (e.type === 'selection') {
      included = e.included;
      leftOut = e.leftOut;
    } else if (e.type === 'done') return { answer: e.answer, stats: e.stats, included, leftOut };
    else if (e.type === 'error') throw new ArcError(e.code, e.message);
  }
  throw new ArcError('internal', 'ask() ended without a done event.');
}
