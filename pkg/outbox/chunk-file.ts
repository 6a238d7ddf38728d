// The on-disk format of one sealed chunk. See durable.ts for why chunks look like this.
//
//   magic "SLC1" (4 bytes)
//   header frame: u32le length | u32le crc32 | JSON {id, count, firstTime, lastTime}
//   body frame:   u32le length | u32le crc32 | JSON array of readings (UTF-8)
//
// The header is a separate, tiny frame so start-up can learn a chunk's size and age from its first
// few hundred bytes when the metadata index lost it, without parsing the readings.
import { SensorletError } from '../api/errors.js';
import type { Reading } from '../api/reading.js';
import { crc32 } from './crc32.js';

const MAGIC = Buffer.from('SLC1', 'latin1');
const FRAME_HEADER_BYTES = 8;
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

export function encodeChunk(meta: ChunkMeta, readings: readonly Reading[]): Buffer {
  const header = Buffer.from(
    JSON.stringify({ id: meta.id, count: meta.count, firstTime: meta.firstTime, lastTime: meta.lastTime }),
  );
  // The body is written straight into the chunk's buffer: no intermediate copy of it.
  const text = JSON.stringify(readings);
  const bodyLength = Buffer.byteLength(text);
  const out = Buffer.allocUnsafe(MAGIC.length + 2 * FRAME_HEADER_BYTES + header.length + bodyLength);
  let offset = MAGIC.copy(out, 0);
  offset = writeFrame(out, offset, header);
  out.writeUInt32LE(bodyLength, offset);
  const bodyStart = offset + FRAME_HEADER_BYTES;
  out.write(text, bodyStart, 'utf8');
  out.writeUInt32LE(crc32(out, bodyStart, bodyStart + bodyLength), offset + 4);
  return out;
}

function writeFrame(out: Buffer, offset: number, payload: Buffer): number {
  out.writeUInt32LE(payload.length, offset);
  out.writeUInt32LE(crc32(payload), offset + 4);
  payload.copy(out, offset + FRAME_HEADER_BYTES);
  return offset + FRAME_HEADER_BYTES + payload.length;
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

function parseHeader(data: Buffer): { meta: ChunkMeta; end: number } {
  if (data.length < MAGIC.length || !data.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ChunkCorruptError('bad magic');
  }
  const { payload, end } = readFrame(data, MAGIC.length, 'header');
  let meta: ChunkMeta;
  try {
    meta = JSON.parse(payload.toString('utf8')) as ChunkMeta;
  } catch {
    throw new ChunkCorruptError('header is not JSON');
  }
  if (!Number.isSafeInteger(meta.id) || !Number.isSafeInteger(meta.count)) throw new ChunkCorruptError('header fields missing');
  return { meta, end };
}

/** Reads only the header frame (from the first CHUNK_HEADER_PROBE_BYTES of a file). */
export function decodeChunkHeader(prefix: Buffer): ChunkMeta {
  return parseHeader(prefix).meta;
}

export function decodeChunk(data: Buffer): { meta: ChunkMeta; readings: Reading[] } {
  const { meta, end } = parseHeader(data);
  const body = readFrame(data, end, 'body');
  if (body.end !== data.length) throw new ChunkCorruptError(`${data.length - body.end} trailing bytes`);
  let readings: Reading[];
  try {
    readings = JSON.parse(body.payload.toString('utf8')) as Reading[];
  } catch {
    throw new ChunkCorruptError('body is not JSON');
  }
  if (!Array.isArray(readings) || readings.length !== meta.count) {
    throw new ChunkCorruptError(`body holds ${Array.isArray(readings) ? readings.length : 'no'} readings, header says ${meta.count}`);
  }
  return { meta, readings };
}
