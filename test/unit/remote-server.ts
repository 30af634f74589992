// Starts tools/engine_test_server.py (the stand-in for vLLM / SGLang: real torch.load of the
// prefix, the bundled decoder in PyTorch) for the remote-*.test.ts files.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO } from './core-fixture';
import { PYTHON } from './remote-helpers';

export const DEFAULT_PACKAGE = join(REPO, 'models', 'arc-tiny-code');

export interface TestServer {
  url: string;
  proc: ChildProcess;
  control(body: Record<string, unknown>): Promise<void>;
  log(): Promise<{ path: string; outcome: string; tokens: number }[]>;
  stop(): Promise<void>;
}

export async function startServer(args: string[] = []): Promise<TestServer> {
  const proc = spawn(PYTHON, [join(REPO, 'tools', 'engine_test_server.py'), '--package', DEFAULT_PACKAGE, '--port', '0', '--test-controls', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => reject(new Error(`engine_test_server did not start in 60 s:\n${stderr}`)), 60_000);
    lines.on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`engine_test_server exited with ${code}:\n${stderr}`));
    });
  });
  return {
    url,
    proc,
    async control(body) {
      const r = await fetch(`${url}/_test/control`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
      if (!r.ok) throw new Error(`control: ${r.status}`);
    },
    async log() {
      return (await (await fetch(`${url}/_test/log`)).json()) as { path: string; outcome: string; tokens: number }[];
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
