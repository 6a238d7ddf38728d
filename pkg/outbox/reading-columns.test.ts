import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { Reading } from '../api/reading.js';
import { decodeChunk, encodeChunk, encodeChunkStart, encodeEndFrame, encodeReadingsFrame } from './chunk-file.js';
import { decodeReadingColumns, encodeReadingColumns, ReadingColumnsError } from './reading-columns.js';

const time = (ms: number) => new Date(ms).toISOString();

/** As the Sensor runner makes them: tenant, value and unit only when there are any. */
function made(sensor: string, seq: number, ms: number, extra: { tenant?: string; value?: number; unit?: string } = {}): Reading {
  const reading: Reading = { device: 'dev-1', sensor, namespace: 'default', seq, time: time(ms), quality: 'good' };
  if (extra.tenant) reading.tenant = extra.tenant;
  if (extra.value !== undefined) reading.value = extra.value;
  if (extra.unit) reading.unit = extra.unit;
  return reading;
}

function roundTrip(readings: Reading[]): Reading[] {
  const encoded = encodeReadingColumns(readings);
  assert.ok(encoded, 'the usual shape is encoded compactly');
  return decodeReadingColumns(encoded);
}

it('gives back the same readings, serializing to the same JSON, key order included', () => {
  const start = Date.UTC(2026, 11, 1, 12, 0, 0, 0);
  const readings: Reading[] = [
    made('temp', 1, start, { value: 21.5, unit: 'Cel' }),
    made('temp', 2, start, { value: -0.125, unit: 'Cel' }),
    made('door', 7, start + 1, { tenant: 'acme' }), // no value: a status-only reading
    made('temp', 3, start + 2, { value: 2 ** 53 - 1 }),
    { ...made('flow', 9_007_199_254_740_991, start + 3, { value: 1e-300 }), tenant: 'acme' }, // stamped: tenant last
    { ...made('temp', 4, start + 4, { value: 0, unit: 'Cel' }), quality: 'uncertain' },
  ];
  const back = roundTrip(readings);
  assert.deepEqual(back, readings);
  assert.equal(JSON.stringify(back), JSON.stringify(readings));
  assert.deepEqual(Object.keys(back[4]), ['device', 'sensor', 'namespace', 'seq', 'time', 'quality', 'value', 'tenant']);
});

it('is several times smaller than JSON for readings of one Sensor', () => {
  const readings = Array.from({ length: 500 }, (_, i) => made('temp', i + 1, Date.UTC(2026, 0, 1) + i, { value: i / 3 }));
  const encoded = encodeReadingColumns(readings)!;
  assert.ok(encoded.length * 4 < Buffer.byteLength(JSON.stringify(readings)), `${encoded.length} bytes against ${Buffer.byteLength(JSON.stringify(readings))}`);
  assert.deepEqual(decodeReadingColumns(encoded), readings);
});

it('declines what JSON keeps differently or what it does not know, so the caller writes JSON', () => {
  const base = made('temp', 1, Date.UTC(2026, 0, 1), { value: 1 });
  const declined: Array<[string, unknown]> = [
    ['values', { ...base, values: { a: 1 } }],
    ['a NaN value', { ...base, value: NaN }],
    ['an infinite value', { ...base, value: Infinity }],
    ['a value that is not a number', { ...base, value: '1' }],
    ['a time in another form', { ...base, time: '2026-01-01T00:00:00Z' }],
    ['a time that is not one', { ...base, time: 'yesterday' }],
    ['a fractional seq', { ...base, seq: 1.5 }],
    ['an unknown key', { ...base, labels: { a: 'b' } }],
    ['a key present as undefined', { ...base, unit: undefined }],
  ];
  for (const [what, reading] of declined) {
    assert.equal(encodeReadingColumns([base, reading as Reading]), undefined, what);
    // Through the frame encoder it is JSON, and still gives back what JSON gives back.
    const frame = encodeReadingsFrame([base, reading as Reading]);
    const chunk = Buffer.concat([encodeChunkStart(1, 0), frame, encodeEndFrame(2, 0)]);
    assert.deepEqual(decodeChunk(chunk).readings, JSON.parse(JSON.stringify([base, reading])), what);
  }
});

it('chunks mix compact and JSON frames, and a sealed chunk decodes to its readings', () => {
  const usual = Array.from({ length: 20 }, (_, i) => made('temp', i + 1, Date.UTC(2026, 0, 1) + i * 7, { value: i }));
  const unusual: Reading = { ...made('power', 1, Date.UTC(2026, 0, 1)), values: { l1: 230, l2: 231 } };
  const file = Buffer.concat([encodeChunkStart(5, 0), encodeReadingsFrame(usual.slice(0, 10)), encodeReadingsFrame([unusual]), encodeReadingsFrame(usual.slice(10)), encodeEndFrame(21, 0)]);
  assert.deepEqual(decodeChunk(file).readings, [...usual.slice(0, 10), unusual, ...usual.slice(10)]);
  const sealed = encodeChunk({ id: 6, count: 20, firstTime: 0, lastTime: 0 }, usual);
  assert.deepEqual(decodeChunk(sealed).readings, usual);
});

it('refuses a damaged encoding with a clear error, never a wrong reading', () => {
  const encoded = encodeReadingColumns([made('temp', 1, 0, { value: 1 }), made('temp', 2, 1, { value: 2 })])!;
  const headerBytes = encoded.readUInt32LE(0);
  const badIndex = Buffer.from(encoded);
  badIndex.writeUInt16LE(9, 8 + headerBytes);
  assert.throws(() => decodeReadingColumns(badIndex), ReadingColumnsError);
  const badCount = Buffer.from(encoded);
  badCount.writeUInt32LE(3, 4 + headerBytes);
  assert.throws(() => decodeReadingColumns(badCount), /bytes of records for 3 readings/);
  const badTemplate = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('[]'), encoded.subarray(4 + headerBytes)]);
  assert.throws(() => decodeReadingColumns(badTemplate), ReadingColumnsError);
  assert.throws(() => decodeReadingColumns(encoded.subarray(0, 6)), ReadingColumnsError);
});
