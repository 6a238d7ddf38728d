// The reconcile loop on a real file (the file actuator driver on a temp folder): the rate limit holds
// however often the device drifts, and a device that keeps failing is retried with growing delays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StoredResource } from '../api/resource.js';
import { validateObject } from '../api/validate.js';
import { StatusStore } from '../controller/status.js';
import { systemClock } from '../observability/clock.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { defaultPolicy } from '../policy/policy.js';
import { ActuatorRunner } from './runner.js';
import './index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function runner(dir: string, spec: Record<string, unknown>) {
  const { object, errors } = validateObject({ apiVersion: 'sensorlet.io/v1alpha1', kind: 'Actuator', metadata: { name: 'probe' }, spec });
  assert.deepEqual(errors, []);
  const resource = { kind: 'Actuator', namespace: 'default', name: 'probe', key: 'Actuator/default/probe', generation: 1, labels: {}, object, raw: object!, origin: {}, errors: [] } as unknown as StoredResource<'Actuator'>;
  const status = new StatusStore('node', systemClock);
  const metrics = new Metrics();
  const policy = { ...defaultPolicy().drivers, fileWritePrefixes: [dir], actuatorDrivers: ['file'] };
  const actuator = new ActuatorRunner(resource, { clock: systemClock, logger: silentLogger(), metrics, status, policy, shared: new Map(), sensorValue: () => undefined });
  return { actuator, metrics, facts: () => status.get(resource.key)!.facts, inSync: () => status.get(resource.key)!.conditions.find((each) => each.type === 'InSync') };
}

test('minWriteInterval holds however often the device drifts', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-actuator-runner-'));
  const file = path.join(dir, 'value');
  writeFileSync(file, '0\n');
  const { actuator, facts } = runner(dir, { driver: { file: { path: file } }, desired: 7, resyncInterval: '20ms', minWriteInterval: '300ms' });
  try {
    actuator.start();
    const started = Date.now();
    const writeTimes = new Set<string>();
    while (Date.now() - started < 1500) {
      writeFileSync(file, '0\n'); // changed behind the loop's back, again and again
      await sleep(25);
      const last = facts().lastWriteTime;
      if (typeof last === 'string') writeTimes.add(last);
    }
    const times = [...writeTimes].map((time) => Date.parse(time)).sort((a, b) => a - b);
    assert.ok(times.length >= 2, `${times.length} writes`);
    const gaps = times.slice(1).map((time, index) => time - times[index]);
    assert.ok(Math.min(...gaps) >= 300, `writes ${gaps.join(', ')} ms apart`);
    assert.ok((facts().writes as number) <= 1 + Math.ceil(1500 / 300), `${facts().writes} writes in 1.5 s`);
    // Left alone, the file ends up holding the desired value.
    for (let waited = 0; readFileSync(file, 'utf8') !== '7\n' && waited < 5000; waited += 50) await sleep(50);
    assert.equal(readFileSync(file, 'utf8'), '7\n');
  } finally {
    await actuator.stop(false);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a device that keeps failing is retried with capped exponential backoff, not in a loop', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-actuator-runner-'));
  const { actuator, metrics, inSync } = runner(dir, { driver: { file: { path: path.join(dir, 'unexported', 'value') } }, desired: 1, resyncInterval: '10ms', minWriteInterval: '0s' });
  try {
    actuator.start();
    await sleep(1700);
    // Passes at 0, 0.5 s and 1.5 s: the next waits 2 s.
    const condition = inSync()!;
    assert.equal(condition.status, 'False');
    assert.equal(condition.reason, 'DeviceGone');
    const failures = Number(/sensorlet_actuator_failures_total\{[^}]*reason="DeviceGone"\} (\d+)/.exec(await metrics.registry.metrics())?.[1] ?? 0);
    assert.ok(failures >= 2 && failures <= 4, `${failures} attempts in 1.7 s`);
  } finally {
    await actuator.stop(false);
    rmSync(dir, { recursive: true, force: true });
  }
});
