// The queue logic shared by every outbox store: the open chunk and its sealing rule, FIFO hand-out,
// acks, rewind, limits and full policies (including room()/refuse(), which let a producer skip
// readings dropNewest would refuse), maxAge. A ChunkStore only keeps chunks somewhere (memory,
// disk; the open chunk's readings once per event-loop turn through journal()); so both
// implementations behave identically by construction, and the contract suite checks the stores
// underneath.
import { SensorletError } from '../api/errors.js';
import type { Reading } from '../api/reading.js';
import type { Clock } from '../observability/clock.js';
import { setBoundedTimeout, systemClock } from '../observability/clock.js';
import type { Logger } from '../observability/logger.js';
import type { ChunkMeta } from './chunk-file.js';
import type { AppendResult, DropReason, Outbox, OutboxBatch, OutboxOptions, OutboxStats, OutboxWarning, StorageFault } from './outbox.js';

/** A sealed chunk as the store knows it. `bytes` is what it costs against maxBytes. */
export interface SealedChunkInfo extends ChunkMeta {
  bytes: number;
}

export interface Counters {
  dropped: Record<DropReason, number>;
  corruptChunks: number;
  /** Frames of chunk files left by a crash that were cut short or failed their checksum (see OutboxStats). */
  tornFrames: number;
}

export interface RecoveredState {
  /** Chunks still queued, oldest first; their readings stay in the store until handed out. */
  chunks: SealedChunkInfo[];
  counters: Counters;
  /** The id the next sealed chunk gets; above every id the store has used. */
  nextId: number;
}

export interface ChunkStore {
  recover(): Promise<RecoveredState>;
  /**
   * Takes a freshly sealed chunk: all its readings, of which the first `journaled` went to
   * journal() already. Encoding is synchronous so its byte cost is known at once; `persisted`
   * resolves once it is durable (immediately for memory).
   */
  put(meta: ChunkMeta, readings: Reading[], journaled: number): { bytes: number; persisted: Promise<void> };
  /**
   * The open chunk's readings appended since the last call, once per event-loop turn. A store that
   * writes hands them to the kernel at once (the chunk's file, not synced), so that a process
   * crash loses nothing appended; put() later seals the chunk with the readings not journaled yet.
   */
  journal?(chunk: { id: number; firstTime: number }, readings: Reading[]): void;
  /** Reads a chunk's readings back; rejects with ChunkCorruptError when it fails its checks. */
  load(chunk: SealedChunkInfo): Promise<Reading[]>;
  /** Deletes acknowledged or dropped chunks; one whose put() was not written yet is never written. */
  remove(chunks: SealedChunkInfo[]): Promise<void>;
  /** Moves a corrupt chunk aside so it is kept for inspection but never read again. */
  quarantine(chunk: SealedChunkInfo, reason: string): Promise<void>;
  /** Counters changed; a durable store persists them lazily. */
  saveCounters(counters: Counters): void;
  /** True when readings of sealed chunks may be dropped from memory and loaded again later. */
  readonly evictable: boolean;
  /**
   * Bytes of sealed chunks held in memory because they are not written yet (disk behind), and
   * whether a chunk is among those not yet being written (dropping it then frees its memory and
   * skips its write). Absent for stores that write nothing.
   */
  unwrittenBytes?(): number;
  isUnwritten?(id: number): boolean;
  /** Set while the store cannot write (disk full, read-only, failing); it retries by itself. */
  storageFault?(): StorageFault | undefined;
  /** What the store repaired at start-up, if anything. */
  warning?(): OutboxWarning | undefined;
  /** Called when chunks were written later than put() (after a storage fault), so `block` can resume. */
  onWritten?(listener: () => void): void;
  close(counters: Counters): Promise<void>;
}

/** 'acked' also marks chunks dropped or quarantined: out of the queue, never handed out again. */
type ChunkState = 'queued' | 'handed' | 'acked';

interface Chunk extends SealedChunkInfo {
  state: ChunkState;
  /** In memory while recently sealed, prefetched or handed out; otherwise only in the store. */
  readings?: Reading[];
  loading?: Promise<Reading[]>;
  /** Being read ahead for the sink: already promised to delivery, so dropOldest passes over it. */
  prefetched?: boolean;
  persisted: Promise<void>;
}

