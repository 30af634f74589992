// Child process for the fault test: asks one question about a folder on a shared cache (as the
// CLI does in another terminal) and prints the answer, the selection and the cache figures.
import { ask } from '../../src/core/ask';
import { loadModel } from '../../src/core/model';
import { TINY_ARC } from './pipeline-helpers';

async function main(): Promise<void> {
  const [root, cacheDir, question] = process.argv.slice(2);
  const model = await loadModel(TINY_ARC, { provider: 'cpu', threads: 1 });
  try {
    const out: { answer?: string; error?: string; cacheMisses?: number } = {};
    for await (const e of ask(model, { question, mode: 'arc', roots: [root], maxNewTokens: 3 }, { cacheDir })) {
      if (e.type === 'done') Object.assign(out, { answer: e.answer, cacheMisses: e.stats.cacheMisses });
      if (e.type === 'error') out.error = `${e.code}: ${e.message}`;
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await model.dispose();
  }
}

if (process.argv[1]?.endsWith('ext-fault-child.ts')) void main();
