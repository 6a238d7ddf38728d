// A compact binary form for a run of readings, used by the outbox's chunk files in place of a JSON
// array when every reading has the usual shape. Encoding JSON was the largest cost of keeping a
// reading (about 0.4 µs each, more than making it), and under overload with `whenFull: dropOldest`
// every reading is kept, then most are dropped unread. Readings of one Sensor differ only in seq,
// time and value, so those are written per reading (27 bytes) and the rest once per frame:
//
//   u32le template JSON length | template JSON | u32le count | count × record
//   template JSON: [[keys in order], device, sensor, namespace, tenant|null, unit|null, quality], ...
//   record: u16le template index | u8 flags (1: has value) | f64le seq | f64le time ms | f64le value
//
// A template keeps the reading's own key order, so a reading read back serializes to the same
// JSON as before it was stored. Anything else (values, a time that is not the ISO form of its
// millisecond, a value JSON would not keep as it is, a key this codec does not know) makes the
// encoder decline, and the caller writes JSON.
import type { Reading } from '../api/reading.js';

const RECORD_BYTES = 2 + 1 + 8 + 8 + 8;
const HAS_VALUE = 1;
/** The keys a template may hold; any other key sends the frame to JSON. */
const KNOWN_KEYS = new Set(['device', 'sensor', 'namespace', 'tenant', 'seq', 'time', 'value', 'unit', 'quality']);
/** More distinct templates than this in one run is not the usual shape: JSON then. */
const MAX_TEMPLATES = 256;

interface Template {
  keys: string[];
  device: string;
  sensor: string;
  namespace: string;
  tenant: string | undefined;
  unit: string | undefined;
  quality: string;
  hasValue: boolean;
}

/** Reused between calls: one frame is encoded at a time, on the event loop's thread. */
let scratch = Buffer.allocUnsafe(64 * 1024);
/** The last time text seen and its millisecond: readings of a burst share milliseconds. */
let lastTimeText = '';
let lastTimeMs = 0;

function timeMs(text: string): number | undefined {
  if (text === lastTimeText) return lastTimeMs;
  if (typeof text !== 'string') return undefined;
  const ms = Date.parse(text);
  // Only the exact form toISOString gives comes back identical; anything else stays JSON.
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== text) return undefined;
  lastTimeText = text;
  lastTimeMs = ms;
  return ms;
}

function sameTemplate(template: Template, reading: Reading): boolean {
  if (
    template.device !== reading.device ||
    template.sensor !== reading.sensor ||
    template.namespace !== reading.namespace ||
    template.tenant !== reading.tenant ||
    template.unit !== reading.unit ||
    template.quality !== reading.quality
  ) {
    return false;
  }
  // The key order too: a reading stamped with its connection's tenant has it last.
  const keys = template.keys;
  let index = 0;
  for (const key in reading) {
    if (keys[index] !== key) return false;
    index++;
  }
  return index === keys.length;
}

function newTemplate(reading: Reading): Template | undefined {
  const keys: string[] = [];
  for (const key in reading) {
    if (!KNOWN_KEYS.has(key)) return undefined;
    keys.push(key);
  }
  const { device, sensor, namespace, tenant, unit, quality } = reading;
  if (typeof device !== 'string' || typeof sensor !== 'string' || typeof namespace !== 'string' || typeof quality !== 'string') return undefined;
  if ((tenant !== undefined && typeof tenant !== 'string') || (unit !== undefined && typeof unit !== 'string')) return undefined;
  // A key present with the value undefined is left out by JSON: the template must not bring it back.
  for (const key of keys) if ((reading as unknown as Record<string, unknown>)[key] === undefined) return undefined;
  if (!keys.includes('seq') || !keys.includes('time')) return undefined;
  return { keys, device, sensor, namespace, tenant, unit, quality, hasValue: keys.includes('value') };
}

/**
 * The readings in the compact form, or undefined when one of them does not have the usual shape
 * (the caller then writes JSON). The result is a fresh buffer of exactly the encoded size.
 */
