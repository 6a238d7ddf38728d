// The durable outbox: one per sink connection, under `<stateDir>/outbox/<namespace>.<sinkName>/`.
//
// Design constraints
// ------------------
// * Readings live in sealed chunk files, never one record per reading: nedb-promises keeps every
//   document in memory (measured: 6.6k inserts/s, ~1 GB RSS for 1M documents), so it only holds
//   small metadata: one index document per sealed chunk ({id, count, bytes, firstTime, lastTime})
//   and one counters document (drops by reason, corrupt chunks, next chunk id, limits for
//   `sensorlet outbox stats`). Memory is bounded by the number of chunks, not readings.
// * Framing (chunk-file.ts): magic "SLC2", then frames, each `u32le length | u32le CRC-32 |
//   payload`, checked one by one: a header frame (id, first sample time), one readings frame per
//   event-loop turn the chunk was open, and a fixed-size end frame (count, last sample time) that
//   seals it. A readings frame holds the compact binary form of reading-columns.ts (shared fields
//   once per frame, 27 bytes per reading: about a fifth of JSON, and several times cheaper to
//   encode, which matters because every reading is encoded whether it is delivered or dropped),
//   or a JSON array when a reading has another shape. A sealed chunk is valid only if every
//   checksum matches, the count is right and the file ends exactly after the end frame. (Chunks of
//   the earlier "SLC1" format, one header and one body frame, are still read.)
// * Sealing: readings are appended synchronously to the open chunk in memory. It is sealed at
//   `maxReadings` readings, `maxDelayMs` after its first reading, at a quarter of `maxBytes` (so
//   dropOldest can always free whole chunks), on flush() and on close(). While sealed chunks are
//   still waiting for the sink, it grows up to `maxChunkReadings` instead (the Sink runner sets
//   2000): the sink could not take it sooner, and under overload the per-chunk file operations
//   and index writes were a large share of the event loop. When the sink asks and nothing else is
//   queued, an open chunk of `maxReadings` or more is sealed at once.
// * Process crashes (kill -9, the OOM killer, a native crash) lose nothing appended: a chunk's file
//   `chunks/<id>.chunk.tmp` is filled as the chunk fills. At the end of each event-loop turn the
//   readings appended to the open chunk during that turn are encoded once, as one frame, and
//   written to the file with a plain synchronous write (no fsync): from then on they are in the
//   kernel's page cache, which survives the process. A chunk sealed within the turn it started
//   (the usual case under load) is written whole at sealing, in one write. So the cost is a write
//   per turn per open chunk, never one per reading, and the encoding is the one sealing needed
//   anyway. Creating the file takes the folder's lock (held by renames, deletions and the folder's
//   fsync), so it is done in the thread pool; a chunk's first turn reaches the kernel once its
//   file is open, usually within a millisecond.
// * fsync policy (unchanged by the above): a sealed chunk's `.tmp` file is fsynced, renamed to
//   `chunks/<id>.chunk`, and the directory is fsynced; only then is it durable against a power cut.
//   Chunks sealed while a commit is in flight are committed as one group with one directory fsync
//   (group commit). No per-reading fsync, nedb write or promise. The index document is written
//   after the rename without fsync: the chunk file, not the index, is the source of truth. A
//   chunk acknowledged (or dropped) before its group commit started is never fsynced: its `.tmp`
//   file is deleted, and the page cache rarely ever reaches the disk.
// * Power cut: what was not fsynced may be lost: the open chunk (written but not synced: at most
//   maxDelayMs of data, and at most maxReadings readings, or maxChunkReadings while earlier chunks
//   wait for the sink) and the sealed chunks whose group commit had not finished (normally the
//   few sealed within the last fsync's time; at most MAX_UNWRITTEN_BYTES when the disk is
//   behind). Their `.tmp` files may then come back empty, short or with torn frames: start-up
//   keeps every whole frame, as below. Everything committed is delivered after restart. An acked
//   chunk's file is deleted at once, in the background, whatever came before it; a chunk acked
//   but not yet deleted is delivered again (at-least-once; consumers dedupe on (device, sensor,
//   seq)).
// * Shedding under overload (core.ts): with `whenFull: dropNewest` a full outbox says so before
//   readings are made (room()), so the Sensor does not make, number-store or encode what would be
//   refused: it counts them (refuse(), exactly as append() counts its refusals) and skips their
//   sequence numbers, so consumers still see the gap. dropOldest must keep every new reading, so
//   it sheds at the other end: whole chunks at the head, whose writes are skipped when they have
//   not started, and no prefetch of a head chunk that is about to be dropped.
// * What a crash leaves, and how open() recovers it, reading no chunk bodies but those of `.tmp`
//   files:
//     - `*.tmp` files (the open chunk, and sealed chunks not committed yet): read frame by frame
//       by their checksums. Every whole frame is kept; a torn last frame (cut short or failing its
//       checksum: the process died mid-write, or a power cut lost unsynced pages) is cut off,
//       logged and counted (stats.tornFrames: the bytes cannot say how many readings it held).
//       The end frame is written if missing, then fsync, rename and a folder fsync, as a group
//       commit would: the chunk is delivered like any other. A file without a whole header holds
//       nothing and is deleted (counted when it was not empty).
//     - a chunk file with no index document (crash between rename and index write): its header
//       and end frames are read (first 4 KiB and last 21 bytes) and it is indexed again.
//     - an index document with no file (crash between delete and index removal): dropped.
//     - a chunk whose size differs from its index (truncated): moved aside to `corrupt/`.
//     - other corruption (bit flips) is found when the chunk is handed out by next(): the chunk is
//       moved aside to `corrupt/`, counted (stats.corruptChunks, dropped.corrupt) and logged, and
//       delivery continues with the next chunk. The outbox never wedges on a bad chunk.
//   Every remaining chunk is queued again, oldest first, before any new reading.
// * Reading back: only handed-out chunks, a few recently sealed ones and two prefetched chunks
//   hold their readings in memory; the rest are read from disk when next() reaches them.
// * Storage faults (ENOSPC, EROFS, EIO, ...) never escape, whether a turn's write, a file's
//   creation or a commit fails: a chunk the disk refuses stays in memory
//   (its encoded form), is still delivered, and its write is retried with a backoff (0.5 s doubling
//   to 5 s) until it succeeds or the chunk is acked or dropped; its partial `.tmp` file is deleted
//   at once so it does not hold the space the retry needs. Memory is the limit then: past
//   MAX_UNWRITTEN_BYTES (core.ts) the whenFull policy applies as if the outbox were full. The fault
//   shows in stats().storage (the Sink's StorageFull condition and metrics) from the first failure
//   to the first write that succeeds; nothing else needs to happen for recovery. Deleting an acked
//   chunk that a read-only disk refuses leaves its file, which is delivered again after a restart.
//   On shutdown, chunks still unwritten are tried once and, if refused, lost (and logged).
// * The index (meta.db) is a cache of the chunk headers and never stops the outbox. nedb refuses a
//   file with more than 10 % damaged lines: it is moved aside (`meta.db.corrupt-<ms>`) and the
//   index rebuilt from the headers, with a warning (stats().warning: the Sink's IndexRebuilt
//   condition). nedb rewrites its file on load and on compaction, which a full or read-only disk
//   refuses: the index is then read as it is into memory and becomes a file again once chunk writes
//   succeed (checked every 10 s). Failed index updates are logged once, not per update: a chunk
//   without index document is re-indexed at start-up, a document without chunk is dropped. Index
//   documents that lost their shape are ignored (their chunks are re-read from their headers).
//   nedb's own compaction timer leaves its failures unhandled, so compaction runs on ours.
import { fsyncDirAsync, isStorageError, storageReason } from '../storage/durable-file.js';
import { mkdir, open as openFile, readdir, rename as renamePromise, rm, stat } from 'node:fs/promises';
import * as fsCallback from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import Datastore from 'nedb-promises';
import type { Reading } from '../api/reading.js';
import type { Clock } from '../observability/clock.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import {
  CHUNK_HEADER_PROBE_BYTES, ChunkCorruptError, decodeChunk, decodeChunkHeader, encodeChunk, encodeChunkStart, encodeEndFrame, encodeReadingsFrame, END_FRAME_BYTES, scanChunk, type ChunkMeta,
} from './chunk-file.js';
import { emptyCounters, OutboxCore, type ChunkStore, type Counters, type RecoveredState, type SealedChunkInfo } from './core.js';
import type { DropReason, Outbox, OutboxOptions, OutboxWarning, StorageFault } from './outbox.js';
import { readNedbFile } from './nedb-file.js';
import { messageOf } from '../api/errors.js';

