// Entry point of the `arc-context` command (dist/cli.js). Subcommands live in src/cli/<name>.ts
// and are registered in COMMANDS below: add a file and a line.
// A local-first tool must not phone home; ONNX Runtime reads this when it first loads, and the
// subcommands (which load it) are imported only after this line has run.
process.env.ORT_DISABLE_TELEMETRY = '1';

import type { Command, CommandIo } from './cli/args';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ command: Command }> }> = {
  encode: { summary: 'compress token ids with a package encoder (works on encoder-only packages)', load: () => import('./cli/encode') },
  ask: { summary: 'answer a question about files in arc, full or none mode', load: () => import('./cli/ask') },
  compress: { summary: 'compress folders into the vector cache and print the figures', load: () => import('./cli/compress') },
  eval: { summary: 'exact-match evaluation of a JSONL question set in one mode', load: () => import('./cli/eval') },
  bench: { summary: 'time to first token, encoder/tokenizer throughput, workspace compression and quality figures', load: () => import('./cli/bench') },
};

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: arc-context <command> [options]   (arc-context <command> --help for its options)\nCommands:\n${lines.join('\n')}\n`;
}

/** Runs the CLI; returns the exit code: 0 ok, 1 runtime error, 2 usage error. */
export async function main(argv: string[], io: Omit<CommandIo, 'signal'> = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(overview());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr.write(`arc-context: unknown command "${name}"\n${overview()}`);
    return 2;
  }
  const controller = new AbortController();
  let handler: (() => boolean) | null = null;
  // The first Ctrl-C the command does not handle cancels it; the next one ends the process. The
  // listener stays until the command returns: a dependency's exit hook (signal-exit, through
  // proper-lockfile) re-raises the signal, killing the process, when it finds no other listener.
  const onSigint = (): void => {
    if (handler?.()) return;
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const { command } = await entry.load();
  const { UsageError } = await import('./cli/args');
  try {
    return await command.run(rest, { ...io, signal: controller.signal, onInterrupt: (h) => (handler = h) });
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`arc-context ${name}: ${e.message} (see arc-context ${name} --help)\n`);
      return 2;
    }
    const { errorMessage, isArcError } = await import('./core/errors');
    const code = isArcError(e) ? ` [${e.code}]` : '';
    io.stderr.write(`arc-context ${name}: error${code}: ${errorMessage(e)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

// Run only as a program, not when a test imports main().
if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`arc-context: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