export function encodeReadingColumns(readings: readonly Reading[]): Buffer | undefined {
  const templates: Template[] = [];
  let current: Template | undefined;
  let currentIndex = 0;
  const need = readings.length * RECORD_BYTES;
  if (scratch.length < need) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  const out = scratch;
  let offset = 0;
  for (const reading of readings) {
    if (current === undefined || !sameTemplate(current, reading)) {
      currentIndex = templates.findIndex((template) => sameTemplate(template, reading));
      if (currentIndex < 0) {
        const created = newTemplate(reading);
        if (!created || templates.length >= MAX_TEMPLATES) return undefined;
        currentIndex = templates.push(created) - 1;
      }
      current = templates[currentIndex];
    }
    const seq = reading.seq;
    if (!Number.isSafeInteger(seq)) return undefined;
    const time = timeMs(reading.time);
    if (time === undefined) return undefined;
    const value = reading.value;
    // JSON writes NaN and ±Infinity as null: such a value keeps the JSON form.
    if (current.hasValue && (typeof value !== 'number' || !Number.isFinite(value))) return undefined;
    const flags = current.hasValue ? HAS_VALUE : 0;
    out.writeUInt16LE(currentIndex, offset);
    out[offset + 2] = flags;
    out.writeDoubleLE(seq, offset + 3);
    out.writeDoubleLE(time, offset + 11);
    out.writeDoubleLE(flags === HAS_VALUE ? value! : 0, offset + 19);
    offset += RECORD_BYTES;
  }
  const header = JSON.stringify(templates.map((t) => [t.keys, t.device, t.sensor, t.namespace, t.tenant ?? null, t.unit ?? null, t.quality]));
  const headerBytes = Buffer.byteLength(header);
  const result = Buffer.allocUnsafe(4 + headerBytes + 4 + offset);
  result.writeUInt32LE(headerBytes, 0);
  result.write(header, 4, 'utf8');
  result.writeUInt32LE(readings.length, 4 + headerBytes);
  out.copy(result, 8 + headerBytes, 0, offset);
  return result;
}

/** Thrown for a payload that is not a valid encoding (the caller reports the chunk corrupt). */
export class ReadingColumnsError extends Error {}

function parseTemplates(json: string): Template[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ReadingColumnsError('templates are not JSON');
  }
  if (!Array.isArray(parsed)) throw new ReadingColumnsError('templates are not a list');
  return parsed.map((entry: unknown) => {
    if (!Array.isArray(entry) || entry.length !== 7) throw new ReadingColumnsError('a template has the wrong form');
    const [keys, device, sensor, namespace, tenant, unit, quality] = entry as unknown[];
    const strings = [device, sensor, namespace, quality].every((item) => typeof item === 'string');
    const optional = [tenant, unit].every((item) => item === null || typeof item === 'string');
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string' && KNOWN_KEYS.has(key)) || !strings || !optional) {
      throw new ReadingColumnsError('a template has the wrong form');
    }
    return { keys, device, sensor, namespace, tenant: tenant ?? undefined, unit: unit ?? undefined, quality, hasValue: keys.includes('value') } as Template;
  });
}

/** The readings of a payload encodeReadingColumns made; throws ReadingColumnsError when it is not one. */
export function decodeReadingColumns(payload: Buffer): Reading[] {
  if (payload.length < 8) throw new ReadingColumnsError('too short');
  const headerBytes = payload.readUInt32LE(0);
  if (8 + headerBytes > payload.length) throw new ReadingColumnsError('templates cut short');
  const templates = parseTemplates(payload.toString('utf8', 4, 4 + headerBytes));
  const count = payload.readUInt32LE(4 + headerBytes);
  let offset = 8 + headerBytes;
  if (payload.length - offset !== count * RECORD_BYTES) throw new ReadingColumnsError(`${payload.length - offset} bytes of records for ${count} readings`);
  const readings: Reading[] = new Array(count);
  let isoMs = NaN;
  let isoText = '';
  for (let i = 0; i < count; i++, offset += RECORD_BYTES) {
    const template = templates[payload.readUInt16LE(offset)];
    if (!template) throw new ReadingColumnsError('a reading names a template that is not there');
    const hasValue = (payload[offset + 2] & HAS_VALUE) !== 0;
    const ms = payload.readDoubleLE(offset + 11);
    if (ms !== isoMs) {
      if (!Number.isFinite(ms)) throw new ReadingColumnsError('a reading has no valid time');
      isoMs = ms;
      isoText = new Date(ms).toISOString();
    }
    // Built in the template's key order, so it serializes as the reading did before it was stored.
    const reading: Record<string, unknown> = {};
    for (const key of template.keys) {
      switch (key) {
        case 'seq':
          reading.seq = payload.readDoubleLE(offset + 3);
          break;
        case 'time':
          reading.time = isoText;
          break;
        case 'value':
          if (!hasValue) throw new ReadingColumnsError('a template holds a value the reading has not');
          reading.value = payload.readDoubleLE(offset + 19);
          break;
        default:
          reading[key] = template[key as 'device' | 'sensor' | 'namespace' | 'tenant' | 'unit' | 'quality'];
      }
    }
    readings[i] = reading as unknown as Reading;
  }
  return readings;
}
