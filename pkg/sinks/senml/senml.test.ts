// SenML output decoded by independent means (JSON.parse, Debian's python3-cbor2 with the RFC 8428
// integer labels mapped by hand) must give back the readings' names, units, times and values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCborIndependently } from '../../../test/support/cbor.js';
import type { Reading } from '../../api/reading.js';
import { encodeSenmlCbor, encodeSenmlJson } from './senml.js';

function reading(overrides: Partial<Reading>): Reading {
  return { device: 'gw-7', sensor: 'boiler-temp', namespace: 'default', seq: 1, time: '2024-05-01T10:00:00.000Z', quality: 'good', ...overrides };
}

const readings: Reading[] = [
  reading({ seq: 1, value: 21.5, unit: 'Cel', time: '2024-05-01T10:00:00.000Z' }),
  reading({ seq: 2, value: -3, unit: 'Cel', time: '2024-05-01T10:00:00.250Z' }),
  reading({ sensor: 'room', seq: 9, values: { temperature: 19.25, humidity: 40 }, unit: '%RH', time: '2024-05-01T10:00:01.100Z' }),
  reading({ sensor: 'door', seq: 3, value: 1, time: '2024-05-01T10:00:02.000Z' }),
];

/** What every record must resolve to (RFC 8428 section 4.6), written out by hand. */
const expected = [
  { name: 'gw-7/boiler-temp/', unit: 'Cel', time: 1714557600, value: 21.5 },
  { name: 'gw-7/boiler-temp/', unit: 'Cel', time: 1714557600.25, value: -3 },
  { name: 'gw-7/room/temperature', unit: '%RH', time: 1714557601.1, value: 19.25 },
  { name: 'gw-7/room/humidity', unit: '%RH', time: 1714557601.1, value: 40 },
  { name: 'gw-7/door/', unit: undefined, time: 1714557602, value: 1 },
];

interface Resolved { name: string; unit?: string; time: number; value: number }

/** RFC 8428 resolution: base fields apply to every later record until changed. */
function resolve(pack: Array<Record<string, unknown>>): Resolved[] {
  let bn = '';
  let bt = 0;
  let bu: string | undefined;
  return pack.map((record) => {
    if (record.bn !== undefined) bn = record.bn as string;
    if (record.bt !== undefined) bt = record.bt as number;
    if (record.bu !== undefined) bu = record.bu as string;
    return {
      name: bn + ((record.n as string | undefined) ?? ''),
      unit: (record.u as string | undefined) ?? bu,
      // Compare at millisecond precision: SenML times are float seconds.
      time: Math.round((bt + ((record.t as number | undefined) ?? 0)) * 1000) / 1000,
      value: record.v as number,
    };
  });
}

test('SenML JSON decodes with JSON.parse to exactly the readings', () => {
  const pack = JSON.parse(encodeSenmlJson(readings).toString('utf8'));
  assert.deepEqual(resolve(pack), expected);
  assert.equal(pack[0].bt, 1714557600);
  assert.equal(pack.filter((record: object) => 'bn' in record).length, 3, 'bn only where the sensor changes');
});

test('SenML CBOR uses the RFC 8428 integer labels and decodes to exactly the readings', () => {
  // A plain decoder (maps stay Maps) so the integer keys are seen as sent.
  const decoded = decodeCborIndependently(encodeSenmlCbor(readings)) as Array<Map<number, unknown>>;
  assert.ok(Array.isArray(decoded));
  const labels: Record<number, string> = { [-2]: 'bn', [-3]: 'bt', [-4]: 'bu', 0: 'n', 1: 'u', 2: 'v', 6: 't' };
  const pack = decoded.map((map) => {
    assert.ok(map instanceof Map);
    const record: Record<string, unknown> = {};
    for (const [key, value] of map) {
      assert.equal(typeof key, 'number', 'every CBOR label is an integer');
      assert.ok(labels[key], `unexpected label ${key}`);
      record[labels[key]] = value;
    }
    return record;
  });
  assert.deepEqual(resolve(pack), expected);
  assert.equal(decoded[0].get(-2), 'gw-7/boiler-temp/');
  // Plain CBOR: an array (0x8N) of maps (0xAN), no tags (such as 259, explicit Map).
  const bytes = encodeSenmlCbor(readings.slice(0, 1));
  assert.equal(bytes[0], 0x81);
  assert.equal(bytes[1] & 0xe0, 0xa0);
});

test('one unit for the whole pack goes in bu once', () => {
  const pack = JSON.parse(encodeSenmlJson(readings.slice(0, 2)).toString());
  assert.deepEqual(pack, [
    { bt: 1714557600, bu: 'Cel', bn: 'gw-7/boiler-temp/', v: 21.5 },
    { v: -3, t: 0.25 },
  ]);
});

test('readings without a value are left out; an empty chunk is an empty pack', () => {
  assert.deepEqual(JSON.parse(encodeSenmlJson([reading({ quality: 'bad' })]).toString()), []);
  assert.deepEqual(decodeCborIndependently(encodeSenmlCbor([])), []);
});
