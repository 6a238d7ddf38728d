// An in-memory outbox: the same queue, sealing, limits and policies as the durable one, but sealed
// chunks live only in this process. Used when a sink asks for no durability, and as the second
// store under the contract suite. Byte costs are the JSON size of each chunk's readings, so maxBytes
// means about the same as on disk.
import type { Reading } from '../api/reading.js';
import type { ChunkMeta } from './chunk-file.js';
import { emptyCounters, OutboxCore, type ChunkStore, type Counters, type OutboxCoreDeps, type RecoveredState, type SealedChunkInfo } from './core.js';
import type { Outbox, OutboxOptions } from './outbox.js';

class MemoryChunkStore implements ChunkStore {
  // Readings of queued chunks stay in the core (never evicted), so the store keeps nothing itself.
  readonly evictable = false;
  private static readonly durable = Promise.resolve();

  async recover(): Promise<RecoveredState> {
    return { chunks: [], counters: emptyCounters(), nextId: 1 };
  }

  put(_meta: ChunkMeta, readings: Reading[], _journaled: number): { bytes: number; persisted: Promise<void> } {
    return { bytes: Buffer.byteLength(JSON.stringify(readings)), persisted: MemoryChunkStore.durable };
  }

  async load(chunk: SealedChunkInfo): Promise<Reading[]> {
    throw new Error(`memory outbox never evicts readings (chunk ${chunk.id})`);
  }

  async remove(): Promise<void> {}
  async quarantine(): Promise<void> {}
  saveCounters(_counters: Counters): void {}
  async close(): Promise<void> {}
}

export function createMemoryOutbox(options: OutboxOptions, deps: OutboxCoreDeps = {}): Outbox {
  return new OutboxCore(new MemoryChunkStore(), options, deps);
}