// The hot path (a write, read and delete per chunk, thousands of chunks/s under load) uses the
// callback API on plain descriptors: FileHandle objects cost several times more main-thread time.
const fdOpen = promisify(fsCallback.open);
const fdWrite = promisify(fsCallback.write) as (fd: number, buffer: Buffer, offset: number, length: number, position: number | null) => Promise<{ bytesWritten: number }>;
const fdSync = promisify(fsCallback.fsync);
const fdClose = promisify(fsCallback.close);
const fdTruncate = promisify(fsCallback.ftruncate);
const rename = promisify(fsCallback.rename);
const unlink = promisify(fsCallback.unlink);
const readFile = promisify(fsCallback.readFile) as (file: string) => Promise<Buffer>;

type DatastoreInstance = Datastore<ChunkIndexDoc | CountersDoc>;

export const CHUNKS_DIR = 'chunks';
export const CORRUPT_DIR = 'corrupt';
export const META_FILE = 'meta.db';
const CHUNK_SUFFIX = '.chunk';
const TMP_SUFFIX = '.tmp';
const COUNTERS_ID = 'counters';
const COUNTERS_SAVE_DELAY_MS = 500;
/** nedb rewrites its append-only file at this interval so acks do not grow it forever. */
const COMPACTION_INTERVAL_MS = 10 * 60 * 1000;
const STAT_CONCURRENCY = 64;
/** Chunk writes that failed (disk full, read-only, I/O error) are tried again after this, doubling up to the cap. */
const WRITE_RETRY_BASE_MS = 500;
const WRITE_RETRY_CAP_MS = 5000;
/** How often an index that fell back to memory tries to become a file again once chunk writes work. */
const INDEX_REATTACH_MS = 10_000;
/** Sealed chunk files waiting for their group commit keep their descriptor open up to this many; beyond, it is opened again to sync. */
const MAX_OPEN_CHUNK_FILES = 128;

export interface ChunkIndexDoc extends SealedChunkInfo {
  _id: string;
  kind: 'chunk';
}

export interface CountersDoc extends Counters {
  _id: typeof COUNTERS_ID;
  kind: 'counters';
  nextId: number;
  maxBytes: number;
  whenFull: string;
}

export function chunkFileName(id: number): string {
  return `${String(id).padStart(12, '0')}${CHUNK_SUFFIX}`;
}

export function chunkIdOf(fileName: string): number | undefined {
  if (!fileName.endsWith(CHUNK_SUFFIX)) return undefined;
  const id = Number(fileName.slice(0, -CHUNK_SUFFIX.length));
  return Number.isSafeInteger(id) && id > 0 ? id : undefined;
}

function indexId(chunkId: number): string {
  return `c${chunkId}`;
}