export interface OutboxCoreDeps {
  clock?: Clock;
  logger?: Logger;
}

/** Readings sealed into the open chunk are costed at this many bytes until a chunk was measured. */
const INITIAL_BYTES_PER_READING = 200;
/** Queued chunks kept in memory after persisting, so a sink that keeps up never reads from disk. */
const HOT_CHUNKS = 4;
/**
 * Chunks read ahead of the one handed out. One was not enough under overload: its read often
 * queued in the thread pool behind the group commit's fsyncs, and the sink waited for the disk
 * about 10-25 % of the time with a full backlog; with two, about 7 %.
 */
const PREFETCH_CHUNKS = 2;
/** `full` clears only once bytes fall to this share of maxBytes, so `block` does not flap. */
const FULL_LOW_WATER = 0.9;
/** A chunk also seals at this share of maxBytes, so dropOldest can always free space by whole chunks. */
const MAX_CHUNK_SHARE_OF_LIMIT = 0.25;
const MAX_CHUNK_BYTES = 8 * 1024 * 1024;
/**
 * Memory bound for sealed chunks waiting to be written. When producers outrun the disk, chunks
 * would otherwise pile up in memory without limit (maxBytes is a disk budget, often GiBs): past
 * this, the whenFull policy applies as if the outbox were full (dropOldest drops the oldest chunks
 * not yet written, which frees their memory and skips their writes; dropNewest refuses; block
 * pauses the producers until the writes catch up).
 */
export const MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024;

function emptyDropped(): Record<DropReason, number> {
  return { dropOldest: 0, dropNewest: 0, maxAge: 0, corrupt: 0 };
}

/** How far beyond maxBytes `whenFull: block` admits the readings of reads already under way. */
const BLOCK_OVERSHOOT = 1.25;

function limitOrInfinity(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : Infinity;
}

export class OutboxCore implements Outbox {
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;

  /** Live sealed chunks (queued or handed out), oldest first. */
  private readonly queue: Chunk[] = [];
  private readonly byId = new Map<number, Chunk>();
  private nextId = 1;

  private openChunk: Reading[] = [];
  /** The open chunk's id (taken when it starts, so its journal can name it) and first sample time. */
  private openId = 0;
  private openFirstTimeMs = 0;
  /** How many of the open chunk's readings went to the store's journal. */
  private openJournaled = 0;
  private journalScheduled = false;
  private openStartedAt = 0;
  /** Monotonic time the open chunk started, for the maxDelay seal (the injected clock may be manual). */
  private openStartedMono = 0;
  private sealTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;

  // Running totals over queued and handed-out chunks (acked ones no longer count).
  private liveReadings = 0;
  private liveBytes = 0;
  private queuedChunks = 0;
  private liveChunks = 0;
  private bytesPerReading = INITIAL_BYTES_PER_READING;

  private counters: Counters = emptyCounters();
  private full = false;
  private readonly fullListeners: Array<(full: boolean) => void> = [];
  private waiters: Array<() => void> = [];
  private nextChain: Promise<unknown> = Promise.resolve();
  private readonly removals = new Set<Promise<void>>();
  private pendingDrops: Chunk[] = [];
  private opened = false;
  private closed = false;

  constructor(
    private readonly store: ChunkStore,
    private readonly options: OutboxOptions,
    deps: OutboxCoreDeps = {},
  ) {
    if (!(options.maxReadings >= 1)) throw new SensorletError('InvalidOutboxOptions', 'maxReadings must be at least 1', { terminal: true });
    this.clock = deps.clock ?? systemClock;
    this.logger = deps.logger;
    this.maxBytes = limitOrInfinity(options.maxBytes);
    this.maxAgeMs = limitOrInfinity(options.maxAgeMs);
    // Writes catching up after a storage fault may end a `block` pause, as in seal().
    store.onWritten?.(() => {
      if (this.full) this.updateFull();
    });
  }

