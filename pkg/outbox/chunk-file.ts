// The on-disk format of one chunk. See durable.ts for why chunks look like this.
//
//   magic "SLC2" (4 bytes), then frames, each  u32le length | u32le crc32 | payload
//   payload[0] says what the frame holds:
//     'H' + JSON {id, firstTime}       the header, first frame, written when the chunk's file starts
//     'R' + JSON array of readings      the readings appended in one event-loop turn (or at sealing)
//     'C' + the same readings in the compact form of reading-columns.ts, used instead of 'R'
//           whenever every reading of the frame has the usual shape (about 5× smaller and faster)
//     'E' + u32le count + f64le lastTime  the end: the chunk is sealed; nothing follows it
//
// A chunk is written as it fills: its file (`<id>.chunk.tmp`) gets the header, then one R frame per
// event-loop turn, so what was appended reaches the kernel at once and a process crash loses
// nothing; sealing appends the last R frame and the E frame, then fsync and rename. Every frame is
// checked on its own, so a file cut short by a crash still yields every whole frame before the cut.
// The E frame has a fixed size, so start-up learns a sealed chunk's count and age from its first
// and last few bytes without parsing the readings.
//
// Files of the earlier format "SLC1" (a header frame {id, count, firstTime, lastTime} and one body
// frame) are still read.
import { SensorletError } from '../api/errors.js';
import type { Reading } from '../api/reading.js';
import { crc32 } from './crc32.js';
import { decodeReadingColumns, encodeReadingColumns, ReadingColumnsError } from './reading-columns.js';

const MAGIC = Buffer.from('SLC2', 'latin1');
const MAGIC_V1 = Buffer.from('SLC1', 'latin1');
const FRAME_HEADER_BYTES = 8;
const HEADER = 0x48; // 'H'
const READINGS = 0x52; // 'R'
const COLUMNS = 0x43; // 'C'
const END = 0x45; // 'E'
const END_PAYLOAD_BYTES = 1 + 4 + 8;
/** The size of the E frame that closes every sealed chunk. */
export const END_FRAME_BYTES = FRAME_HEADER_BYTES + END_PAYLOAD_BYTES;
/** Enough to hold the magic and any header frame. */
export const CHUNK_HEADER_PROBE_BYTES = 4096;

export interface ChunkMeta {
  id: number;
  /** Number of readings. */
  count: number;
  /** Sample time of the first and last reading, ms since the epoch. */
  firstTime: number;
  lastTime: number;
}

export class ChunkCorruptError extends SensorletError {
  constructor(message: string) {
    super('OutboxChunkCorrupt', message);
  }
}

/** The magic and the header frame: how every chunk file starts. */
export function encodeChunkStart(id: number, firstTime: number): Buffer {
  const json = JSON.stringify({ id, firstTime });
  const out = Buffer.allocUnsafe(MAGIC.length + FRAME_HEADER_BYTES + 1 + Buffer.byteLength(json));
  MAGIC.copy(out, 0);
  out[MAGIC.length + FRAME_HEADER_BYTES] = HEADER;
  out.write(json, MAGIC.length + FRAME_HEADER_BYTES + 1, 'utf8');
  sealFrame(out, MAGIC.length, out.length);
  return out;
}

/** A readings frame's payload: its type byte and the readings, encoded once. */
interface ReadingsPayload {
  kind: number;
  columns?: Buffer;
  json?: string;
  bytes: number;
}

function encodeReadingsPayload(readings: readonly Reading[]): ReadingsPayload {
  const columns = encodeReadingColumns(readings);
  if (columns) return { kind: COLUMNS, columns, bytes: columns.length };
  const json = JSON.stringify(readings);
  return { kind: READINGS, json, bytes: Buffer.byteLength(json) };
}

function writeReadingsPayload(out: Buffer, at: number, payload: ReadingsPayload): void {
  out[at] = payload.kind;
  if (payload.columns) payload.columns.copy(out, at + 1);
  else out.write(payload.json!, at + 1, 'utf8');
}

/** One readings frame: the readings encoded once, straight into the frame's buffer. */
export function encodeReadingsFrame(readings: readonly Reading[]): Buffer {
  const payload = encodeReadingsPayload(readings);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1 + payload.bytes);
  writeReadingsPayload(out, FRAME_HEADER_BYTES, payload);
  sealFrame(out, 0, out.length);
  return out;
}

export function encodeEndFrame(count: number, lastTime: number): Buffer {
  const out = Buffer.allocUnsafe(END_FRAME_BYTES);
  writeEndFrame(out, 0, count, lastTime);
  return out;
}

