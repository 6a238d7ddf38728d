import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SensorRunner } from './runner.js';
import { registerDriver } from './registry.js';
import { StatusStore } from '../controller/status.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { systemClock } from '../observability/clock.js';
import { SensorletError } from '../api/errors.js';
import type { StoredResource } from '../api/resource.js';
import type { Reading } from '../api/reading.js';
import { defaultPolicy } from '../policy/policy.js';

// A test device whose behaviour each test scripts: the runner is the code under test.
let behaviour: (signal: AbortSignal) => Promise<{ value: number }[]> = async () => [{ value: 1 }];
registerDriver({ name: 'scripted', create: () => ({ read: (signal: AbortSignal) => behaviour(signal), async close() {} }) });

function resource(interval: string, timeout: string): StoredResource<'Sensor'> {
  const object = { apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sensor', metadata: { name: 't' }, spec: { driver: { scripted: {} }, interval, timeout } } as any;
  return { kind: 'Sensor', namespace: 'default', name: 't', key: 'Sensor/default/t', generation: 1, labels: {}, object, raw: object, origin: {}, errors: [] };
}

function start(interval: string, timeout: string) {
  const status = new StatusStore('node', systemClock);
  const readings: Reading[] = [];
  let seq = 0;
  const runner = new SensorRunner(resource(interval, timeout), {
    device: 'd', clock: systemClock, logger: silentLogger(), metrics: new Metrics(), status,
    sequences: { register: () => undefined, next: () => ++seq }, policy: defaultPolicy().drivers, shared: new Map(),
    emit: (_key, batch) => readings.push(...batch),
  });
  runner.start();
  const condition = (type: string) => status.get('Sensor/default/t')?.conditions.find((c) => c.type === type);
  return { runner, readings, condition };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('readings carry identity, a per-sensor seq and the read time; Ready=True while reading', async () => {
  behaviour = async () => [{ value: 42 }];
  const { runner, readings, condition } = start('20ms', '1s');
  await sleep(110);
  await runner.stop();
  assert.ok(readings.length >= 4, `${readings.length} readings`);
  assert.deepEqual(readings.map((r) => r.seq), readings.map((_r, i) => i + 1));
  assert.equal(readings[0].sensor, 't');
  assert.equal(readings[0].value, 42);
  assert.equal(condition('Ready')?.status, 'True');
});

test('a hung read is cut at spec.timeout: Degraded=True Timeout, then back to Ready by itself', async () => {
  let hang = true;
  behaviour = (signal) => (hang ? new Promise(() => {}) : Promise.resolve([{ value: 1 }]));
  const { runner, readings, condition } = start('20ms', '50ms');
  await sleep(120);
  assert.equal(condition('Degraded')?.status, 'True');
  assert.equal(condition('Degraded')?.reason, 'Timeout');
  assert.equal(condition('Ready')?.status, 'False');
  hang = false;
  // First retry after the capped backoff (500 ms base).
  const deadline = Date.now() + 3000;
  while (condition('Ready')?.status !== 'True' && Date.now() < deadline) await sleep(20);
  await runner.stop();
  assert.equal(condition('Ready')?.status, 'True');
  assert.equal(condition('Degraded')?.status, 'False');
  assert.ok(readings.length > 0);
});

test('a failing driver backs off exponentially instead of hammering the device', async () => {
  let attempts = 0;
  behaviour = async () => {
    attempts++;
    throw new SensorletError('PortNotFound', '/dev/ttyUSB9 is gone');
  };
  const { runner, condition } = start('10ms', '1s');
  await sleep(1200);
  await runner.stop();
  // Without backoff: ~120 attempts. With 500 ms, 1 s...: 3 at most.
  assert.ok(attempts >= 2 && attempts <= 3, `${attempts} attempts`);
  assert.equal(condition('Degraded')?.reason, 'PortNotFound');
});

test('the operator limits: a schedule beyond them is refused before the driver exists, and a streaming flood is cut at the cap', async () => {
  let created = 0;
  let push: ((count: number) => void) | undefined;
  registerDriver({
    name: 'flood',
    create: () => {
      created++;
      return {
        stream(handlers) {
          push = (count) => handlers.emit(Array.from({ length: count }, (_, i) => ({ value: i })));
        },
        async close() {},
      };
    },
  });
  const run = (interval: string, timeout: string, policy = defaultPolicy().drivers) => {
    const status = new StatusStore('node', systemClock);
    const readings: Reading[] = [];
    let seq = 0;
    const object = { apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sensor', metadata: { name: 'f' }, spec: { driver: { flood: {} }, interval, timeout } } as any;
    const runner = new SensorRunner(
      { kind: 'Sensor', namespace: 'default', name: 'f', key: 'Sensor/default/f', generation: 1, labels: {}, object, raw: object, origin: {}, errors: [] },
      { device: 'd', clock: systemClock, logger: silentLogger(), metrics: new Metrics(), status, sequences: { register: () => undefined, next: () => ++seq }, policy, shared: new Map(), emit: (_key, batch) => readings.push(...batch) },
    );
    runner.start();
    const condition = (type: string) => status.get('Sensor/default/f')?.conditions.find((c) => c.type === type);
    return { runner, readings, condition, status };
  };

  for (const [interval, timeout, reason] of [['1ms', '1s', 'IntervalTooShort'], ['1s', '1ms', 'TimeoutTooShort']]) {
    const { runner, condition } = run(interval, timeout);
    assert.equal(condition('Ready')?.reason, reason);
    assert.match(condition('Ready')!.message, reason === 'IntervalTooShort' ? /--min-interval/ : /--min-timeout/);
    await runner.stop();
  }
  assert.equal(created, 0, 'nothing ran');

  const { runner, readings, condition, status } = run('1s', '1s', { ...defaultPolicy().drivers, maxReadingsPerSecond: 100 });
  push!(60);
  push!(60);
  push!(60);
  assert.equal(readings.length, 100);
  assert.deepEqual(readings.map((r) => r.seq), readings.map((_r, i) => i + 1), 'dropped samples use no sequence numbers');
  assert.equal(condition('Degraded')?.reason, 'ReadingRateLimited');
  assert.match(condition('Degraded')!.message, /--max-readings-per-second/);
  assert.equal(status.get('Sensor/default/f')?.facts.droppedOverRateCap, 20, 'the first drop of a second is reported at once');
  await sleep(1050);
  push!(10);
  assert.equal(readings.length, 110, 'a new second has room again');
  assert.equal(status.get('Sensor/default/f')?.facts.droppedOverRateCap, 80, 'and the whole count once the second is over');
  assert.equal(condition('Degraded')?.status, 'False');
  await runner.stop();
});

test('readings no Sink has room for are never made: counted as shed, their seqs skipped so the gap shows', async () => {
  behaviour = async () => Array.from({ length: 10 }, (_, i) => ({ value: i }));
  const status = new StatusStore('node', systemClock);
  const readings: Reading[] = [];
  const shed: number[] = [];
  let seq = 0;
  const metrics = new Metrics();
  const runner = new SensorRunner(resource('1h', '1s'), {
    device: 'd', clock: systemClock, logger: silentLogger(), metrics, status,
    sequences: { register: () => undefined, next: () => ++seq, skip: (_key, count) => void (seq += count) }, policy: defaultPolicy().drivers, shared: new Map(),
    emit: (_key, batch) => readings.push(...batch),
    room: (_key, _tenant, count) => Math.min(count, 3),
    shed: (_key, _tenant, count) => void shed.push(count),
  });
  runner.start();
  await sleep(50);
  await runner.stop();
  assert.deepEqual(readings.map((r) => r.value), [0, 1, 2], 'the oldest of the read are made');
  assert.deepEqual(shed, [7]);
  assert.equal(seq, 10, 'the shed readings used their numbers');
  assert.equal((await metrics.registry.getSingleMetric('sensorlet_readings_total')!.get()).values[0].value, 10, 'every reading read is counted');
});