  async open(): Promise<void> {
    if (this.opened) return;
    const recovered = await this.store.recover();
    this.counters = recovered.counters;
    this.nextId = recovered.nextId;
    for (const info of recovered.chunks) {
      const chunk: Chunk = { ...info, state: 'queued', persisted: Promise.resolve() };
      this.queue.push(chunk);
      this.byId.set(chunk.id, chunk);
      this.countLive(chunk, +1);
      this.queuedChunks++;
      if (info.count > 0) this.bytesPerReading = info.bytes / info.count;
    }
    this.opened = true;
    if (this.maxAgeMs !== Infinity) {
      // Expiry also runs on append and next(); the timer covers an idle outbox.
      this.ageTimer = setInterval(() => this.expire(), Math.min(this.maxAgeMs, 1000));
      this.ageTimer.unref();
      this.expire();
    }
    this.updateFull();
  }

  room(count: number): number {
    // Only dropNewest refuses what arrives; dropOldest makes room and block pauses the producers.
    if (this.options.whenFull !== 'dropNewest' || !this.opened || this.closed) return count;
    this.expire();
    let admitted = count;
    if (this.maxBytes !== Infinity && this.totalBytes() + count * this.bytesPerReading > this.maxBytes) {
      admitted = Math.floor(Math.max(0, this.maxBytes - this.totalBytes()) / this.bytesPerReading);
    }
    if (admitted > 0 && this.store.unwrittenBytes) {
      const unwritten = this.store.unwrittenBytes();
      if (unwritten + admitted * this.bytesPerReading > MAX_UNWRITTEN_BYTES) {
        admitted = Math.floor(Math.max(0, MAX_UNWRITTEN_BYTES - unwritten) / this.bytesPerReading);
      }
    }
    return Math.max(0, Math.min(count, admitted));
  }

  refuse(count: number): void {
    if (count <= 0) return;
    this.counters.dropped.dropNewest += count;
    this.store.saveCounters(this.counters);
    this.setFull(true);
  }

  append(readings: Reading[]): AppendResult {
    if (this.closed) throw new SensorletError('OutboxClosed', 'append on a closed outbox');
    if (!this.opened) throw new SensorletError('OutboxNotOpen', 'append before open()');
    const dropped: Partial<Record<DropReason, number>> = {};
    const maxAgeBefore = this.counters.dropped.maxAge;
    this.expire();
    let accepted = readings.length;
    const incomingBytes = readings.length * this.bytesPerReading;
    // With block, the producers pause as soon as `full` flips, but reads already under way still
    // arrive: they are admitted up to BLOCK_OVERSHOOT beyond maxBytes, so block loses nothing.
    // Only a producer that ignores the pause runs into the hard ceiling (counted as dropNewest).
    const block = this.options.whenFull === 'block';
    const ceiling = block ? this.maxBytes * BLOCK_OVERSHOOT : this.maxBytes;
    if (block && this.maxBytes !== Infinity && this.totalBytes() + incomingBytes > this.maxBytes) this.setFull(true);
    if (this.maxBytes !== Infinity && this.totalBytes() + incomingBytes > ceiling) {
      if (this.options.whenFull === 'dropOldest') {
        const freed = this.dropOldestUntil(this.maxBytes - incomingBytes);
        if (freed > 0) dropped.dropOldest = freed;
      } else {
        // dropNewest and block refuse what does not fit. With block the caller pauses its producers
        // on full=true; readings it sends anyway are lost to the outbox and counted as dropNewest.
        const room = Math.max(0, ceiling - this.totalBytes());
        accepted = Math.min(readings.length, Math.floor(room / this.bytesPerReading));
        if (accepted < readings.length) {
          dropped.dropNewest = readings.length - accepted;
          this.counters.dropped.dropNewest += dropped.dropNewest;
          this.store.saveCounters(this.counters);
        }
      }
      this.setFull(true);
    }
    if (accepted > 0 && this.store.unwrittenBytes) accepted = this.admitWhileDiskBehind(accepted, incomingBytes, dropped);
    const expired = this.counters.dropped.maxAge - maxAgeBefore;
    if (expired > 0) dropped.maxAge = expired;

    if (accepted > 0) {
      if (this.openChunk.length === 0) this.startOpenChunk(readings[0]);
      let sealAt = this.sealThreshold();
      for (let i = 0; i < accepted; i++) {
        this.openChunk.push(readings[i]);
        if (this.openChunk.length >= sealAt) {
          this.seal();
          sealAt = this.sealThreshold();
          if (i + 1 < accepted) this.startOpenChunk(readings[i + 1]);
        }
      }
      this.scheduleJournal();
    }
    if (this.totalBytes() >= this.maxBytes) this.setFull(true);
    return { accepted, dropped, full: this.full };
  }