function writeEndFrame(out: Buffer, start: number, count: number, lastTime: number): void {
  out[start + FRAME_HEADER_BYTES] = END;
  out.writeUInt32LE(count, start + FRAME_HEADER_BYTES + 1);
  out.writeDoubleLE(lastTime, start + FRAME_HEADER_BYTES + 5);
  sealFrame(out, start, start + END_FRAME_BYTES);
}

/**
 * A whole sealed chunk (start, one R frame, end), encoded straight into one buffer: the usual case
 * under load, a chunk sealed within the turn it started.
 */
export function encodeChunk(meta: ChunkMeta, readings: readonly Reading[]): Buffer {
  const header = JSON.stringify({ id: meta.id, firstTime: meta.firstTime });
  const payload = encodeReadingsPayload(readings);
  const headerBytes = Buffer.byteLength(header);
  const out = Buffer.allocUnsafe(MAGIC.length + 2 * (FRAME_HEADER_BYTES + 1) + headerBytes + payload.bytes + END_FRAME_BYTES);
  MAGIC.copy(out, 0);
  let start = MAGIC.length;
  out[start + FRAME_HEADER_BYTES] = HEADER;
  out.write(header, start + FRAME_HEADER_BYTES + 1, 'utf8');
  let end = start + FRAME_HEADER_BYTES + 1 + headerBytes;
  sealFrame(out, start, end);
  start = end;
  writeReadingsPayload(out, start + FRAME_HEADER_BYTES, payload);
  end = start + FRAME_HEADER_BYTES + 1 + payload.bytes;
  sealFrame(out, start, end);
  writeEndFrame(out, end, meta.count, meta.lastTime);
  return out;
}

/** Writes length and checksum of the frame spanning [start, end) of `out`. */
function sealFrame(out: Buffer, start: number, end: number): void {
  out.writeUInt32LE(end - start - FRAME_HEADER_BYTES, start);
  out.writeUInt32LE(crc32(out, start + FRAME_HEADER_BYTES, end), start + 4);
}

/** Returns the payload of the frame at `offset`, or throws when it is cut short or fails its checksum. */
function readFrame(data: Buffer, offset: number, what: string): { payload: Buffer; end: number } {
  if (offset + FRAME_HEADER_BYTES > data.length) throw new ChunkCorruptError(`${what} frame truncated`);
  const length = data.readUInt32LE(offset);
  const expected = data.readUInt32LE(offset + 4);
  const start = offset + FRAME_HEADER_BYTES;
  const end = start + length;
  if (end > data.length) throw new ChunkCorruptError(`${what} frame truncated: ${data.length - start} of ${length} bytes`);
  const actual = crc32(data, start, end);
  if (actual !== expected) throw new ChunkCorruptError(`${what} frame checksum mismatch`);
  return { payload: data.subarray(start, end), end };
}

function parseJson<T>(payload: Buffer, what: string): T {
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch {
    throw new ChunkCorruptError(`${what} is not JSON`);
  }
}

function isV1(data: Buffer): boolean {
  return data.length >= MAGIC_V1.length && data.subarray(0, MAGIC_V1.length).equals(MAGIC_V1);
}

/** The magic and header frame; throws when they are not whole. */
function parseStart(data: Buffer): { id: number; firstTime: number; end: number } {
  if (data.length < MAGIC.length || !data.subarray(0, MAGIC.length).equals(MAGIC)) throw new ChunkCorruptError('bad magic');
  const { payload, end } = readFrame(data, MAGIC.length, 'header');
  if (payload[0] !== HEADER) throw new ChunkCorruptError('first frame is not a header');
  const header = parseJson<{ id: number; firstTime: number }>(payload.subarray(1), 'header');
  if (!Number.isSafeInteger(header.id) || !Number.isFinite(header.firstTime)) throw new ChunkCorruptError('header fields missing');
  return { id: header.id, firstTime: header.firstTime, end };
}

function parseEnd(payload: Buffer): { count: number; lastTime: number } {
  if (payload.length !== END_PAYLOAD_BYTES) throw new ChunkCorruptError('end frame has the wrong size');
  return { count: payload.readUInt32LE(1), lastTime: payload.readDoubleLE(5) };
}

/**
 * A sealed chunk's metadata from its first bytes (`prefix`, up to CHUNK_HEADER_PROBE_BYTES) and its
 * last END_FRAME_BYTES (`suffix`; unused for the SLC1 format, whose header says everything).
 */