function indexDoc(info: SealedChunkInfo): ChunkIndexDoc {
  return { _id: indexId(info.id), kind: 'chunk', id: info.id, count: info.count, bytes: info.bytes, firstTime: info.firstTime, lastTime: info.lastTime };
}

interface WriteJob {
  info: SealedChunkInfo;
  data: Buffer;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * A chunk's `.tmp` file while the chunk fills and until its group commit: frames are handed to the
 * kernel as they are encoded (a plain write, no fsync).
 */
interface ChunkFileWriter {
  id: number;
  /** Every frame encoded so far, while the chunk is open (put() joins them into the sealed chunk). */
  frames: Buffer[];
  /** Encoded, not yet handed to the kernel. */
  queued: Buffer[];
  /** Bytes handed to the kernel: the file's length once `queued` is empty. */
  written: number;
  fd: number | undefined;
  /** Set while the file is being opened (in the thread pool): writes wait for it. */
  opening: Promise<void> | undefined;
  sealed: boolean;
  /** A write failed: the file is gone and the group commit writes the chunk whole (as after any storage fault). */
  failed: boolean;
  /** Acked or dropped: the file is deleted and nothing more is written. */
  cancelled: boolean;
}

/** A group commit in progress: these chunk ids are being written. */
interface WriteGroup {
  ids: Set<number>;
  done: Promise<void>;
}

class DiskChunkStore implements ChunkStore {
  readonly evictable = true;
  private readonly chunksDir: string;
  private readonly corruptDir: string;
  private db!: DatastoreInstance;
  /** Sealed, not yet being written; acked or dropped before their turn, they are never written. */
  private readonly pendingWrites = new Map<number, WriteJob>();
  private currentGroup: WriteGroup | undefined;
  /** Bytes of pendingWrites plus the group being written: sealed chunks held in memory for the disk. */
  private pendingBytes = 0;
  private groupBytes = 0;
  /**
   * Encoded chunks not written yet, by id: load() decodes them from here, so the core need not keep
   * their readings (several times the encoded size) in memory while the disk catches up. A chunk
   * whose write failed stays here until it is acked or dropped: it is still delivered.
   */
  private readonly unwrittenData = new Map<number, Buffer>();
  private writing: Promise<void> | undefined;
  /** Serializes index updates so a chunk's insert always precedes its removal. */
  private indexChain: Promise<unknown> = Promise.resolve();
  private counters: Counters = emptyCounters();
  private nextId = 1;
  private countersTimer: NodeJS.Timeout | undefined;
  private compactionTimer: NodeJS.Timeout | undefined;
  /** Set while chunk writes fail; cleared by the first write that succeeds. */
  private fault: StorageFault | undefined;
  private faultError: unknown;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay = WRITE_RETRY_BASE_MS;
  /** Index updates failing (the index is a cache of the chunk headers: logged once, not per update). */
  private indexFailing = false;
  /** The index lives in memory only: meta.db could not be loaded or rewritten (full or read-only disk). */
  private indexInMemory = false;
  private lastReattach = 0;
  private startupWarning: OutboxWarning | undefined;
  private readonly writtenListeners: Array<() => void> = [];
  private closing = false;
  /** Chunk files being filled or waiting for their group commit, by chunk id. */
  private readonly writers = new Map<number, ChunkFileWriter>();
  private openFds = 0;
  /** File operations not awaited by anyone else (deleting a cancelled chunk's file): close() waits for them. */
  private readonly fileOps = new Set<Promise<void>>();
  /** Frames found torn (cut short or failing their checksum) in `.tmp` files at start-up. */
  private tornAtStart = 0;

  constructor(
    private readonly dir: string,
    private readonly options: OutboxOptions,
    private readonly logger: Logger,
  ) {
    this.chunksDir = path.join(dir, CHUNKS_DIR);
    this.corruptDir = path.join(dir, CORRUPT_DIR);
  }