  /**
   * The disk is behind when chunks waiting to be written exceed MAX_UNWRITTEN_BYTES: memory, not
   * maxBytes, is then the limit, and the whenFull policy applies to it. Returns how many readings
   * may be accepted.
   */
  private admitWhileDiskBehind(accepted: number, incomingBytes: number, dropped: Partial<Record<DropReason, number>>): number {
    const unwritten = this.store.unwrittenBytes!();
    if (unwritten + incomingBytes <= MAX_UNWRITTEN_BYTES) return accepted;
    if (this.options.whenFull === 'dropOldest') {
      // Oldest first among the chunks not yet written: dropping them frees memory and their writes.
      let freed = 0;
      let remaining = unwritten;
      for (let i = 0; i < this.queue.length && remaining + incomingBytes > MAX_UNWRITTEN_BYTES; ) {
        const chunk = this.queue[i];
        if (chunk.state !== 'queued' || chunk.prefetched || !this.store.isUnwritten!(chunk.id)) {
          i++;
          continue;
        }
        remaining -= chunk.bytes;
        freed += chunk.count;
        this.forget(chunk);
        this.counters.dropped.dropOldest += chunk.count;
        this.pendingDrops.push(chunk);
      }
      if (freed > 0) {
        dropped.dropOldest = (dropped.dropOldest ?? 0) + freed;
        this.flushDrops();
      }
      return accepted;
    }
    const block = this.options.whenFull === 'block';
    if (block) this.setFull(true);
    const ceiling = block ? MAX_UNWRITTEN_BYTES * BLOCK_OVERSHOOT : MAX_UNWRITTEN_BYTES;
    const room = Math.max(0, ceiling - unwritten);
    const admitted = Math.min(accepted, Math.floor(room / this.bytesPerReading));
    if (admitted < accepted) {
      dropped.dropNewest = (dropped.dropNewest ?? 0) + (accepted - admitted);
      this.counters.dropped.dropNewest += accepted - admitted;
      this.store.saveCounters(this.counters);
      this.setFull(true);
    }
    return admitted;
  }

  next(): Promise<OutboxBatch | undefined> {
    // Serialized, so concurrent callers get batches in FIFO order even when one loads from disk.
    const result = this.nextChain.then(() => this.takeNext());
    this.nextChain = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  async ack(batch: OutboxBatch): Promise<void> {
    const chunk = this.byId.get(batch.id);
    // Unknown: already acked, or dropped (dropOldest/maxAge) while it was out for delivery.
    if (!chunk || chunk.state === 'acked') return;
    this.forget(chunk);
    this.updateFull();
    // Chunk files are independent, so an acked chunk is deleted at once even when an earlier one
    // is still out: after a crash only unacknowledged chunks come back. The ack resolves without
    // waiting for the deletion (a crash before it only re-delivers the chunk), which keeps fsync
    // latency out of the sink's loop; close() waits for pending deletions.
    this.scheduleRemoval([chunk]);
  }

  rewind(): void {
    for (const chunk of this.queue) {
      if (chunk.state === 'handed') {
        chunk.state = 'queued';
        this.queuedChunks++;
      }
    }
    this.wake();
  }

  async flush(): Promise<void> {
    this.seal();
    await Promise.all(this.queue.map((chunk) => chunk.persisted.catch(() => undefined)));
  }

  stats(): OutboxStats {
    const openCount = this.openChunk.length;
    let oldestTime: number | undefined;
    for (const chunk of this.queue) {
      if (chunk.state !== 'acked') {
        oldestTime = chunk.firstTime;
        break;
      }
    }
    if (oldestTime === undefined && openCount > 0) oldestTime = this.openFirstTime();
    return {
      readings: this.liveReadings + openCount,
      bytes: Math.round(this.totalBytes()),
      chunks: this.liveChunks,
      oldestTime,
      dropped: { ...this.counters.dropped },
      corruptChunks: this.counters.corruptChunks,
      tornFrames: this.counters.tornFrames,
      full: this.full,
      storage: this.store.storageFault?.(),
      unwrittenBytes: this.store.unwrittenBytes?.() ?? 0,
      warning: this.store.warning?.(),
    };
  }

  onFullChange(listener: (full: boolean) => void): void {
    this.fullListeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.opened) await this.flush();
    this.closed = true;
    clearTimeout(this.sealTimer);
    this.sealTimer = undefined;
    clearInterval(this.ageTimer);
    this.wake();
    await Promise.all(this.removals);
    await this.store.close(this.counters);
  }