export function decodeChunkHeader(prefix: Buffer, suffix: Buffer): ChunkMeta {
  if (isV1(prefix)) return parseV1Header(prefix).meta;
  const start = parseStart(prefix);
  const { payload } = readFrame(suffix, 0, 'end');
  if (payload[0] !== END) throw new ChunkCorruptError('not sealed: no end frame');
  const { count, lastTime } = parseEnd(payload);
  return { id: start.id, count, firstTime: start.firstTime, lastTime };
}

export function decodeChunk(data: Buffer): { meta: ChunkMeta; readings: Reading[] } {
  if (isV1(data)) return decodeV1(data);
  const scan = scanChunk(data);
  if (scan.torn) throw new ChunkCorruptError(scan.torn);
  if (!scan.sealed) throw new ChunkCorruptError('not sealed: no end frame');
  if (scan.readings.length !== scan.sealed.count) {
    throw new ChunkCorruptError(`body holds ${scan.readings.length} readings, end frame says ${scan.sealed.count}`);
  }
  return { meta: { id: scan.id, count: scan.sealed.count, firstTime: scan.firstTime, lastTime: scan.sealed.lastTime }, readings: scan.readings };
}

export interface ChunkScan {
  id: number;
  firstTime: number;
  readings: Reading[];
  /** Set when the file holds an end frame (and nothing after it). */
  sealed?: { count: number; lastTime: number };
  /** Bytes of whole frames from the start: where a torn file may be cut to keep every whole frame. */
  wholeBytes: number;
  /** Why the rest of the file (after wholeBytes) was not read, when it was not. */
  torn?: string;
}

/**
 * Reads a chunk file frame by frame, as far as its frames are whole and pass their checksums: a
 * file a crash cut short (`*.tmp`) yields every reading before the cut. Throws only when even the
 * header is not whole (nothing to recover).
 */
export function scanChunk(data: Buffer): ChunkScan {
  const start = parseStart(data);
  const scan: ChunkScan = { id: start.id, firstTime: start.firstTime, readings: [], wholeBytes: start.end };
  let offset = start.end;
  while (offset < data.length) {
    if (scan.sealed) {
      scan.torn = `${data.length - offset} bytes after the end frame`;
      break;
    }
    let frame: { payload: Buffer; end: number };
    try {
      frame = readFrame(data, offset, 'readings');
    } catch (error) {
      scan.torn = (error as Error).message;
      break;
    }
    const kind = frame.payload[0];
    if (kind === READINGS || kind === COLUMNS) {
      let readings: Reading[];
      try {
        readings = kind === COLUMNS ? decodeReadingColumns(frame.payload.subarray(1)) : parseJson<Reading[]>(frame.payload.subarray(1), 'readings frame');
      } catch (error) {
        // Checksummed, so written this way: corrupt from the start, not cut by a crash.
        if (error instanceof ReadingColumnsError) throw new ChunkCorruptError(`compact readings frame: ${error.message}`);
        throw error;
      }
      if (!Array.isArray(readings)) {
        scan.torn = 'readings frame is not an array';
        break;
      }
      if (scan.readings.length === 0) scan.readings = readings;
      else for (const reading of readings) scan.readings.push(reading);
    } else if (kind === END) {
      scan.sealed = parseEnd(frame.payload);
    } else {
      scan.torn = `unknown frame type ${kind}`;
      break;
    }
    offset = frame.end;
    scan.wholeBytes = offset;
  }
  return scan;
}

function parseV1Header(data: Buffer): { meta: ChunkMeta; end: number } {
  const { payload, end } = readFrame(data, MAGIC_V1.length, 'header');
  const meta = parseJson<ChunkMeta>(payload, 'header');
  if (!Number.isSafeInteger(meta.id) || !Number.isSafeInteger(meta.count)) throw new ChunkCorruptError('header fields missing');
  return { meta, end };
}

function decodeV1(data: Buffer): { meta: ChunkMeta; readings: Reading[] } {
  const { meta, end } = parseV1Header(data);
  const body = readFrame(data, end, 'body');
  if (body.end !== data.length) throw new ChunkCorruptError(`${data.length - body.end} trailing bytes`);
  const readings = parseJson<Reading[]>(body.payload, 'body');
  if (!Array.isArray(readings) || readings.length !== meta.count) {
    throw new ChunkCorruptError(`body holds ${Array.isArray(readings) ? readings.length : 'no'} readings, header says ${meta.count}`);
  }
  return { meta, readings };
}
