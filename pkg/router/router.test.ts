import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesNodeSelector, matchesSelector } from './selector.js';
import { Router, type RouteTarget } from './router.js';
import type { Reading } from '../api/reading.js';

test('label selectors follow Kubernetes semantics', () => {
  const labels = { site: 'plant-1', kind: 'temp' };
  assert.ok(matchesSelector({}, labels));
  assert.ok(matchesSelector(undefined, labels));
  assert.ok(matchesSelector({ matchLabels: { site: 'plant-1' } }, labels));
  assert.ok(!matchesSelector({ matchLabels: { site: 'plant-2' } }, labels));
  assert.ok(matchesSelector({ matchExpressions: [{ key: 'kind', operator: 'In', values: ['temp', 'hum'] }] }, labels));
  assert.ok(!matchesSelector({ matchExpressions: [{ key: 'kind', operator: 'NotIn', values: ['temp'] }] }, labels));
  assert.ok(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, labels));
  assert.ok(!matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, labels));
  assert.ok(!matchesSelector({ matchLabels: { site: 'plant-1' }, matchExpressions: [{ key: 'kind', operator: 'In', values: ['hum'] }] }, labels));
  assert.ok(matchesNodeSelector({ 'sensorlet.io/site': 'a' }, { 'sensorlet.io/site': 'a', other: 'x' }));
  assert.ok(!matchesNodeSelector({ 'sensorlet.io/site': 'a' }, {}));
});

test('the router fans out by selector, within the Sensor namespace only, and follows changes', () => {
  const router = new Router();
  const received: Record<string, number> = {};
  const target = (key: string, namespace: string, selector: RouteTarget['selector']): RouteTarget => ({
    key,
    namespace,
    selector,
    accept: (_sensor, readings) => (received[key] = (received[key] ?? 0) + readings.length),
  });
  router.setTarget(target('Sink/default/all', 'default', {}));
  router.setTarget(target('Sink/default/plant', 'default', { matchLabels: { site: 'plant-1' } }));
  router.setTarget(target('Sink/other/all', 'other', {}));
  router.setSensor('Sensor/default/t', 'default', { site: 'plant-1' });
  const readings = [{ seq: 1 } as Reading];
  router.route('Sensor/default/t', readings);
  assert.deepEqual(received, { 'Sink/default/all': 1, 'Sink/default/plant': 1 });
  router.setSensor('Sensor/default/t', 'default', { site: 'plant-2' });
  router.route('Sensor/default/t', readings);
  assert.deepEqual(received, { 'Sink/default/all': 2, 'Sink/default/plant': 1 });
  assert.deepEqual(router.sensorsOf('Sink/default/all'), ['Sensor/default/t']);
  router.removeTarget('Sink/default/all');
  router.route('Sensor/default/t', readings);
  assert.equal(received['Sink/default/all'], 2);
});