  // --- internals ---

  private async takeNext(): Promise<OutboxBatch | undefined> {
    for (;;) {
      if (this.closed) return undefined;
      this.expire();
      const chunk = this.firstQueued();
      if (!chunk) {
        // Grown past maxReadings while the sink was behind: full enough to send now.
        if (this.openChunk.length >= this.options.maxReadings) {
          this.seal();
          continue;
        }
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        continue;
      }
      chunk.state = 'handed';
      // From here on it is out for delivery; if a rewind queues it again, it is an ordinary chunk.
      chunk.prefetched = false;
      this.queuedChunks--;
      if (!chunk.readings) {
        try {
          const readings = await (chunk.loading ?? this.store.load(chunk));
          chunk.loading = undefined;
          // While loading it may have been acked or dropped (gone) or rewound (queued again).
          const state = chunk.state as ChunkState;
          if (this.byId.get(chunk.id) !== chunk || state === 'acked') continue;
          chunk.readings = readings;
          if (state !== 'handed') continue;
        } catch (error) {
          chunk.loading = undefined;
          await this.quarantine(chunk, error);
          continue;
        }
      }
      this.prefetchAfter(chunk);
      return { id: chunk.id, readings: chunk.readings! };
    }
  }

  private firstQueued(): Chunk | undefined {
    for (const chunk of this.queue) if (chunk.state === 'queued') return chunk;
    return undefined;
  }

  /**
   * Starts reading the following chunks (PREFETCH_CHUNKS) from disk so the sink does not wait for
   * them: reads queue in the thread pool behind the group commit's fsyncs and renames, often for
   * milliseconds.
   */
  private prefetchAfter(chunk: Chunk): void {
    if (!this.store.evictable) return;
    const index = this.queue.indexOf(chunk);
    let ahead = 0;
    for (let i = index + 1; i < this.queue.length && ahead < PREFETCH_CHUNKS; i++) {
      const candidate = this.queue[i];
      if (candidate.state !== 'queued') continue;
      ahead++;
      if (candidate.readings || candidate.loading) continue;
      // Promised to delivery from here on, like a chunk out for delivery: dropOldest passes over
      // it (otherwise, while it sheds, the chunk read ahead is the next one dropped and the sink
      // always waits for the disk).
      candidate.prefetched = true;
      candidate.loading = this.store.load(candidate);
      candidate.loading.catch(() => undefined); // takeNext sees the error and quarantines.
    }
  }

  /**
   * What is still in the open chunk at the end of this event-loop turn goes to the store's journal
   * in one piece: a few writes per turn, not one per reading, and nothing appended is left only in
   * this process's memory for longer than a turn.
   */
  private scheduleJournal(): void {
    if (!this.store.journal || this.journalScheduled || this.openChunk.length === 0) return;
    this.journalScheduled = true;
    setImmediate(() => {
      this.journalScheduled = false;
      this.journalOpenChunk();
    });
  }

  private journalOpenChunk(): void {
    if (this.closed || this.openChunk.length <= this.openJournaled) return;
    const fresh = this.openJournaled === 0 ? this.openChunk.slice() : this.openChunk.slice(this.openJournaled);
    this.openJournaled = this.openChunk.length;
    this.store.journal!({ id: this.openId, firstTime: this.openFirstTimeMs }, fresh);
  }

