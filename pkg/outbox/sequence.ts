// Durable per-sensor sequence counters: `seq` is monotonic across restarts, kill -9 included, so
// (device, sensor, seq) is a dedupe key for consumers of at-least-once delivery.
//
// next() is synchronous and costs a map lookup: numbers are handed out of blocks reserved ahead.
// Before handing out any number of a new block, the block's end (the high-water mark) is written
// durably, synchronously. After a crash the store resumes at the persisted marks, so a number is
// never issued twice; the numbers reserved but unused at the crash are skipped (a gap across
// restarts, never within a run). A clean close() persists the exact next numbers, leaving no gap.
// Blocks double (up to a cap) when a sensor uses one up within a second, so a 10k readings/s sensor
// reserves a few times a second. Each write carries every counter, so it also tops up every other
// counter past half its block: sensors started together (registered before their first reading)
// use their blocks up together, and one write then serves them all instead of one synchronous
// write each (1000 sensors once stalled the event loop for seconds at start-up, and again each
// time their blocks ran out).
//
// Two slots, written in turn, in place
// ------------------------------------
// The marks live in two files, `sequences.json` and `sequences.alt.json`, each holding a
// generation number, the marks and a CRC-32 of them. A write goes to the slot that does NOT hold
// the newest good generation, overwrites it in place (padded with spaces to the slot's size, never
// truncated) and fsyncs it. So:
// * A write needs no free space once a slot exists (no temp file, no new blocks): a full disk does
//   not stop numbering. Growing a slot (many new sensors) does need space; a write that fails
//   (full, read-only, I/O error) throws SequenceStateWriteFailed, the numbers of that block are not
//   handed out (the caller drops the readings and says so), and another write is tried at most
//   once a second.
// * A crash mid-write tears only the slot being written, whose numbers were never handed out: the
//   other slot holds the newest durable generation, exactly.
// * Damage from outside (a slot that fails its checksum while the other is good) is recovered with
//   a forward jump of MAX_BLOCK from the good slot. The bound: the two slots hold consecutive
//   generations g and g+1, and one write moves any counter's mark from at most its previous mark
//   (numbers in use never pass the persisted mark) to that plus one block, and a block is at most
//   MAX_BLOCK; a counter new in g+1 starts at the floor of g, so its mark is at most floor +
//   MAX_BLOCK. Hence every number issued under g+1 is below (mark in g) + MAX_BLOCK, and new
//   sensors start at (floor in g) + MAX_BLOCK. seq never goes backward; the cost is a gap. The store
//   reports the recovery (`recovery`), which the agent shows on every Sensor.
// * Both slots damaged: no bound is known, so nothing is guessed: next() refuses (the Sensors say
//   why) until the operator moves the folder aside, while everything else keeps running.
// Both slots are created (the second one blank) by the first write. A `sequences.json` written by an
// earlier version (plain JSON, version 1) is read as generation 0.
import { closeSync, fsyncSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { SensorletError } from '../api/errors.js';
import { fsyncDir } from '../storage/durable-file.js';
import { crc32 } from './crc32.js';

export const SEQUENCES_FILE = 'sequences.json';
export const SEQUENCES_ALT_FILE = 'sequences.alt.json';
const MIN_BLOCK = 1000;
/** The largest block one write reserves: also the forward jump after a damaged slot (see above). */
export const MAX_BLOCK = 100_000;
const FAST_BLOCK_MS = 1000;
/** After a failed write, reservations fail fast for this long instead of hitting the disk per reading. */
const WRITE_RETRY_MS = 1000;
/** Slots are created at least this large, so the usual growth of a few sensors needs no new space. */
const MIN_SLOT_BYTES = 4096;

interface Counter {
  /** The number next() returns next. */
  next: number;
  /** Exclusive end of the reserved block; persisted before any number below it is handed out. */
  reservedUntil: number;
  block: number;
  reservedAt: number;
}

interface StartState {
  generation: number;
  floor: number;
  next: Record<string, number>;
  target: 0 | 1;
  slotBytes: [number, number];
  recovery?: SequenceRecovery;
  unusable?: string;
}

interface SlotContent {
  version: 2;
  generation: number;
  /** The first number a sensor not listed may use. */
  floor: number;
  /** Per sensor key: the first number a restarted agent may use. */
  next: Record<string, number>;
}

type SlotRead = { state: 'missing' } | { state: 'damaged'; reason: string } | { state: 'good'; content: SlotContent };

export interface SequenceRecovery {
  reason: 'SequenceStateCorrupt';
  message: string;
}

export class SequenceStore {
  private readonly counters = new Map<string, Counter>();
  private closed = false;
  private writeCount = 0;
  private generation: number;
  private floor: number;
  /** The slot the next write goes to (the other one holds the newest good generation). */
  private target: 0 | 1;
  private readonly slotBytes: [number, number] = [0, 0];
  private failedAt = -Infinity;
  private lastFailure: unknown;
  /** Set when a damaged slot was recovered with a forward jump. */
  readonly recovery: SequenceRecovery | undefined;
  /** Set when no slot could be trusted: next() refuses. */
  private readonly unusable: string | undefined;
  /** Told about every durable write: the error when it failed, undefined when it succeeded. */
  onPersist: ((error?: unknown) => void) | undefined;

  private constructor(
    private readonly files: [string, string],
    start: StartState,
  ) {
    this.generation = start.generation;
    this.floor = start.floor;
    this.target = start.target;
    this.slotBytes = start.slotBytes;
    this.recovery = start.recovery;
    this.unusable = start.unusable;
    for (const [key, next] of Object.entries(start.next)) {
      this.counters.set(key, { next, reservedUntil: next, block: MIN_BLOCK, reservedAt: 0 });
    }
  }

  static async open(dir: string): Promise<SequenceStore> {
    // A folder the disk refuses (read-only) leaves the store without slots: its writes fail and say so.
    await mkdir(dir, { recursive: true }).catch(() => undefined);
    const files: [string, string] = [path.join(dir, SEQUENCES_FILE), path.join(dir, SEQUENCES_ALT_FILE)];
    const slots = files.map(readSlot) as [SlotRead, SlotRead];
    const slotBytes = files.map(sizeOf) as [number, number];
    const good = slots.flatMap((slot, index) => (slot.state === 'good' ? [{ index: index as 0 | 1, content: slot.content }] : []));
    const newest = good.sort((a, b) => b.content.generation - a.content.generation)[0];
    const otherIndex = newest ? ((1 - newest.index) as 0 | 1) : 1;
    const other = slots[otherIndex];
    let start: StartState;
    if (!newest) {
      const damaged = slots.flatMap((slot, index) => (slot.state === 'damaged' ? [`${files[index]} (${slot.reason})`] : []));
      start =
        damaged.length === 0
          ? { generation: 0, floor: 1, next: {}, target: 0, slotBytes }
          : {
              generation: 0,
              floor: 1,
              next: {},
              target: 0,
              slotBytes,
              unusable: `sequence state is damaged beyond recovery: ${damaged.join(', ')}; move ${dir} aside to restart numbering`,
            };
    } else if (other.state === 'good' || (other.state === 'missing' && newest.content.generation <= 1)) {
      // The usual case: the newest generation is exact (a torn write never handed out its numbers).
      start = { generation: newest.content.generation, floor: newest.content.floor, next: newest.content.next, target: otherIndex, slotBytes };
    } else {
      // The other slot is damaged or gone: it may have held generation g+1, whose numbers may be in
      // use. Jump past anything g+1 could have reserved (see the header).
      const jumped: Record<string, number> = {};
      for (const [key, next] of Object.entries(newest.content.next)) jumped[key] = next + MAX_BLOCK;
      const why = other.state === 'damaged' ? `is damaged (${other.reason})` : 'is missing';
      start = {
        generation: newest.content.generation,
        floor: newest.content.floor + MAX_BLOCK,
        next: jumped,
        // Overwrite the damaged slot first: the good one stays as it is until that write is durable.
        target: otherIndex,
        slotBytes,
        recovery: {
          reason: 'SequenceStateCorrupt',
          message: `${files[otherIndex]} ${why}; seq resumed ${MAX_BLOCK} past ${files[newest.index]} (a gap, never a reuse)`,
        },
      };
    }
    const store = new SequenceStore(files, start);
    if (store.unusable) return store;
    // One durable write reserves a block for every known sensor, instead of one fsync per sensor
    // on the read path as each first reads after the restart. On a disk that refuses it the
    // counters stay unreserved: the first next() of each tries again.
    if (store.counters.size > 0 || store.recovery) {
      const now = Date.now();
      const previous = [...store.counters.values()].map((counter) => counter.reservedUntil);
      for (const counter of store.counters.values()) {
        counter.reservedUntil = counter.next + counter.block;
        counter.reservedAt = now;
      }
      try {
        store.persist((counter) => counter.reservedUntil);
      } catch {
        [...store.counters.values()].forEach((counter, index) => (counter.reservedUntil = previous[index]));
      }
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

  /**
   * The next sequence number for a sensor (first one is 1). Throws SequenceStateWriteFailed while
   * its block cannot be made durable, and SequenceStateCorrupt when the state could not be
   * recovered: the caller must then drop the reading rather than number it.
   */
  next(sensorKey: string): number {
    const counter = this.counterOf(sensorKey);
    if (counter.next >= counter.reservedUntil) this.reserve(counter);
    return counter.next++;
  }

  /** Uses up `count` numbers at once (readings dropped before they were made): as `count` calls of next(). */
  skip(sensorKey: string, count: number): void {
    const counter = this.counterOf(sensorKey);
    for (let left = count; left > 0; ) {
      if (counter.next >= counter.reservedUntil) this.reserve(counter);
      const step = Math.min(left, counter.reservedUntil - counter.next);
      counter.next += step;
      left -= step;
    }
  }

  /** Persists the exact next numbers, so a clean restart continues without a gap. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.unusable) return;
    try {
      this.persist((counter) => counter.next);
    } catch {
      // The last reservation stays durable: the restart skips the unused rest of each block.
    }
  }

  private counterOf(sensorKey: string): Counter {
    let counter = this.counters.get(sensorKey);
    if (!counter) {
      counter = { next: this.floor, reservedUntil: this.floor, block: MIN_BLOCK, reservedAt: 0 };
      this.counters.set(sensorKey, counter);
    }
    return counter;
  }

  /** Reserves a new block for `counter`, and for every other counter past half its block, in one write. */
  private reserve(counter: Counter): void {
    if (this.unusable) throw new SensorletError('SequenceStateCorrupt', this.unusable);
    if (this.closed) throw new SensorletError('SequenceStoreClosed', 'next() after close()');
    const now = Date.now();
    if (now - this.failedAt < WRITE_RETRY_MS) throw writeFailed(this.lastFailure);
    if (counter.reservedAt > 0 && now - counter.reservedAt < FAST_BLOCK_MS) counter.block = Math.min(MAX_BLOCK, counter.block * 2);
    const toppedUp = [...this.counters.values()].filter((candidate) => candidate === counter || candidate.reservedUntil - candidate.next < candidate.block / 2);
    const previous = toppedUp.map((candidate) => candidate.reservedUntil);
    for (const candidate of toppedUp) candidate.reservedUntil = candidate.next + candidate.block;
    try {
      this.persist((c) => c.reservedUntil);
    } catch (error) {
      toppedUp.forEach((candidate, index) => (candidate.reservedUntil = previous[index]));
      throw writeFailed(error);
    }
    for (const candidate of toppedUp) candidate.reservedAt = now;
  }

  private persist(mark: (counter: Counter) => number): void {
    const next: Record<string, number> = {};
    for (const [key, counter] of this.counters) next[key] = mark(counter);
    const content: SlotContent = { version: 2, generation: this.generation + 1, floor: this.floor, next };
    const slot = this.target;
    const other = (1 - slot) as 0 | 1;
    try {
      // Both slots are created by the first write, so that later ones need no new space.
      if (this.slotBytes[other] === 0) this.slotBytes[other] = writeSlot(this.files[other], Buffer.alloc(0), 0);
      this.slotBytes[slot] = writeSlot(this.files[slot], encodeSlot(content), this.slotBytes[slot]);
    } catch (error) {
      // The target slot may be torn now; the next write goes to it again, the other stays good.
      this.failedAt = Date.now();
      this.lastFailure = error;
      this.onPersist?.(error);
      throw error;
    }
    this.failedAt = -Infinity;
    this.generation = content.generation;
    this.target = (1 - slot) as 0 | 1;
    this.writeCount++;
    this.onPersist?.();
  }
}

function writeFailed(error: unknown): SensorletError {
  return new SensorletError('SequenceStateWriteFailed', `could not persist sequence numbers: ${(error as Error | undefined)?.message ?? 'unknown error'}`, { cause: error });
}

/** `JSON\nCRC32-hex\n`, so a torn or damaged slot is recognised whatever bytes it holds. */
function encodeSlot(content: SlotContent): Buffer {
  const body = JSON.stringify(content);
  return Buffer.from(`${body}\n${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

function readSlot(file: string): SlotRead {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'damaged', reason: (error as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
  const trimmed = text.trimEnd();
  // Created blank beside the first slot written, and never written since.
  if (trimmed === '') return { state: 'missing' };
  const newline = trimmed.lastIndexOf('\n');
  try {
    if (newline < 0) {
      // An earlier version's plain JSON file (renamed into place atomically): generation 0.
      const legacy = JSON.parse(trimmed) as { version?: unknown; next?: Record<string, number> };
      if (legacy.version !== 1 || !validMarks(legacy.next)) return { state: 'damaged', reason: 'not a sequence file' };
      return { state: 'good', content: { version: 2, generation: 0, floor: 1, next: legacy.next } };
    }
    const body = trimmed.slice(0, newline);
    const sum = trimmed.slice(newline + 1);
    if (crc32(Buffer.from(body)).toString(16).padStart(8, '0') !== sum) return { state: 'damaged', reason: 'checksum mismatch' };
    const content = JSON.parse(body) as SlotContent;
    if (content.version !== 2 || !Number.isSafeInteger(content.generation) || !Number.isSafeInteger(content.floor) || !validMarks(content.next)) {
      return { state: 'damaged', reason: 'unexpected content' };
    }
    return { state: 'good', content };
  } catch {
    return { state: 'damaged', reason: 'not JSON' };
  }
}

function validMarks(next: unknown): next is Record<string, number> {
  return typeof next === 'object' && next !== null && Object.values(next).every((value) => Number.isSafeInteger(value) && (value as number) >= 1);
}

function sizeOf(file: string): number {
  try {
    const fd = openSync(file, 'r');
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  } catch {
    return 0;
  }
}

/**
 * Overwrites a slot in place and fsyncs it; returns its size. Shorter content is padded with
 * spaces (never truncated, so the slot keeps its blocks); a new or growing slot is sized with room
 * to spare.
 */
function writeSlot(file: string, data: Buffer, currentSize: number): number {
  const created = currentSize === 0;
  const size = !created && data.length <= currentSize ? currentSize : Math.max(MIN_SLOT_BYTES, data.length * 2);
  const buffer = Buffer.alloc(size, 0x20);
  data.copy(buffer);
  const fd = openSync(file, created ? 'w' : 'r+');
  try {
    for (let offset = 0; offset < buffer.length; ) {
      const written = writeSync(fd, buffer, offset, buffer.length - offset, offset);
      if (written === 0) throw Object.assign(new Error(`ENOSPC: no space left on device, write ${file}`), { code: 'ENOSPC' });
      offset += written;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // A new file exists durably only once its folder entry is synced.
  if (created) fsyncDir(path.dirname(file));
  return size;
}
