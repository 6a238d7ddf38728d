// The outbox contract: one durable, bounded FIFO per sink connection between the router and the
// transport. Readings leave it only when the far end acknowledged them.
import type { Reading } from '../api/reading.js';

export type WhenFull = 'dropOldest' | 'dropNewest' | 'block';

export interface OutboxOptions {
  /**
   * Sealing rule: a chunk is sealed at maxReadings readings or maxDelayMs after its first one, so
   * a sink that is waiting gets a batch as soon as it is full.
   */
  maxReadings: number;
  /**
   * While earlier chunks wait for the sink, the open chunk keeps filling up to this many readings
   * (default maxReadings): the sink could not take it sooner, and every chunk costs file
   * operations and an index entry whether it is delivered or dropped. next() may then hand out
   * more than maxReadings readings; the caller sends them in batches of maxReadings.
   */
  maxChunkReadings?: number;
  maxDelayMs: number;
  maxBytes: number;
  maxAgeMs: number;
  whenFull: WhenFull;
}

export interface OutboxBatch {
  /** Monotonic per outbox; acks are applied in this order. */
  id: number;
  readings: Reading[];
}

export interface AppendResult {
  accepted: number;
  /** Readings dropped by this append, by reason (dropNewest, dropOldest, maxAge). */
  dropped: Partial<Record<DropReason, number>>;
  /** True while the outbox is full; with `block` the caller must pause its producers. */
  full: boolean;
}

export type DropReason = 'dropOldest' | 'dropNewest' | 'maxAge' | 'corrupt';

/** Why the outbox cannot write to disk right now (full, read-only, failing); it holds chunks in memory meanwhile. */
export interface StorageFault {
  /** NoSpaceLeft, ReadOnlyFilesystem, IOError, PermissionDenied, StorageWriteFailed. */
  reason: string;
  message: string;
  /** When writes started failing, ms since the epoch. */
  since: number;
}

/** Something the outbox repaired by itself at start-up and wants known (a rebuilt index). */
export interface OutboxWarning {
  reason: string;
  message: string;
}

export interface OutboxStats {
  readings: number;
  bytes: number;
  chunks: number;
  /** Time of the oldest queued reading (ms since epoch), undefined when empty. */
  oldestTime?: number;
  dropped: Record<DropReason, number>;
  corruptChunks: number;
  /**
   * Torn frames found at start-up in chunk files a crash left unsealed: the process died while a
   * frame was being written (or the disk lost it). Every whole frame before one is delivered; the
   * torn bytes cannot say how many readings they held.
   */
  tornFrames: number;
  full: boolean;
  /** Set while chunks cannot be written to disk. */
  storage?: StorageFault;
  /** Bytes of sealed chunks held in memory because they are not on disk yet. */
  unwrittenBytes: number;
  warning?: OutboxWarning;
}

export interface Outbox {
  /** Opens and recovers from the store; after it resolves, next() hands out the backlog first. */
  open(): Promise<void>;
  append(readings: Reading[]): AppendResult;
  /**
   * How many of `count` new readings append() would accept now. Only `dropNewest` refuses
   * anything, so the producer can skip making what would be refused (see refuse()).
   */
  room(count: number): number;
  /** Readings refused before they were made (room() said no): counted as dropNewest, as append() counts its refusals. */
  refuse(count: number): void;
  /** The oldest batch not yet handed out; waits until one is sealed; undefined once closed. */
  next(): Promise<OutboxBatch | undefined>;
  /**
   * The far end acknowledged the batch: it is deleted and never handed out again. Acks may arrive in
   * any order; earlier batches not yet acknowledged stay queued and come back, oldest first, on rewind().
   */
  ack(batch: OutboxBatch): Promise<void>;
  /** Delivery failed: everything handed out and not acknowledged is handed out again, oldest first. */
  rewind(): void;
  /** Seals the open chunk now (used on shutdown and before an update drains). */
  flush(): Promise<void>;
  stats(): OutboxStats;
  /** Called whenever `full` flips, so `block` can pause and resume producers. */
  onFullChange(listener: (full: boolean) => void): void;
  close(): Promise<void>;
}