  private startOpenChunk(first: Reading): void {
    this.openId = this.nextId++;
    this.openJournaled = 0;
    this.openStartedAt = this.clock.now();
    this.openFirstTimeMs = readingTime(first) ?? this.openStartedAt;
    this.openStartedMono = performance.now();
    // One timer, re-armed when it fires early: chunks sealed by size at thousands per second
    // would otherwise each clear and create a timer.
    if (!this.sealTimer && this.options.maxDelayMs >= 0 && Number.isFinite(this.options.maxDelayMs)) this.armSealTimer(this.options.maxDelayMs);
  }

  private armSealTimer(delayMs: number): void {
    this.sealTimer = setBoundedTimeout(() => {
      this.sealTimer = undefined;
      if (this.openChunk.length === 0 || this.closed) return;
      const remaining = this.options.maxDelayMs - (performance.now() - this.openStartedMono);
      if (remaining > 1) this.armSealTimer(remaining);
      else this.seal();
    }, Math.max(0, delayMs));
  }

  /**
   * A sink with nothing queued gets the open chunk at maxReadings (batch latency as configured);
   * while earlier chunks wait for it, the chunk grows to maxChunkReadings, since it could not be
   * sent sooner anyway (takeNext seals it at once when the sink catches up).
   */
  private sealThreshold(): number {
    const byteCap = Math.min(MAX_CHUNK_BYTES, this.maxBytes * MAX_CHUNK_SHARE_OF_LIMIT);
    const readings = this.queuedChunks > 0 ? Math.max(this.options.maxReadings, this.options.maxChunkReadings ?? 0) : this.options.maxReadings;
    return Math.max(1, Math.min(readings, Math.floor(byteCap / this.bytesPerReading)));
  }

  private seal(): void {
    if (this.openChunk.length === 0 || this.closed) return;
    const readings = this.openChunk;
    this.openChunk = [];
    const journaled = this.openJournaled;
    this.openJournaled = 0;
    const firstTime = this.openFirstTimeMs;
    const lastTime = readingTime(readings[readings.length - 1]) ?? this.clock.now();
    const meta: ChunkMeta = { id: this.openId, count: readings.length, firstTime, lastTime };
    const { bytes, persisted } = this.store.put(meta, readings, journaled);
    // A chunk far from the delivery point keeps no readings in memory: the store can load them
    // (from its write buffer while the write is pending, from disk after).
    const hot = !this.store.evictable || this.queuedChunks < HOT_CHUNKS;
    const chunk: Chunk = { ...meta, bytes, state: 'queued', readings: hot ? readings : undefined, persisted };
    this.bytesPerReading = bytes / readings.length;
    this.queue.push(chunk);
    this.byId.set(chunk.id, chunk);
    this.countLive(chunk, +1);
    this.queuedChunks++;
    persisted.then(
      () => {
        // Memory stays bounded by chunks: a persisted chunk far from the delivery point drops its
        // readings and is read back when handed out.
        if (this.store.evictable && chunk.state === 'queued' && this.queuedChunks > HOT_CHUNKS) chunk.readings = undefined;
        // `block` paused the producers while the disk was behind: writes catching up may resume them.
        if (this.full) this.updateFull();
      },
      () => {
        // Kept in memory, still delivered, and written when the disk lets it: the store retries,
        // and reports the fault (stats().storage) once rather than per chunk.
      },
    );
    this.wake();
  }

  private totalBytes(): number {
    return this.liveBytes + this.openChunk.length * this.bytesPerReading;
  }

  private openFirstTime(): number {
    return this.openFirstTimeMs;
  }

  private countLive(chunk: Chunk, sign: 1 | -1): void {
    this.liveReadings += sign * chunk.count;
    this.liveBytes += sign * chunk.bytes;
    this.liveChunks += sign;
  }

