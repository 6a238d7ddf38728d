import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ResourceStore } from './store.js';
import '../drivers/index.js';
import '../sinks/index.js';

const sensor = (interval: string, labels: Record<string, string> = {}) => ({
  origin: { file: 'a.yaml', line: 1 },
  object: { apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sensor', metadata: { name: 's', labels }, spec: { driver: { simulated: {} }, interval } },
});

test('the generation counts spec changes only, and survives a restart', () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'store-'));
  const store = new ResourceStore(stateDir);
  store.synced(); // as a source does after its first listing
  const changes: string[][] = [];
  store.onChange((keys) => changes.push(keys));
  store.replace('a.yaml', [sensor('1s')]);
  assert.equal(store.get('Sensor/default/s')!.generation, 1);
  store.replace('a.yaml', [sensor('1s', { site: 'x' })]);
  assert.equal(store.get('Sensor/default/s')!.generation, 1, 'a label change is not a spec change');
  store.replace('a.yaml', [sensor('2s', { site: 'x' })]);
  assert.equal(store.get('Sensor/default/s')!.generation, 2);
  store.replace('a.yaml', [sensor('2s', { site: 'x' })]);
  assert.equal(changes.length, 3, 'an identical replace is no change');
  const restarted = new ResourceStore(stateDir);
  restarted.synced();
  restarted.replace('a.yaml', [sensor('2s')]);
  assert.equal(restarted.get('Sensor/default/s')!.generation, 2);
  restarted.replace('a.yaml', [sensor('3s')]);
  assert.equal(restarted.get('Sensor/default/s')!.generation, 3);
});

test('removing an origin removes its resources and reports them', () => {
  const store = new ResourceStore();
  store.synced();
  const changes: string[][] = [];
  store.onChange((keys) => changes.push(keys));
  store.replace('a.yaml', [sensor('1s')]);
  store.replace('a.yaml', []);
  assert.equal(store.get('Sensor/default/s'), undefined);
  assert.deepEqual(changes.at(-1), ['Sensor/default/s']);
});

test('an invalid document is kept with its errors, not dropped', () => {
  const store = new ResourceStore();
  store.synced();
  store.replace('a.yaml', [sensor('5 seconds')]);
  const stored = store.get('Sensor/default/s')!;
  assert.equal(stored.object, undefined);
  assert.equal(stored.errors[0].path, 'spec.interval');
});

test('the first listing is validated once, when the source says it is complete', () => {
  const store = new ResourceStore();
  const changes: string[][] = [];
  store.onChange((keys) => changes.push(keys));
  store.replace('a.yaml', [sensor('1s')]);
  assert.equal(store.get('Sensor/default/s'), undefined, 'nothing is applied before the listing is complete');
  store.synced();
  assert.equal(store.get('Sensor/default/s')!.generation, 1);
  assert.deepEqual(changes, [['Sensor/default/s']]);
});

test('replaceMany applies several origins as one change: a Sensor moved between files never disappears', () => {
  const store = new ResourceStore();
  store.synced();
  store.replace('a.yaml', [sensor('1s')]);
  const changes: string[][] = [];
  store.onChange((keys) => changes.push(keys));
  const moved = { ...sensor('1s'), origin: { file: 'b.yaml', line: 1 } };
  store.replaceMany(new Map([['a.yaml', []], ['b.yaml', [moved]]]));
  assert.deepEqual(changes, [], 'the same Sensor in another file is no change');
  assert.equal(store.get('Sensor/default/s')!.origin.file, 'b.yaml');
  store.replaceMany(new Map([['b.yaml', [sensor('2s')]], ['c.yaml', [{ ...sensor('1s'), object: { ...sensor('1s').object, metadata: { name: 't' } } }]]]));
  assert.deepEqual(changes, [['Sensor/default/s', 'Sensor/default/t']]);
});
