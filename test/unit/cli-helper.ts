// The CLI run in-process with captured output, shared by the CLI test files.
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli';

/** Standard output and error streams whose text is kept. */
function captured(): { stdout: PassThrough; stderr: PassThrough; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { stdout, stderr, out: () => out, err: () => err };
}

export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = captured();
  const code = await main(argv, { stdout: c.stdout, stderr: c.stderr });
  return { code, out: c.out(), err: c.err() };
}

/** The CLI run in-process with its standard input fed by the caller (`ask --interactive`). */
export function cliSession(...argv: string[]): { stdin: PassThrough; stdout: PassThrough; lines: () => string[]; err: () => string; done: Promise<number> } {
  const stdin = new PassThrough();
  const c = captured();
  const done = main(argv, { stdout: c.stdout, stderr: c.stderr, stdin });
  return { stdin, stdout: c.stdout, lines: () => c.out().split('\n').filter((l) => l !== ''), err: c.err, done };
}