  /**
   * Drops the oldest queued chunks until the total is at most `target`; returns readings dropped.
   * Chunks out for delivery are never dropped: the transport may already have sent them, so they
   * would arrive and be counted as dropped too. Nor are the chunks read ahead for the sink
   * (prefetchAfter). The limit can thus be exceeded by at most the sink's in-flight window and
   * those PREFETCH_CHUNKS chunks.
   */
  private dropOldestUntil(target: number): number {
    let dropped = 0;
    // Under sustained overload this runs for every append: one pass, one removal, one counter save.
    for (let i = 0; i < this.queue.length && this.totalBytes() > target; ) {
      const oldest = this.queue[i];
      if (oldest.state !== 'queued' || oldest.prefetched) {
        i++;
        continue;
      }
      dropped += oldest.count;
      this.forget(oldest);
      this.counters.dropped.dropOldest += oldest.count;
      this.pendingDrops.push(oldest);
    }
    if (dropped > 0) this.flushDrops();
    return dropped;
  }

  private flushDrops(): void {
    const chunks = this.pendingDrops;
    this.pendingDrops = [];
    this.store.saveCounters(this.counters);
    this.scheduleRemoval(chunks);
    this.updateFull();
  }

  private expire(): void {
    if (this.maxAgeMs === Infinity || !this.opened) return;
    const cutoff = this.clock.now() - this.maxAgeMs;
    // A chunk expires when its newest reading is too old, so nothing younger than maxAge is lost;
    // chunks out for delivery are left to their ack, as in dropOldestUntil.
    for (let i = 0; i < this.queue.length; ) {
      const chunk = this.queue[i];
      if (chunk.lastTime >= cutoff) break;
      if (chunk.state === 'queued') this.dropChunk(chunk, 'maxAge');
      else i++;
    }
  }

  private dropChunk(chunk: Chunk, reason: DropReason): void {
    this.forget(chunk);
    this.counters.dropped[reason] += chunk.count;
    this.store.saveCounters(this.counters);
    this.scheduleRemoval([chunk]);
    this.updateFull();
  }

  /** Takes a live chunk out of the queue and the totals. */
  private forget(chunk: Chunk): void {
    if (chunk.state === 'queued') this.queuedChunks--;
    const index = this.queue.indexOf(chunk);
    if (index >= 0) this.queue.splice(index, 1);
    this.byId.delete(chunk.id);
    if (chunk.state !== 'acked') this.countLive(chunk, -1);
    chunk.state = 'acked';
    chunk.readings = undefined;
    chunk.loading = undefined;
  }

  private async quarantine(chunk: Chunk, error: unknown): Promise<void> {
    if (this.byId.get(chunk.id) !== chunk) return;
    const reason = error instanceof Error ? error.message : String(error);
    this.forget(chunk);
    this.counters.corruptChunks++;
    this.counters.dropped.corrupt += chunk.count;
    this.store.saveCounters(this.counters);
    this.updateFull();
    this.logger?.error({ chunk: chunk.id, readings: chunk.count, reason }, 'outbox chunk is corrupt; moved aside');
    try {
      await this.store.quarantine(chunk, reason);
    } catch (moveError) {
      this.logger?.error({ err: moveError, chunk: chunk.id }, 'could not move corrupt outbox chunk aside');
    }
  }

  private scheduleRemoval(chunks: Chunk[]): void {
    // Straight to the store, which orders it after the chunk's own write (or cancels that write).
    const removal = this.store.remove(chunks).catch((error: unknown) => {
      // The chunk stays on disk and is re-delivered after a restart: at-least-once holds.
      this.logger?.error({ err: error }, 'could not delete acknowledged outbox chunks');
    });
    this.removals.add(removal);
    void removal.finally(() => this.removals.delete(removal));
  }

  private updateFull(): void {
    if (!this.full || this.totalBytes() > this.maxBytes * FULL_LOW_WATER) return;
    if (this.store.unwrittenBytes && this.store.unwrittenBytes() > MAX_UNWRITTEN_BYTES * FULL_LOW_WATER) return;
    this.setFull(false);
  }

  private setFull(full: boolean): void {
    if (this.full === full) return;
    this.full = full;
    for (const listener of this.fullListeners) {
      try {
        listener(full);
      } catch (error) {
        this.logger?.error({ err: error }, 'outbox full listener failed');
      }
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

function readingTime(reading: Reading | undefined): number | undefined {
  if (!reading) return undefined;
  const time = Date.parse(reading.time);
  return Number.isNaN(time) ? undefined : time;
}

export function emptyCounters(): Counters {
  return { dropped: emptyDropped(), corruptChunks: 0, tornFrames: 0 };
}
