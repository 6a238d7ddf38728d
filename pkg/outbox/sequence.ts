// Durable per-sensor sequence counters: `seq` is monotonic across restarts, kill -9 included, so
// (device, sensor, seq) is a dedupe key for consumers of at-least-once delivery.
//
// next() is synchronous and costs a map lookup: numbers are handed out of blocks reserved ahead.
// Before handing out any number of a new block, the block's end (the high-water mark) is written
// to `sequences.json` with write-temp + fsync + rename + directory fsync, synchronously. After a
// crash the store resumes at the persisted marks, so a number is never issued twice; the numbers
// reserved but unused at the crash are skipped (a gap across restarts, never within a run). A
// clean close() persists the exact next numbers, leaving no gap. Blocks double (up to a cap) when
// a sensor uses one up within a second, so a 10k readings/s sensor reserves a few times a second.
// Each write carries every counter, so it also tops up every other counter past half its block:
// sensors started together (registered before their first reading) use their blocks up together,
// and one write then serves them all instead of one synchronous write each (1000 sensors once
// stalled the event loop for seconds at start-up, and again each time their blocks ran out).
import { readFileSync } from 'node:fs';
import { writeFileDurable } from '../storage/durable-file.js';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { SensorletError } from '../api/errors.js';

export const SEQUENCES_FILE = 'sequences.json';
const MIN_BLOCK = 1000;
const MAX_BLOCK = 100_000;
const FAST_BLOCK_MS = 1000;

interface Counter {
  /** The number next() returns next. */
  next: number;
  /** Exclusive end of the reserved block; persisted before any number below it is handed out. */
  reservedUntil: number;
  block: number;
  reservedAt: number;
}

interface SequenceFile {
  version: 1;
  /** Per sensor key: the first number a restarted agent may use. */
  next: Record<string, number>;
}

export class SequenceStore {
  private readonly counters = new Map<string, Counter>();
  private closed = false;
  private writeCount = 0;

  private constructor(
    private readonly file: string,
    persisted: Record<string, number>,
  ) {
    for (const [key, next] of Object.entries(persisted)) {
      this.counters.set(key, { next, reservedUntil: next, block: MIN_BLOCK, reservedAt: 0 });
    }
  }

  static async open(dir: string): Promise<SequenceStore> {
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, SEQUENCES_FILE);
    let persisted: Record<string, number> = {};
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text !== undefined) {
      try {
        const parsed = JSON.parse(text) as SequenceFile;
        persisted = parsed.next ?? {};
      } catch (error) {
        // Renames are atomic, so this is outside damage; guessing could reuse numbers.
        throw new SensorletError('SequenceStateCorrupt', `${file} is not valid JSON; move it aside to restart numbering`, { cause: error });
      }
    }
    const store = new SequenceStore(file, persisted);
    // One durable write reserves a block for every known sensor, instead of one fsync per sensor
    // on the read path as each first reads after the restart.
    if (store.counters.size > 0) {
      const now = Date.now();
      for (const counter of store.counters.values()) {
        counter.reservedUntil = counter.next + counter.block;
        counter.reservedAt = now;
      }
      store.persist((counter) => counter.reservedUntil);
    }
    return store;
  }

  /** Durable writes made so far (reservations and the closing write). */
  get writes(): number {
    return this.writeCount;
  }

  /** Declares a sensor before its first reading, so that its first block comes with the next write. */
  register(sensorKey: string): void {
    this.counterOf(sensorKey);
  }

  /** The next sequence number for a sensor (first one is 1). */
  next(sensorKey: string): number {
    const counter = this.counterOf(sensorKey);
    if (counter.next >= counter.reservedUntil) this.reserve(counter);
    return counter.next++;
  }

  /** Persists the exact next numbers, so a clean restart continues without a gap. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.persist((counter) => counter.next);
  }

  private counterOf(sensorKey: string): Counter {
    let counter = this.counters.get(sensorKey);
    if (!counter) {
      counter = { next: 1, reservedUntil: 1, block: MIN_BLOCK, reservedAt: 0 };
      this.counters.set(sensorKey, counter);
    }
    return counter;
  }

  /** Reserves a new block for `counter`, and for every other counter past half its block, in one write. */
  private reserve(counter: Counter): void {
    if (this.closed) throw new SensorletError('SequenceStoreClosed', 'next() after close()');
    const now = Date.now();
    if (counter.reservedAt > 0 && now - counter.reservedAt < FAST_BLOCK_MS) counter.block = Math.min(MAX_BLOCK, counter.block * 2);
    const toppedUp = [...this.counters.values()].filter((candidate) => candidate === counter || candidate.reservedUntil - candidate.next < candidate.block / 2);
    const previous = toppedUp.map((candidate) => candidate.reservedUntil);
    for (const candidate of toppedUp) candidate.reservedUntil = candidate.next + candidate.block;
    try {
      this.persist((c) => c.reservedUntil);
    } catch (error) {
      toppedUp.forEach((candidate, index) => (candidate.reservedUntil = previous[index]));
      throw new SensorletError('SequenceStateWriteFailed', `could not persist sequence numbers: ${(error as Error).message}`, { cause: error });
    }
    for (const candidate of toppedUp) candidate.reservedAt = now;
  }

  private persist(mark: (counter: Counter) => number): void {
    const next: Record<string, number> = {};
    for (const [key, counter] of this.counters) next[key] = mark(counter);
    const body: SequenceFile = { version: 1, next };
    writeFileDurable(this.file, JSON.stringify(body));
    this.writeCount++;
  }
}