  async recover(): Promise<RecoveredState> {
    // A folder that cannot be created (read-only or full disk) holds no backlog; writes retry later.
    await mkdir(this.chunksDir, { recursive: true }).catch((error) => this.storageFailed(error, 'creating the outbox folder'));
    await mkdir(this.corruptDir, { recursive: true }).catch(() => undefined);
    this.db = await this.openIndex();
    this.startCompaction();

    const docs = (await this.db.find({})) as Array<ChunkIndexDoc | CountersDoc>;
    const indexed = new Map<number, ChunkIndexDoc>();
    let countersDoc: CountersDoc | undefined;
    for (const doc of docs) {
      // A document that lost its shape (outside damage) is ignored: its chunk is re-read from its header.
      if (doc.kind === 'chunk' && validIndexDoc(doc)) indexed.set(doc.id, doc);
      else if (doc.kind === 'counters') countersDoc = doc;
    }
    if (countersDoc) {
      this.counters = { dropped: { ...emptyCounters().dropped, ...countersDoc.dropped }, corruptChunks: countersDoc.corruptChunks ?? 0, tornFrames: countersDoc.tornFrames ?? 0 };
      this.nextId = Number.isSafeInteger(countersDoc.nextId) ? countersDoc.nextId : 1;
    }

    const files = await readdir(this.chunksDir).catch((): string[] => []);
    const chunks: SealedChunkInfo[] = [];
    const unindexed: number[] = [];
    const onDisk = new Set<number>();
    const tmpFiles: string[] = [];
    for (const file of files) {
      if (file.endsWith(TMP_SUFFIX)) {
        tmpFiles.push(file);
        continue;
      }
      const id = chunkIdOf(file);
      if (id === undefined) continue;
      onDisk.add(id);
      this.nextId = Math.max(this.nextId, id + 1);
      const doc = indexed.get(id);
      if (doc) chunks.push({ id, count: doc.count, bytes: doc.bytes, firstTime: doc.firstTime, lastTime: doc.lastTime });
      else unindexed.push(id);
    }

    const staleDocs = [...indexed.keys()].filter((id) => !onDisk.has(id));
    if (staleDocs.length > 0) await this.db.remove({ _id: { $in: staleDocs.map(indexId) } }, { multi: true }).catch((error) => this.indexFailed(error));

    const corrupt: SealedChunkInfo[] = [];
    // Truncation shows as a size that differs from the index; stat is cheap, bodies are not read.
    await forEachLimited(chunks, STAT_CONCURRENCY, async (chunk) => {
      const size = await stat(this.chunkPath(chunk.id)).then((s) => s.size, () => -1);
      if (size !== chunk.bytes) corrupt.push(chunk);
    });
    const reindexed: SealedChunkInfo[] = [];
    // A chunk being filled or waiting for its group commit when the process died: after a process
    // crash its bytes are intact in the page cache, and every frame carries its checksum.
    let recoveredTmp = false;
    for (const file of tmpFiles.sort()) {
      const id = chunkIdOf(file.slice(0, -TMP_SUFFIX.length));
      if (id !== undefined && !onDisk.has(id)) {
        const info = await this.recoverTmp(id);
        if (info) {
          reindexed.push(info);
          onDisk.add(id);
          this.nextId = Math.max(this.nextId, id + 1);
          recoveredTmp = true;
          continue;
        }
      }
      // Unreadable, empty, or superseded by the renamed chunk: nothing in it to keep.
      await unlink(path.join(this.chunksDir, file)).catch(() => undefined); // read-only: left for a later start
    }
    if (recoveredTmp) await fsyncDirAsync(this.chunksDir).catch(() => undefined);
    this.counters.tornFrames += this.tornAtStart;
    for (const id of unindexed) {
      const info = await this.readHeader(id);
      if (info) reindexed.push(info);
      else corrupt.push({ id, count: 0, bytes: 0, firstTime: 0, lastTime: 0 });
    }
    if (reindexed.length > 0) await this.db.insert(reindexed.map(indexDoc)).catch((error) => this.indexFailed(error));

    const corruptIds = new Set(corrupt.map((chunk) => chunk.id));
    for (const chunk of corrupt) {
      this.counters.corruptChunks++;
      this.counters.dropped.corrupt += chunk.count;
      this.logger.error({ chunk: chunk.id, readings: chunk.count }, 'outbox chunk is truncated or unreadable; moved aside');
      await this.quarantine(chunk, 'truncated or unreadable at start-up');
    }
    const queued = [...chunks.filter((chunk) => !corruptIds.has(chunk.id)), ...reindexed].sort((a, b) => a.id - b.id);
    if (this.startupWarning) this.logger.warn({ reason: this.startupWarning.reason, chunks: reindexed.length }, this.startupWarning.message);
    void this.saveCountersNow().catch(() => undefined);
    return { chunks: queued, counters: this.counters, nextId: this.nextId };
  }

  /**
   * meta.db through nedb. The index is a cache of what the chunk headers hold, so it never stops the
   * outbox: a damaged file (nedb refuses one with more than 10 % bad lines) is moved aside and the
   * index rebuilt from the headers; a file nedb cannot rewrite (it compacts on load: impossible on
   * a full or read-only disk) is read as it is into an index kept in memory, which becomes a file
   * again once chunk writes work (reattachIndex).
   */
  private async openIndex(): Promise<DatastoreInstance> {
    const file = path.join(this.dir, META_FILE);
    const persistent = Datastore.create({ filename: file, autoload: false }) as DatastoreInstance;
    try {
      await persistent.load();
      return persistent;
    } catch (error) {
      if (!isStorageError(error)) {
        const aside = `${file}.corrupt-${Date.now()}`;
        await renamePromise(file, aside).catch(() => undefined);
        this.startupWarning = {
          reason: 'OutboxIndexRebuilt',
          message: `the outbox index ${META_FILE} was unreadable (${messageOf(error)}); moved aside and rebuilt from the chunk files`,
        };
        const fresh = Datastore.create({ filename: file, autoload: false }) as DatastoreInstance;
        try {
          await fresh.load();
          return fresh;
        } catch (freshError) {
          return this.memoryIndex(undefined, freshError);
        }
      }
      return this.memoryIndex(file, error);
    }
  }

  /** An index in memory, filled from meta.db as it is on disk (when readable). */
  private async memoryIndex(file: string | undefined, cause: unknown): Promise<DatastoreInstance> {
    this.indexInMemory = true;
    this.indexFailed(cause);
    const db = Datastore.create({ inMemoryOnly: true }) as DatastoreInstance;
    await db.load();
    const saved = file ? await readNedbFile(file).catch(() => new Map<string, Record<string, unknown>>()) : new Map<string, Record<string, unknown>>();
    if (saved.size > 0) await db.insert([...saved.values()] as unknown as Array<ChunkIndexDoc | CountersDoc>);
    return db;
  }

  /**
   * Moves an index kept in memory back to meta.db: its documents are written as a complete nedb
   * file (temp, fsync, rename), which nedb then loads. Runs in the index chain, so no update interleaves.
   */
  private reattachIndex(): void {
    if (!this.indexInMemory || this.closing || Date.now() - this.lastReattach < INDEX_REATTACH_MS) return;
    this.lastReattach = Date.now();
    void this.queueIndex(async () => {
      const file = path.join(this.dir, META_FILE);
      const temp = `${file}.rebuild`;
      const docs = (await this.db.find({})) as Array<ChunkIndexDoc | CountersDoc>;
      try {
        const handle = await openFile(temp, 'w');
        try {
          await handle.writeFile(docs.map((doc) => JSON.stringify(doc)).join('\n') + '\n');
          await handle.sync();
        } finally {
          await handle.close();
        }
        await renamePromise(temp, file);
        const persistent = Datastore.create({ filename: file, autoload: false }) as DatastoreInstance;
        await persistent.load();
        this.db = persistent;
        this.indexInMemory = false;
        this.logger.info({ chunks: docs.length }, 'outbox index written to disk again');
      } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        this.indexFailed(error);
      }
    }).catch(() => undefined);
  }

