// Worker thread of streamFileChunks (chunkIndex.ts): tokenizes and chunks files while the main
// thread runs the encoder. It loads the same tokenizer.json as the model, serves unchanged files
// from the chunk index and stores the rest there (exactly chunkFileIndexed), and sends each
// file's chunks back in the chunk index's entry format, its ArrayBuffer transferred. Files are
// answered in the order they came. Bundled on its own as dist/chunkWorker.js (esbuild.mjs).
import { parentPort, workerData } from 'node:worker_threads';
import { ArcError, errorMessage } from '../errors';
import { loadTokenizer, type HfTokenizer } from '../tokenizer';
import { ChunkIndex, TRANSFER_KEY, chunkFileIndexed, encodeChunkEntry, type ChunkWorkerData, type FromChunkWorker, type ToChunkWorker } from './chunkIndex';
import { InFlight } from './cache';
import type { SourceFile } from './sources';

function send(m: FromChunkWorker, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(m, transfer);
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('chunkWorker runs only as a worker thread');
  const data = workerData as ChunkWorkerData;
  const stop = new Int32Array(data.stop);
  const queue: Extract<ToChunkWorker, { type: 'file' }>[] = [];
  let ending = false;
  let stopped = false;
  let wake: (() => void) | null = null;
  // Listen at once: files may come before the tokenizer is loaded.
  port.on('message', (m: ToChunkWorker) => {
    if (m.type === 'file') queue.push(m);
    else if (m.type === 'end') ending = true;
    else stopped = true;
    const w = wake;
    wake = null;
    w?.();
  });
  let tokenizer: HfTokenizer;
  try {
    tokenizer = await loadTokenizer(data.tokenizerPath);
  } catch (e) {
    send({ type: 'failed', message: errorMessage(e) });
    port.close();
    return;
  }
  const index = data.index ? new ChunkIndex(data.index.cacheDir, data.index.identity, { maxBytes: data.index.maxBytes, log: (line) => send({ type: 'log', line }) }) : null;
  const isStopped = (): boolean => stopped || Atomics.load(stop, 0) !== 0;
  // Chunk index writes go on while the next files are tokenized (a cold tree's thousands of
  // small files would otherwise wait for each write in turn), a bounded number at a time.
  const writes = new InFlight(16);
  for (;;) {
    // The shared flag is read between files even when no message can be delivered meanwhile.
    if (isStopped()) break;
    const m = queue.shift();
    if (!m) {
      if (ending) break;
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    const file: SourceFile = { path: m.path, text: m.text, startLine: m.startLine, origin: 'workspace' };
    try {
      const { chunks, from } = await chunkFileIndexed(file, tokenizer, data.opts, index, false, writes);
      const entry = encodeChunkEntry(TRANSFER_KEY, file, chunks);
      // Buffer.alloc gives the entry its own ArrayBuffer, so it can move without a copy.
      const whole = entry.byteOffset === 0 && entry.byteLength === entry.buffer.byteLength;
      const view = whole ? new Uint8Array(entry.buffer) : new Uint8Array(entry);
      send({ type: 'file', seq: m.seq, from: from === 'memo' ? 'chunked' : from, entry: view }, [view.buffer as ArrayBuffer]);
    } catch (e) {
      send({ type: 'error', seq: m.seq, message: e instanceof Error ? e.message : String(e), code: e instanceof ArcError ? e.code : undefined });
    }
  }
  await writes.settled();
  // As chunkFilesIndexed does after its files. Not after a stop, which should be prompt (as the
  // vector cache is not trimmed after a cancellation either): the next run that writes trims.
  if (index && !isStopped()) await index.evictIfGrown();
  send({ type: 'done' });
  port.close();
}

main().catch((e: unknown) => {
  send({ type: 'failed', message: errorMessage(e) });
  parentPort?.close();
});
