// Shared pieces of the CLI subcommands: the command shape, usage errors and option parsing.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AnswerMode, LoadOptions, ProviderName } from '../core/api';
import { isProviderName, PROVIDER_NAMES } from '../core/providers';

/** Streams a command writes to; tests pass their own. */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Fires on Ctrl-C. */
  signal?: AbortSignal;
  /**
   * Sets (null: clears) what Ctrl-C does first: when `handler` returns true it has dealt with the
   * interrupt (e.g. `ask --interactive` cancels the answer under way) and `signal` does not fire.
   */
  onInterrupt?: (handler: (() => boolean) | null) => void;
  /** Where `ask --interactive` reads questions (default: process.stdin). */
  stdin?: NodeJS.ReadableStream;
}

export interface Command {
  /** Usage text shown by --help and after a usage error. */
  usage: string;
  /** Returns the exit code; throws UsageError for bad arguments. */
  run(argv: string[], io: CommandIo): Promise<number>;
}

/** Bad command-line arguments: exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with its errors turned into UsageError. */
export function parse<T extends Options>(argv: string[], options: T, allowPositionals: boolean) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

export function requireString(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

export function parseIntOption(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${flag} must be an integer >= ${min} (got "${value}")`);
  return Number(value);
}

export function parseNumberOption(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`${flag} must be a number in [${min}, ${max}] (got "${value}")`);
  return n;
}

export function parseProvider(value: string | undefined): ProviderName | 'auto' {
  if (value === undefined || value === 'auto') return 'auto';
  if (!isProviderName(value)) throw new UsageError(`--provider must be auto or one of ${PROVIDER_NAMES.join(', ')} (got "${value}")`);
  return value;
}

/** Options every model-loading command takes. */
export const MODEL_OPTIONS = {
  model: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const MODEL_USAGE = `  --model DIR        arc-model/1 package folder (required)
  --provider P       auto (default), cuda, webgpu, dml, coreml or cpu; unavailable ones fall back down the ladder
  --threads N        CPU threads for ONNX Runtime
  -v, --verbose      log provider choice and timings to stderr`;

export function loadOptions(values: { provider?: string; threads?: string; verbose?: boolean }, io: CommandIo): LoadOptions {
  const opts: LoadOptions = { provider: parseProvider(values.provider) };
  const threads = parseIntOption(values.threads, '--threads', 1);
  if (threads !== undefined) opts.threads = threads;
  if (values.verbose) opts.log = (line) => io.stderr.write(`arc-context: ${line}\n`);
  return opts;
}

export const TEXT_BUDGET_USAGE = `  --text-budget N    mixed mode: tokens of the best-ranked code read as text, 0 or more (default: the
                     model's prompt.mixedTextBudget, else 160; the best chunk is text whenever it fits)
  --decoding D       extractive (the answer is a span of the code the decoder read) or free (default:
                     the model's prompt.extractive; the in-process decoder only)`;

/** `--text-budget N` (mixed mode only): a whole number of tokens, 0 or more. */
export function parseTextBudget(value: string | undefined, mode: AnswerMode): number | undefined {
  const n = parseIntOption(value, '--text-budget', 0);
  if (n !== undefined && mode !== 'mixed') throw new UsageError(`--text-budget applies to mixed mode only (--mode is ${mode})`);
  return n;
}

/**
 * `--decoding extractive|free`: extractive keeps the answer a span of the text the decoder read
 * (GenerateOptions.answerFrom); undefined: the model's prompt.extractive decides.
 */
export function parseDecoding(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'extractive') return true;
  if (value === 'free') return false;
  throw new UsageError(`--decoding must be extractive or free (got "${value}")`);
}