  /** nedb's own autocompaction timer leaves its failures unhandled (a crash on a full disk): this one catches them. */
  private startCompaction(): void {
    this.compactionTimer = setInterval(() => {
      if (this.indexInMemory) return;
      void this.queueIndex(() => (this.db as unknown as { __original: { compactDatafileAsync(): Promise<void> } }).__original.compactDatafileAsync()).catch(() => undefined);
    }, COMPACTION_INTERVAL_MS);
    this.compactionTimer.unref();
  }

  private indexFailed(error: unknown): void {
    if (this.indexFailing) return;
    this.indexFailing = true;
    this.logger.warn({ reason: storageReason(error), err: messageOf(error) }, 'outbox index update failed; the chunk files stay the source of truth and start-up re-indexes them');
  }

  /** Chunk writes fail: held in memory (bounded by the core), retried with backoff, reported once. */
  private storageFailed(error: unknown, what: string): void {
    this.faultError = error;
    const reason = storageReason(error);
    if (this.fault?.reason === reason) return;
    this.fault = { reason, message: `${what} failed: ${messageOf(error)}`, since: this.fault?.since ?? Date.now() };
    this.logger.error({ reason, err: messageOf(error) }, 'outbox cannot write to disk; chunks are kept in memory and written when it can');
  }

  storageFault(): StorageFault | undefined {
    return this.fault;
  }

  warning(): OutboxWarning | undefined {
    return this.startupWarning;
  }

  onWritten(listener: () => void): void {
    this.writtenListeners.push(listener);
  }

  /**
   * Makes a `.tmp` chunk file left by a crash a sealed chunk again, as its group commit would have:
   * every whole frame is kept, a torn last frame is cut off and counted, the end frame is written,
   * then fsync and rename. Undefined when there is nothing to keep or it cannot be done (read-only).
   */
  private async recoverTmp(id: number): Promise<SealedChunkInfo | undefined> {
    const temp = this.chunkPath(id) + TMP_SUFFIX;
    let data: Buffer;
    try {
      data = await readFile(temp);
    } catch {
      return undefined;
    }
    let scan: ReturnType<typeof scanChunk>;
    try {
      scan = scanChunk(data);
      if (scan.id !== id) throw new ChunkCorruptError(`file of chunk ${id} holds chunk ${scan.id}`);
    } catch (error) {
      // Not even a whole header: the process died as the file was created.
      if (data.length > 0) {
        this.tornAtStart++;
        this.logger.warn({ chunk: id, bytes: data.length, reason: messageOf(error) }, 'outbox chunk file left by a crash holds no whole frame; deleted');
      }
      return undefined;
    }
    if (scan.torn) {
      this.tornAtStart++;
      this.logger.warn({ chunk: id, readings: scan.readings.length, tornBytes: data.length - scan.wholeBytes, reason: scan.torn }, 'outbox chunk file left by a crash ends in a torn frame; every whole frame before it is kept');
    }
    const count = scan.readings.length;
    if (count === 0) return undefined;
    const sealed = scan.sealed !== undefined && scan.sealed.count === count && !scan.torn;
    const lastTime = sealed ? scan.sealed!.lastTime : (readingTimeOf(scan.readings[count - 1]) ?? scan.firstTime);
    const bytes = sealed ? data.length : scan.wholeBytes - (scan.sealed ? END_FRAME_BYTES : 0) + END_FRAME_BYTES;
    try {
      const fd = await fdOpen(temp, 'r+');
      try {
        if (!sealed) {
          // An end frame with the wrong count (never written by the agent) is replaced too.
          const keep = scan.sealed ? scan.wholeBytes - END_FRAME_BYTES : scan.wholeBytes;
          await fdTruncate(fd, keep);
          await writeAll(fd, encodeEndFrame(count, lastTime), keep);
        }
        await fdSync(fd);
      } finally {
        await fdClose(fd);
      }
      await rename(temp, this.chunkPath(id));
    } catch (error) {
      this.logger.error({ chunk: id, readings: count, reason: storageReason(error), err: messageOf(error) }, 'could not recover an outbox chunk file left by a crash; it stays for a later start');
      return undefined;
    }
    this.logger.info({ chunk: id, readings: count }, 'outbox chunk recovered from the file a crash left');
    return { id, count, bytes, firstTime: scan.firstTime, lastTime };
  }

  /** The header of a chunk the index does not know, or undefined when it cannot be read. */
  private async readHeader(id: number): Promise<SealedChunkInfo | undefined> {
    try {
      const handle = await openFile(this.chunkPath(id), 'r');
      try {
        const { size } = await handle.stat();
        const probe = Buffer.alloc(Math.min(size, CHUNK_HEADER_PROBE_BYTES));
        await handle.read(probe, 0, probe.length, 0);
        const suffix = Buffer.alloc(Math.min(size, END_FRAME_BYTES));
        await handle.read(suffix, 0, suffix.length, size - suffix.length);
        const meta = decodeChunkHeader(probe, suffix);
        if (meta.id !== id) return undefined;
        return { ...meta, bytes: size };
      } finally {
        await handle.close();
      }
    } catch {
      return undefined;
    }
  }

  journal(chunk: { id: number; firstTime: number }, readings: Reading[]): void {
    let writer = this.writers.get(chunk.id);
    if (!writer) {
      writer = this.newWriter(chunk.id);
      this.pushFrame(writer, encodeChunkStart(chunk.id, chunk.firstTime));
    }
    this.pushFrame(writer, encodeReadingsFrame(readings));
    this.handToKernel(writer);
  }

