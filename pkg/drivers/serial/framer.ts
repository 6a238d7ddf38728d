// Cutting frames out of a serial byte stream with bounded memory. A framer never holds more than
// `maxLength` bytes plus one chunk: an endless line or a flood of garbage is dropped and reported
// as a bad frame instead of growing a buffer.
import { SensorletError } from '../../api/errors.js';
import { CHECKSUM_SIZE, checksumBytes, type ChecksumType } from './checksum.js';

export type FrameEvent = { kind: 'frame'; bytes: Buffer } | { kind: 'bad'; error: SensorletError };

export interface Framer {
  push(chunk: Buffer): FrameEvent[];
  /** Forget buffered bytes, e.g. a partial reply left over from a request that timed out. */
  reset(): void;
}

export class TextFramer implements Framer {
  private readonly delimiter: Buffer;
  private pending = Buffer.alloc(0);
  /** Inside an over-long line: drop everything up to the next delimiter. */
  private discarding = false;

  constructor(delimiter: string, private readonly maxLength: number) {
    this.delimiter = Buffer.from(delimiter, 'utf8');
  }

  push(chunk: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    let buffer = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      const end = buffer.indexOf(this.delimiter);
      if (end < 0) break;
      const line = buffer.subarray(0, end);
      buffer = buffer.subarray(end + this.delimiter.length);
      if (this.discarding) {
        this.discarding = false; // the tail of a line already reported
      } else if (line.length > this.maxLength) {
        events.push(tooLong(this.maxLength));
      } else {
        // A view, not a copy: consumers parse a frame when it is handed to them and keep nothing of it.
        events.push({ kind: 'frame', bytes: line });
      }
    }
    if (buffer.length > this.maxLength) {
      if (!this.discarding) events.push(tooLong(this.maxLength));
      this.discarding = true;
      // Keep just enough to recognise a delimiter split across chunks.
      buffer = buffer.subarray(buffer.length - (this.delimiter.length - 1));
    }
    // Copy so the retained bytes do not pin a large chunk in memory.
    this.pending = Buffer.from(buffer);
    return events;
  }

  reset(): void {
    this.pending = Buffer.alloc(0);
    this.discarding = false;
  }
}

function tooLong(maxLength: number): FrameEvent {
  return { kind: 'bad', error: new SensorletError('BadFrame', `frame longer than ${maxLength} bytes without a delimiter; discarded`) };
}

export interface BinaryLayout {
  start?: Buffer;
  size?: number;
  lengthField?: { byteOffset: number; type: 'uint8' | 'uint16be' | 'uint16le'; adjust: number };
  checksum?: { type: ChecksumType; from: number };
  maxLength: number;
}

/** How many trailing bytes of `buffer` are the beginning of `start`. */
function partialStartLength(buffer: Buffer, start: Buffer): number {
  for (let length = Math.min(buffer.length, start.length - 1); length > 0; length--) {
    if (buffer.subarray(buffer.length - length).equals(start.subarray(0, length))) return length;
  }
  return 0;
}

const LENGTH_FIELD_SIZE = { uint8: 1, uint16be: 2, uint16le: 2 } as const;

export class BinaryFramer implements Framer {
  private pending = Buffer.alloc(0);

  constructor(private readonly layout: BinaryLayout) {}

  /** The smallest frame that can hold start bytes, length field and checksum. */
  private minimumSize(): number {
    const { start, lengthField, checksum } = this.layout;
    const lengthEnd = lengthField ? lengthField.byteOffset + LENGTH_FIELD_SIZE[lengthField.type] : 0;
    return Math.max(start?.length ?? 0, lengthEnd) + (checksum ? CHECKSUM_SIZE[checksum.type] : 0);
  }

  push(chunk: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    let buffer = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const { start, lengthField, checksum } = this.layout;
    let skipped = 0;
    // After a bad frame, the bytes up to the next start belong to it: not garbage to report again.
    let resyncing = false;

    for (;;) {
      if (start && start.length > 0) {
        const at = buffer.indexOf(start);
        if (at < 0) {
          // Keep a possible partial start sequence at the end; the rest is garbage.
          const keep = partialStartLength(buffer, start);
          if (!resyncing) skipped += buffer.length - keep;
          buffer = buffer.subarray(buffer.length - keep);
          break;
        }
        if (!resyncing) skipped += at;
        resyncing = false;
        buffer = buffer.subarray(at);
      }
      let size = this.layout.size;
      if (lengthField) {
        const fieldEnd = lengthField.byteOffset + LENGTH_FIELD_SIZE[lengthField.type];
        if (buffer.length < fieldEnd) break;
        const raw =
          lengthField.type === 'uint8'
            ? buffer.readUInt8(lengthField.byteOffset)
            : lengthField.type === 'uint16be'
              ? buffer.readUInt16BE(lengthField.byteOffset)
              : buffer.readUInt16LE(lengthField.byteOffset);
        size = raw + lengthField.adjust;
      }
      if (size === undefined || size < this.minimumSize() || size > this.layout.maxLength) {
        events.push({ kind: 'bad', error: new SensorletError('BadFrame', `implausible frame length ${size}`) });
        buffer = buffer.subarray(1); // resynchronise on the next start sequence
        resyncing = true;
        continue;
      }
      if (buffer.length < size) break; // a partial frame: wait for the rest
      const frame = buffer.subarray(0, size);
      if (checksum) {
        const width = CHECKSUM_SIZE[checksum.type];
        const expected = checksumBytes(checksum.type, frame.subarray(checksum.from, size - width));
        const actual = frame.subarray(size - width);
        if (!expected.equals(actual)) {
          events.push({
            kind: 'bad',
            error: new SensorletError('ChecksumMismatch', `${checksum.type} mismatch: frame has ${actual.toString('hex')}, computed ${expected.toString('hex')}`),
          });
          buffer = buffer.subarray(1);
          resyncing = true;
          continue;
        }
      }
      events.push({ kind: 'frame', bytes: Buffer.from(frame) });
      buffer = buffer.subarray(size);
    }
    if (skipped > 0) {
      events.unshift({ kind: 'bad', error: new SensorletError('BadFrame', `${skipped} bytes of garbage before a frame start`) });
    }
    if (buffer.length > this.layout.maxLength) buffer = buffer.subarray(buffer.length - this.layout.maxLength);
    this.pending = Buffer.from(buffer);
    return events;
  }

  reset(): void {
    this.pending = Buffer.alloc(0);
  }
}
