import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_REPORT_BYTES, NodeReportWriter } from './report.js';
import { silentLogger } from '../observability/logger.js';
import type { KubernetesConnection } from '../sources/kubernetes/connection.js';

// body() only: no request is made before start().
const writer = () => new NodeReportWriter({ connection: {} as KubernetesConnection, namespace: 'sensorlet-system', nodeName: 'gw-1', nodeUid: () => 'uid-1', intervalMs: 10_000, logger: silentLogger() });

test('the report: sorted entries, owned by the Node, labelled with it', () => {
  const report = writer();
  report.set({ kind: 'Sensor', namespace: 'b', name: 'x' }, { state: 'Ready', reason: 'Reading' });
  report.set({ kind: 'Sensor', namespace: 'a', name: 'y' }, { state: 'Degraded', reason: 'DriverError', message: 'port gone' });
  report.set({ kind: 'Sensor', namespace: 'a', name: 'gone' }, { state: 'Ready' });
  report.set({ kind: 'Sensor', namespace: 'a', name: 'gone' }, undefined);
  const body = report.body();
  assert.deepEqual(body.resources!.map((entry) => `${entry.namespace}/${entry.name}`), ['a/y', 'b/x']);
  assert.deepEqual(body.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'gw-1', uid: 'uid-1' }]);
  assert.deepEqual(body.metadata.labels, { 'sensorlet.io/node': 'gw-1' });
  assert.equal(body.omittedResources, undefined);
});

test('a manifest set too large for one object: messages go first, then entries, counted', () => {
  const report = writer();
  for (let i = 0; i < 2_000; i++) report.set({ kind: 'Sensor', namespace: 'default', name: `sensor-${String(i).padStart(5, '0')}` }, { state: 'Degraded', reason: 'DriverError', message: 'm'.repeat(256) });
  let body = report.body();
  assert.equal(body.resources!.length, 2_000, 'without messages it fits');
  assert.ok(body.resources!.every((entry) => entry.message === undefined));
  for (let i = 0; i < 10_000; i++) report.set({ kind: 'Sensor', namespace: 'default', name: `more-${'x'.repeat(200)}-${i}` }, { state: 'Ready' });
  body = report.body();
  assert.ok(Buffer.byteLength(JSON.stringify(body)) < MAX_REPORT_BYTES + 1024);
  assert.equal(body.resources!.length + body.omittedResources!, 12_000);
});