  private newWriter(id: number): ChunkFileWriter {
    // While the disk refuses writes the chunk stays in memory and the group commit's retries write it.
    const writer: ChunkFileWriter = { id, frames: [], queued: [], written: 0, fd: undefined, opening: undefined, sealed: false, failed: this.fault !== undefined, cancelled: false };
    this.writers.set(id, writer);
    return writer;
  }

  private pushFrame(writer: ChunkFileWriter, frame: Buffer): void {
    writer.frames.push(frame);
    if (!writer.failed) writer.queued.push(frame);
  }

  /**
   * Hands what the writer holds to the kernel now, with a synchronous write (no fsync): once it
   * returns, a process crash cannot lose it. A write into the page cache takes microseconds, while
   * the thread pool would queue it behind the group commit's fsyncs. Creating the file is not done
   * here: it takes the folder's lock, which renames, deletions and the folder's fsync hold for
   * long, so the file is opened in the thread pool and its first frames are written once it is.
   */
  private handToKernel(writer: ChunkFileWriter): void {
    if (writer.cancelled || writer.failed || writer.queued.length === 0) return;
    if (writer.fd === undefined) {
      writer.opening ??= this.openWriterFile(writer);
      return;
    }
    const data = writer.queued.length === 1 ? writer.queued[0] : Buffer.concat(writer.queued);
    writer.queued = [];
    try {
      writeAllSync(writer.fd, data, writer.written);
      writer.written += data.length;
      // Many sealed chunks waiting for a slow disk must not hold a descriptor each.
      if (writer.sealed && this.openFds > MAX_OPEN_CHUNK_FILES) this.closeWriterFd(writer);
    } catch (error) {
      this.writerFailed(writer, error);
    }
  }

  private async openWriterFile(writer: ChunkFileWriter): Promise<void> {
    try {
      const fd = await fdOpen(this.chunkPath(writer.id) + TMP_SUFFIX, writer.written === 0 ? 'w' : 'r+');
      writer.fd = fd;
      this.openFds++;
    } catch (error) {
      writer.opening = undefined;
      this.writerFailed(writer, error);
      return;
    }
    writer.opening = undefined;
    if (writer.cancelled) {
      this.closeWriterFd(writer);
      this.removeTmp(writer);
      return;
    }
    this.handToKernel(writer);
  }

  /**
   * The same fault handling as chunk writes: reported once, the chunk kept in memory and written
   * whole by the group commit when the disk takes it.
   */
  private writerFailed(writer: ChunkFileWriter, error: unknown): void {
    writer.failed = true;
    writer.queued = [];
    this.closeWriterFd(writer);
    this.removeTmp(writer);
    this.storageFailed(error, 'writing outbox chunks');
  }

  /** Deletes a writer's `.tmp` file in the background; close() waits for it. */
  private removeTmp(writer: ChunkFileWriter): void {
    const done = unlink(this.chunkPath(writer.id) + TMP_SUFFIX).catch(() => undefined);
    this.fileOps.add(done);
    void done.finally(() => this.fileOps.delete(done));
  }

  private closeWriterFd(writer: ChunkFileWriter): void {
    const fd = writer.fd;
    if (fd === undefined) return;
    writer.fd = undefined;
    this.openFds--;
    try {
      fsCallback.closeSync(fd);
    } catch {
      // close reports errors of earlier writes on some file systems; fsync or the retry sees them
    }
  }

  put(meta: ChunkMeta, readings: Reading[], journaled: number): { bytes: number; persisted: Promise<void> } {
    let writer = journaled > 0 ? this.writers.get(meta.id) : undefined;
    let data: Buffer;
    if (!writer) {
      // Sealed within the turn it started (the usual case under load): one buffer, written in one go.
      data = encodeChunk(meta, readings);
      writer = this.newWriter(meta.id);
      if (!writer.failed) writer.queued.push(data);
    } else {
      if (journaled < readings.length) this.pushFrame(writer, encodeReadingsFrame(readings.slice(journaled)));
      this.pushFrame(writer, encodeEndFrame(meta.count, meta.lastTime));
      data = Buffer.concat(writer.frames);
    }
    writer.frames = [];
    writer.sealed = true;
    // To the kernel now (a process crash loses nothing sealed); fsync and rename in the group commit.
    this.handToKernel(writer);
    const info: SealedChunkInfo = { ...meta, bytes: data.length };
    this.nextId = Math.max(this.nextId, meta.id + 1);
    const persisted = new Promise<void>((resolve, reject) => this.pendingWrites.set(meta.id, { info, data, resolve, reject }));
    this.pendingBytes += data.length;
    this.unwrittenData.set(meta.id, data);
    // While the disk refuses writes, flush() and shutdown must not wait for the next retry.
    if (this.fault) this.pendingWrites.get(meta.id)!.reject(this.faultError);
    this.startWriting();
    return { bytes: data.length, persisted };
  }

  private startWriting(): void {
    if (this.writing || this.retryTimer || this.pendingWrites.size === 0) return;
    // Cleared in a callback, never inside writeLoop: a loop that returns before its first await
    // would clear it before the assignment and leave a settled promise here for ever.
    this.writing = this.writeLoop().finally(() => (this.writing = undefined));
  }

