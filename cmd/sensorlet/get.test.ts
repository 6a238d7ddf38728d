import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KIND_NAMES } from '../../pkg/api/crds.js';
import { KINDS } from '../../pkg/api/schemas.js';
import { describeKinds, kindFromName, render } from './get.js';

test('every name of every kind, in any case, means that kind; anything else means none', () => {
  for (const kind of KINDS) {
    const names = KIND_NAMES[kind];
    for (const name of [kind, names.singular, names.plural, ...names.shortNames, ...(names.cliNames ?? [])]) {
      for (const spelled of [name, name.toUpperCase(), name[0].toUpperCase() + name.slice(1)]) assert.equal(kindFromName(spelled), kind, spelled);
    }
  }
  for (const [name, kind] of [['sensor', 'Sensor'], ['sensors', 'Sensor'], ['sen', 'Sensor'], ['sink', 'Sink'], ['sinks', 'Sink'], ['cert', 'Certificate'], ['certificates', 'Certificate'], ['firmware', 'Firmware'], ['firmwares', 'Firmware'], ['fw', 'Firmware'], ['FW', 'Firmware']]) {
    assert.equal(kindFromName(name), kind, name);
  }
  for (const name of ['bogus', 'sensorss', '', 'sensor s']) assert.equal(kindFromName(name), undefined, name);
  const listed = describeKinds().split('\n');
  assert.equal(listed.length, KINDS.length, 'one line per kind');
  for (const kind of KINDS) assert.ok(listed.some((line) => line.startsWith(`${KIND_NAMES[kind].plural} (`)), kind);
});

const sensor = (lastReading: unknown) => ({
  kind: 'Sensor',
  metadata: { name: 's', namespace: 'default', generation: 1 },
  spec: { driver: { simulated: {} }, interval: '1s' },
  status: { nodes: [{ conditions: [{ type: 'Ready', status: 'True', reason: 'Reading' }], readings: 3, lastReading }] },
});

test('LAST is the value as published, never rounded; every value of a multi-value reading, cut to a table cell', () => {
  const last = (reading: unknown) => render([sensor(reading)], 'Sensor', undefined, undefined).split('\n')[1].split(/\s{3,}/).at(-1);
  assert.equal(last({ value: 123456789 }), '123456789');
  assert.equal(last({ value: 0.000123456789 }), '0.000123456789');
  assert.equal(last({ values: { temperature: 21.5, humidity: 40 } }), 'temperature=21.5 humidity=40');
  const many = last({ values: Object.fromEntries(Array.from({ length: 20 }, (_, index) => [`register${index}`, index])) })!;
  assert.equal(many.length, 48);
  assert.ok(many.endsWith('…'));
});

test('Firmware columns: VERSION, CURRENT, PHASE, PROGRESS', () => {
  const firmware = {
    kind: 'Firmware',
    metadata: { name: 'modem', namespace: 'default', generation: 1 },
    spec: { version: '2.0.0' },
    status: { readyOfDesired: '0/1', nodes: [{ conditions: [{ type: 'Ready', status: 'False', reason: 'DownloadStalled', message: 'download of 2.0.0 stalled' }], phase: 'Downloading', currentVersion: '1.9.0', progress: { bytes: 1638, total: 4096 } }] },
  };
  const [header, row] = render([firmware], 'Firmware', undefined, 'wide').split('\n');
  assert.deepEqual(header.split(/\s+/), ['NAMESPACE', 'NAME', 'READY', 'REASON', 'VERSION', 'CURRENT', 'PHASE', 'PROGRESS', 'MESSAGE']);
  assert.deepEqual(row.split(/\s{3,}/), ['default', 'modem', '0/1', 'DownloadStalled', '2.0.0', '1.9.0', 'Downloading', '39%', 'download of 2.0.0 stalled']);
});
