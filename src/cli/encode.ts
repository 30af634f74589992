// `arc-context encode`: compress given token ids with a package's encoder (encoder-only
// packages work), e.g. to compare a converted checkpoint with the reference implementation.
import { resolve } from 'node:path';
import { loadModel } from '../core/model';
import { readManifest } from '../core/manifest';
import { ArcError } from '../core/errors';
import { MODEL_OPTIONS, MODEL_USAGE, UsageError, loadOptions, parse, parseIntOption, requireString, type Command } from './args';

const usage = `Usage: arc-context encode --model DIR --token-ids 1,2,3 [--decoder-index I] [--json]
Compress token ids (no BOS) with the package's encoder and print the vectors and <Cont>.
${MODEL_USAGE}
  --token-ids LIST   comma-separated token ids (required)
  --decoder-index I  the decoder index the caller expects; must match the package
  --json             print {"embeddings": [[...]], "cont": [...], "groupSizes": [...], "provider": "..."}`;

function parseTokenIds(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UsageError(`--token-ids must be comma-separated non-negative integers (got "${value}")`);
  return parts.map(Number);
}

export const command: Command = {
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { ...MODEL_OPTIONS, 'token-ids': { type: 'string' }, 'decoder-index': { type: 'string' }, json: { type: 'boolean' } }, true);
    if (values.help) {
      io.stdout.write(usage + '\n');
      return 0;
    }
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const dir = resolve(requireString(values.model, '--model'));
    const ids = parseTokenIds(requireString(values['token-ids'], '--token-ids'));
    const wantIndex = parseIntOption(values['decoder-index'], '--decoder-index', 0);
    const opts = loadOptions(values, io);

    // Checked before the sessions load: a package holds the projector of one decoder only.
    const { manifest } = await readManifest(dir);
    if (wantIndex !== undefined && wantIndex !== manifest.encoder.decoderIndex) {
      throw new ArcError(
        'model-missing',
        `${dir} holds the encoder for decoder index ${manifest.encoder.decoderIndex}, not ${wantIndex}. Convert the checkpoint for decoder index ${wantIndex} (tools/convert_kyutai.py) and pass that package.`,
      );
    }
    const model = await loadModel(dir, opts);
    try {
      const start = performance.now();
      const [chunk] = await model.encoder.encode([ids], io.signal);
      const encodeMs = performance.now() - start;
      const c = chunk!;
      const rows: number[][] = [];
      for (let i = 0; i < c.count; i++) rows.push(Array.from(c.vectors.subarray(i * c.dim, (i + 1) * c.dim)));
      const groupSizes = c.groups.map(([a, b]) => b - a);
      if (values.json) {
        io.stdout.write(JSON.stringify({ embeddings: rows, cont: Array.from(model.encoder.cont), groupSizes, provider: model.provider }) + '\n');
      } else {
        io.stdout.write(`${ids.length} tokens -> ${c.count} vectors of ${c.dim} (groups ${groupSizes.join(',')}), provider ${model.provider}, ${encodeMs.toFixed(1)} ms\n`);
        rows.forEach((r, i) => io.stdout.write(`${i}: ${r.slice(0, 4).map((v) => v.toFixed(5)).join(' ')} ...\n`));
      }
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