  /**
   * Group commit: writes everything sealed so far, then one directory fsync for the group. A group
   * the disk refuses goes back to the pending set (what was acked or dropped meanwhile leaves it as
   * usual) and is tried again after a backoff; its `persisted` promises reject at the first failure
   * so that flush() and shutdown never wait for a disk that may not come back.
   */
  private async writeLoop(): Promise<void> {
    while (this.pendingWrites.size > 0 && !this.retryTimer) {
      const jobs = [...this.pendingWrites.values()];
      this.pendingWrites.clear();
      this.groupBytes = this.pendingBytes;
      this.pendingBytes = 0;
      let finish!: () => void;
      this.currentGroup = { ids: new Set(jobs.map((job) => job.info.id)), done: new Promise<void>((resolve) => (finish = resolve)) };
      let failure: unknown;
      try {
        // The folder may be what failed (created on a read-only disk that became writable).
        if (this.fault) await mkdir(this.chunksDir, { recursive: true });
        await Promise.all(jobs.map((job) => this.commitChunkFile(job)));
        await fsyncDirAsync(this.chunksDir);
      } catch (error) {
        failure = error;
      }
      const retried: WriteJob[] = [];
      if (failure === undefined) {
        for (const job of jobs) {
          this.unwrittenData.delete(job.info.id);
          job.resolve();
        }
        const docs = jobs.map((job) => indexDoc(job.info));
        // Queued before `finish`, so a removal waiting for this group follows the insert.
        void this.queueIndex(() => this.db.insert(docs)).catch(() => undefined);
      } else {
        for (const job of jobs) {
          job.reject(failure);
          // Acked or dropped while the group was out: its data is gone, it is not written.
          if (this.unwrittenData.has(job.info.id)) retried.push(job);
        }
      }
      this.currentGroup = undefined;
      this.groupBytes = 0;
      finish();
      if (failure === undefined) {
        this.writeSucceeded();
      } else {
        // Back in front of anything sealed meanwhile, so ids stay in order.
        const later = [...this.pendingWrites.values()];
        for (const job of later) job.reject(failure);
        this.pendingWrites.clear();
        for (const job of [...retried, ...later]) this.pendingWrites.set(job.info.id, job);
        for (const job of retried) this.pendingBytes += job.data.length;
        this.storageFailed(failure, 'writing outbox chunks');
        if (this.closing) return;
        // Files of this group may exist as complete chunks already: rewriting them is harmless.
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.startWriting();
        }, this.retryDelay);
        this.retryTimer.unref();
        this.retryDelay = Math.min(WRITE_RETRY_CAP_MS, this.retryDelay * 2);
      }
    }
  }

  private writeSucceeded(): void {
    this.retryDelay = WRITE_RETRY_BASE_MS;
    if (this.fault) {
      this.logger.info({ reason: this.fault.reason, failingForMs: Date.now() - this.fault.since }, 'outbox writes to disk again');
      this.fault = undefined;
      this.faultError = undefined;
      for (const listener of this.writtenListeners) listener();
    }
    this.reattachIndex();
  }

  /**
   * Makes a sealed chunk durable: its `.tmp` file, already handed to the kernel, is fsynced and
   * renamed. A chunk whose file failed (or that sealed while the disk refused writes) is written
   * whole, as every retry is.
   */
  private async commitChunkFile(job: WriteJob): Promise<void> {
    const id = job.info.id;
    const writer = this.writers.get(id);
    if (writer?.opening) await writer.opening;
    if (writer && !writer.failed) this.handToKernel(writer);
    if (writer && !writer.failed) {
      const temp = this.chunkPath(id) + TMP_SUFFIX;
      try {
        let fd: number;
        if (writer.fd !== undefined) {
          fd = writer.fd; // closed below whatever happens
          writer.fd = undefined;
          this.openFds--;
        } else {
          fd = await fdOpen(temp, 'r+');
        }
        try {
          await fdSync(fd);
        } finally {
          await fdClose(fd).catch(() => undefined);
        }
        await rename(temp, this.chunkPath(id));
      } catch (error) {
        // Written whole on the retry: a partial temp file on a full disk holds the space it needs.
        writer.failed = true;
        await unlink(temp).catch(() => undefined);
        throw error;
      }
    } else {
      await this.writeChunkFile(id, job.data);
    }
    this.writers.delete(id);
  }

  /** Acked or dropped before its group commit: its `.tmp` file is deleted and nothing more is written. */
  private cancelWriter(id: number): void {
    const writer = this.writers.get(id);
    if (!writer) return;
    this.writers.delete(id);
    writer.cancelled = true;
    writer.queued = [];
    writer.frames = [];
    // A file still being opened is deleted once it is (openWriterFile).
    if (writer.opening || writer.failed) return;
    const created = writer.fd !== undefined || writer.written > 0;
    this.closeWriterFd(writer);
    if (created) this.removeTmp(writer);
  }

  private async writeChunkFile(id: number, data: Buffer): Promise<void> {
    const final = this.chunkPath(id);
    const temp = final + TMP_SUFFIX;
    try {
      const fd = await fdOpen(temp, 'w');
      try {
        await writeAll(fd, data, 0);
        await fdSync(fd);
      } finally {
        await fdClose(fd);
      }
      await rename(temp, final);
    } catch (error) {
      // A partial temp file on a full disk holds the very space the retry needs.
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  unwrittenBytes(): number {
    return this.pendingBytes + this.groupBytes;
  }

  isUnwritten(id: number): boolean {
    return this.pendingWrites.has(id);
  }

  async load(chunk: SealedChunkInfo): Promise<Reading[]> {
    let data: Buffer | undefined = this.unwrittenData.get(chunk.id);
    try {
      data ??= await readFile(this.chunkPath(chunk.id));
    } catch (error) {
      throw new ChunkCorruptError(`chunk ${chunk.id} unreadable: ${(error as Error).message}`);
    }
    const { meta, readings } = decodeChunk(data);
    if (meta.id !== chunk.id) throw new ChunkCorruptError(`chunk file ${chunk.id} holds chunk ${meta.id}`);
    return readings;
  }

  async remove(chunks: SealedChunkInfo[]): Promise<void> {
    // Acked before its write started (a sink that keeps up while the disk lags): skip the write.
    const written: SealedChunkInfo[] = [];
    for (const chunk of chunks) {
      const job = this.pendingWrites.get(chunk.id);
      if (job) {
        this.pendingWrites.delete(chunk.id);
        this.pendingBytes -= job.data.length;
        this.unwrittenData.delete(chunk.id);
        this.cancelWriter(chunk.id);
        job.resolve();
      } else {
        written.push(chunk);
      }
    }
    for (const chunk of written) this.unwrittenData.delete(chunk.id);
    if (written.length === 0) return;
    const group = this.currentGroup;
    if (group && written.some((chunk) => group.ids.has(chunk.id))) await group.done;
    // File first: a crash after it leaves an index document without file, which open() drops.
    // A read-only disk keeps the file: it is delivered again after a restart (at-least-once).
    await Promise.all(written.map((chunk) => unlink(this.chunkPath(chunk.id)).catch(ignoreMissingOrStorage)));
    // By _id, which nedb indexes; a query on other fields scans every document.
    const ids = written.map((chunk) => indexId(chunk.id));
    await this.queueIndex(() => this.db.remove({ _id: { $in: ids } }, { multi: true })).catch(() => undefined);
  }

  async quarantine(chunk: SealedChunkInfo, reason: string): Promise<void> {
    const target = path.join(this.corruptDir, `${chunkFileName(chunk.id)}.${Date.now()}`);
    await rename(this.chunkPath(chunk.id), target).catch(ignoreMissingOrStorage);
    this.logger.warn({ chunk: chunk.id, file: target, reason }, 'corrupt outbox chunk moved aside');
    await this.queueIndex(() => this.db.remove({ _id: indexId(chunk.id) }, { multi: true })).catch(() => undefined);
  }

  saveCounters(counters: Counters): void {
    this.counters = counters;
    if (this.countersTimer) return;
    this.countersTimer = setTimeout(() => {
      this.countersTimer = undefined;
      this.saveCountersNow();
    }, COUNTERS_SAVE_DELAY_MS);
    this.countersTimer.unref();
  }

  private saveCountersNow(): Promise<unknown> {
    const doc: CountersDoc = {
      _id: COUNTERS_ID,
      kind: 'counters',
      dropped: { ...this.counters.dropped } as Record<DropReason, number>,
      corruptChunks: this.counters.corruptChunks,
      tornFrames: this.counters.tornFrames,
      nextId: this.nextId,
      maxBytes: Number.isFinite(this.options.maxBytes) ? this.options.maxBytes : 0,
      whenFull: this.options.whenFull,
    };
    return this.queueIndex(() => this.db.update({ _id: COUNTERS_ID }, doc, { upsert: true }));
  }

  private queueIndex<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.indexChain.then(operation);
    this.indexChain = result.then(
      () => {
        this.indexFailing = false;
      },
      (error: unknown) => this.indexFailed(error),
    );
    return result;
  }

  async close(counters: Counters): Promise<void> {
    this.closing = true;
    // One last attempt for chunks still waiting on a faulty disk; what it refuses is lost with the process.
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.startWriting();
    }
    while (this.writing) await this.writing;
    await Promise.all(this.fileOps);
    for (const writer of this.writers.values()) {
      if (writer.opening) await writer.opening;
      this.closeWriterFd(writer);
    }
    await Promise.all(this.fileOps);
    if (this.pendingWrites.size > 0) {
      const readings = [...this.pendingWrites.values()].reduce((sum, job) => sum + job.info.count, 0);
      this.logger.error({ chunks: this.pendingWrites.size, readings, reason: this.fault?.reason }, 'outbox chunks could not be written before shutdown; they are lost');
    }
    clearInterval(this.compactionTimer);
    clearTimeout(this.countersTimer);
    this.countersTimer = undefined;
    this.counters = counters;
    await this.saveCountersNow().catch(() => undefined);
    await this.indexChain;
  }

  private chunkPath(id: number): string {
    return path.join(this.chunksDir, chunkFileName(id));
  }
}

