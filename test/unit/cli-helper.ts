// The CLI run in-process with captured output, shared by the CLI test files.
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli';

export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(argv, { stdout, stderr });
  return { code, out, err };
}

/** The CLI run in-process with its standard input fed by the caller (`ask --interactive`). */
export function cliSession(...argv: string[]): { stdin: PassThrough; lines: () => string[]; err: () => string; done: Promise<number> } {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = main(argv, { stdout, stderr, stdin });
  return { stdin, lines: () => out.split('\n').filter((l) => l !== ''), err: () => err, done };
}
