// Typed errors a user can meet. Every message names what is broken and says what to do,
// because the CLI prints it as one line and the extension shows it as-is.
import type { ArcErrorCode } from './types';

export class ArcError extends Error {
  readonly code: ArcErrorCode;

  constructor(code: ArcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ArcError';
    this.code = code;
  }
}

export function isArcError(e: unknown): e is ArcError {
  return e instanceof ArcError;
}

/** The message of any thrown value, on one line (ONNX Runtime errors span several). */
export function errorMessage(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** Throws ArcError('cancelled') when the signal has fired; call between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new ArcError('cancelled', `${what} was cancelled.`);
}