export function createDurableOutbox(dir: string, options: OutboxOptions, logger?: Logger, deps: { clock?: Clock } = {}): Outbox {
  const log = logger ?? silentLogger();
  return new OutboxCore(new DiskChunkStore(dir, options, log), options, { clock: deps.clock, logger: log });
}


function validIndexDoc(doc: ChunkIndexDoc): boolean {
  return [doc.id, doc.count, doc.bytes].every((value) => Number.isSafeInteger(value) && value >= 0) && Number.isFinite(doc.firstTime) && Number.isFinite(doc.lastTime);
}

/** writeAll on the event loop's thread, for the few writes per turn that must reach the kernel at once. */
function writeAllSync(fd: number, data: Buffer, position: number): void {
  for (let offset = 0; offset < data.length; ) {
    const written = fsCallback.writeSync(fd, data, offset, data.length - offset, position + offset);
    if (written === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write (0 bytes written)'), { code: 'ENOSPC' });
    offset += written;
  }
}

/** Writes all of `data` at `position`; a full disk may accept nothing without an error, which would loop for ever. */
async function writeAll(fd: number, data: Buffer, position: number): Promise<void> {
  for (let offset = 0; offset < data.length; ) {
    const { bytesWritten } = await fdWrite(fd, data, offset, data.length - offset, position + offset);
    if (bytesWritten === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write (0 bytes written)'), { code: 'ENOSPC' });
    offset += bytesWritten;
  }
}

function readingTimeOf(reading: Reading | undefined): number | undefined {
  const time = reading ? Date.parse(reading.time) : NaN;
  return Number.isNaN(time) ? undefined : time;
}

function ignoreMissingOrStorage(error: unknown): void {
  if (!isStorageError(error)) throw error;
}

async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(workers);
}
