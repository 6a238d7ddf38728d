// `sensorlet outbox stats --state-dir DIR`: outbox statistics read straight from disk, so it works
// with the agent stopped. Strictly read-only: it parses nedb's append-only file itself (nedb-file.ts),
// because loading it through nedb would compact (rewrite) it.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { emptyCounters } from './core.js';
import { CHUNKS_DIR, chunkIdOf, META_FILE, type ChunkIndexDoc, type CountersDoc } from './durable.js';
import type { DropReason, OutboxStats } from './outbox.js';
import { readNedbFile } from './nedb-file.js';

/** Where the agent keeps each sink's outbox: `<stateDir>/outbox/<namespace>.<sinkName>/`. */
export function outboxDir(stateDir: string, namespace: string, sinkName: string): string {
  return path.join(stateDir, 'outbox', `${namespace}.${sinkName}`);
}

export async function readOutboxStats(stateDir: string): Promise<Array<{ sink: string } & OutboxStats>> {
  const root = path.join(stateDir, 'outbox');
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const results: Array<{ sink: string } & OutboxStats> = [];
  for (const sink of entries.sort()) {
    const dir = path.join(root, sink);
    if (!(await stat(dir)).isDirectory()) continue;
    results.push({ sink, ...(await readOneOutbox(dir)) });
  }
  return results;
}

async function readOneOutbox(dir: string): Promise<OutboxStats> {
  const docs = await readNedbFile(path.join(dir, META_FILE));
  const index = new Map<number, ChunkIndexDoc>();
  let counters: CountersDoc | undefined;
  for (const raw of docs.values()) {
    const doc = raw as unknown as ChunkIndexDoc | CountersDoc;
    if (doc.kind === 'chunk') index.set(doc.id, doc);
    else if (doc.kind === 'counters') counters = doc;
  }
  let files: string[] = [];
  try {
    files = await readdir(path.join(dir, CHUNKS_DIR));
  } catch {
    // No chunks directory: nothing queued.
  }
  let readings = 0;
  let bytes = 0;
  let chunks = 0;
  let oldestTime: number | undefined;
  for (const file of files) {
    const id = chunkIdOf(file);
    if (id === undefined) continue;
    const doc = index.get(id);
    chunks++;
    if (doc) {
      readings += doc.count;
      bytes += doc.bytes;
      oldestTime = oldestTime === undefined ? doc.firstTime : Math.min(oldestTime, doc.firstTime);
    } else {
      // Sealed just before a crash and not indexed yet: the agent re-indexes it at start-up.
      bytes += (await stat(path.join(dir, CHUNKS_DIR, file)).catch(() => ({ size: 0 }))).size;
    }
  }
  const dropped: Record<DropReason, number> = { ...emptyCounters().dropped, ...(counters?.dropped ?? {}) };
  const maxBytes = counters?.maxBytes ?? 0;
  return {
    readings,
    bytes,
    chunks,
    oldestTime,
    dropped,
    corruptChunks: counters?.corruptChunks ?? 0,
    tornFrames: counters?.tornFrames ?? 0,
    full: maxBytes > 0 && bytes >= maxBytes,
    unwrittenBytes: 0,
  };
}
