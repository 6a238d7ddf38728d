// The status writer against the in-test API server: server-side apply on /status, one field
// manager per node, coalescing and retries.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FakeApiServer } from '../../../test/support/fake-apiserver.js';
import { waitFor } from '../../../test/support/ports.js';
import { silentLogger } from '../../observability/logger.js';
import { createKubernetesStatusWriter, type KubernetesStatusWriter, type StatusRef } from '../../controller/status-writer-kubernetes.js';
import { connectKubernetes, type KubernetesConnection } from './connection.js';

const BOILER: StatusRef = { kind: 'Sensor', namespace: 'default', name: 'boiler' };
const SINK: StatusRef = { kind: 'Sink', namespace: 'edge', name: 'plant-mqtt' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function ready(status: 'True' | 'False', extra: Record<string, unknown> = {}) {
  return { observedGeneration: 1, conditions: [{ type: 'Ready', status, reason: status === 'True' ? 'Reading' : 'PortGone' }], ...extra };
}

describe('kubernetes status writer', () => {
  let fake: FakeApiServer;
  let connection: KubernetesConnection;
  const writers: KubernetesStatusWriter[] = [];

  before(async () => {
    fake = await FakeApiServer.start();
    connection = await connectKubernetes({ kubeconfigFile: fake.writeKubeconfig() });
    fake.apply({ apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sensor', metadata: { name: 'boiler', namespace: 'default' }, spec: { interval: '1s' } });
    fake.apply({ apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sink', metadata: { name: 'plant-mqtt', namespace: 'edge' }, spec: {} });
  });
  after(async () => {
    for (const writer of writers) await writer.close();
    await fake.close();
  });

  async function writerFor(nodeName: string, minIntervalMs = 10_000) {
    const writer = await createKubernetesStatusWriter({ connection, nodeName, logger: silentLogger(), minIntervalMs, backoff: { initialMs: 30, maxMs: 100 } });
    writers.push(writer);
    return writer;
  }

  test('applies only its node entry with its own field manager, content type and force', async () => {
    const writer = await writerFor('gateway-7');
    assert.equal(writer.fieldManager, 'sensorlet/gateway-7');
    writer.write(BOILER, ready('True', { lastReading: { value: 21.5 } }), false);
    await waitFor(() => fake.patches.length === 1, { what: 'first write' });
    const patch = fake.patches[0];
    assert.equal(patch.path, '/apis/sensorlet.io/v1alpha1/namespaces/default/sensors/boiler/status');
    assert.equal(patch.contentType, 'application/apply-patch+yaml');
    assert.equal(patch.fieldManager, 'sensorlet/gateway-7');
    assert.equal(patch.force, true);
    assert.equal(patch.status, 200);
    assert.deepEqual(patch.body, {
      apiVersion: 'sensorlet.io/v1alpha1',
      kind: 'Sensor',
      metadata: { name: 'boiler', namespace: 'default' },
      status: { nodes: [{ name: 'gateway-7', ...ready('True', { lastReading: { value: 21.5 } }) }] },
    });
  });

  test('two nodes keep their own entries (listMap keyed by name)', async () => {
    const other = await writerFor('gateway-8');
    other.write(BOILER, ready('False'), false);
    await waitFor(() => fake.patches.length === 2);
    const nodes = (fake.get('Sensor', 'default', 'boiler')!.status as { nodes: { name: string }[] }).nodes;
    assert.deepEqual(nodes.map((entry) => entry.name), ['gateway-7', 'gateway-8']);
    assert.equal(fake.patches[1].fieldManager, 'sensorlet/gateway-8');
  });

  test('coalesces: two writes within the window → one PATCH, with the latest entry', async () => {
    const writer = await writerFor('coalesce', 400);
    const before = fake.patches.length;
    writer.write(SINK, ready('True', { queued: 1 }), false);
    await waitFor(() => fake.patches.length === before + 1);
    writer.write(SINK, ready('True', { queued: 2 }), false);
    writer.write(SINK, ready('True', { queued: 3 }), false);
    await sleep(150);
    assert.equal(fake.patches.length, before + 1, 'no second write inside the window');
    await waitFor(() => fake.patches.length === before + 2, { what: 'write at the end of the window' });
    const last = fake.patches.at(-1)!.body as { status: { nodes: { queued: number }[] } };
    assert.equal(last.status.nodes[0].queued, 3);
    await sleep(500);
    assert.equal(fake.patches.length, before + 2, 'nothing pending, nothing written');
  });

  test('a condition flip is written at once, even inside the window', async () => {
    const writer = await writerFor('flip', 10_000);
    const before = fake.patches.length;
    writer.write(SINK, ready('True'), false);
    await waitFor(() => fake.patches.length === before + 1);
    writer.write(SINK, ready('True', { queued: 5 }), false);
    writer.write(SINK, ready('False'), true);
    await waitFor(() => fake.patches.length === before + 2, { what: 'flip written immediately' });
    const last = fake.patches.at(-1)!.body as { status: { nodes: { conditions: { status: string }[] }[] } };
    assert.equal(last.status.nodes[0].conditions[0].status, 'False');
    writer.write(SINK, ready('False', { queued: 6 }), false);
    await sleep(200);
    assert.equal(fake.patches.length, before + 2, 'no flip → waits for the window');
    assert.equal(writer.stats().pending, 1);
  });

  test('conflicts and server errors are retried with backoff; write() never blocks', async () => {
    const writer = await writerFor('retry', 10_000);
    const before = fake.patches.length;
    fake.failNextPatches(2, 409);
    fake.failNextPatches(1, 500);
    const started = performance.now();
    writer.write(BOILER, ready('True', { readings: 1 }), false);
    assert.ok(performance.now() - started < 5, 'write returns at once');
    await waitFor(() => fake.patches.at(-1)?.status === 200 && fake.patches.length === before + 4, { what: 'success after 3 failures' });
    assert.deepEqual(fake.patches.slice(before).map((patch) => patch.status), [409, 409, 500, 200]);
    // The server answered; the writer counts once it has read the answer.
    await waitFor(() => writer.stats().writes === 1);
    assert.deepEqual(writer.stats(), { writes: 1, failures: 3, dropped: 0, pending: 0 });
    const nodes = (fake.get('Sensor', 'default', 'boiler')!.status as { nodes: { name: string; readings?: number }[] }).nodes;
    assert.equal(nodes.find((entry) => entry.name === 'retry')?.readings, 1);
  });

  test('an object that is gone is not retried', async () => {
    const writer = await writerFor('gone', 10_000);
    const before = fake.patches.length;
    writer.write({ kind: 'Certificate', namespace: 'default', name: 'missing' }, ready('True'), false);
    await waitFor(() => fake.patches.length === before + 1);
    assert.equal(fake.patches.at(-1)!.status, 404);
    await sleep(200);
    assert.equal(fake.patches.length, before + 1);
  });

  test('close() makes one last attempt for pending entries', async () => {
    const writer = await writerFor('closing', 10_000);
    const before = fake.patches.length;
    writer.write(SINK, ready('True', { queued: 1 }), false);
    await waitFor(() => fake.patches.length === before + 1);
    writer.write(SINK, ready('True', { queued: 9 }), false);
    await writer.close();
    assert.equal(fake.patches.length, before + 2);
    writer.write(SINK, ready('True', { queued: 10 }), false);
    await sleep(50);
    assert.equal(fake.patches.length, before + 2, 'closed writers ignore writes');
  });
});
