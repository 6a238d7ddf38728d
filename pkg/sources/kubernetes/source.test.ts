// The cluster source against the in-test API server: real client-node ListWatch over real HTTP.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FakeApiServer, type KubeObject } from '../../../test/support/fake-apiserver.js';
import { waitFor } from '../../../test/support/ports.js';
import { silentLogger } from '../../observability/logger.js';
import type { SourceDocument, SourceListener } from '../source.js';
import { createKubernetesSource, type KubernetesSource } from './source.js';
import { KINDS } from '../../api/schemas.js';

/** One watch per kind, plus the Node and the Secrets. */
const WATCHES = KINDS.length + 2;

const NODE = 'gateway-7';
const FAST_BACKOFF = { initialMs: 50, maxMs: 200 };

class RecordingListener implements SourceListener {
  readonly current = new Map<string, SourceDocument[]>();
  readonly calls: { origin: string; count: number }[] = [];
  syncedCount = 0;
  replace(origin: string, documents: SourceDocument[]): void {
    this.calls.push({ origin, count: documents.length });
    if (documents.length === 0) this.current.delete(origin);
    else this.current.set(origin, documents);
  }
  replaceMany(changes: ReadonlyMap<string, SourceDocument[]>): void {
    for (const [origin, documents] of changes) this.replace(origin, documents);
  }
  synced(): void {
    this.syncedCount++;
  }
  spec(origin: string): unknown {
    return (this.current.get(origin)?.[0].object as { spec?: unknown } | undefined)?.spec;
  }
  callsFor(origin: string): number {
    return this.calls.filter((call) => call.origin === origin).length;
  }
}

function sensor(name: string, spec: Record<string, unknown>, namespace = 'default'): KubeObject {
  return { apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sensor', metadata: { name, namespace, labels: { site: 'plant-1' } }, spec };
}

async function startSource(fake: FakeApiServer, extra: Partial<Parameters<typeof createKubernetesSource>[0]> = {}) {
  const listener = new RecordingListener();
  const source = await createKubernetesSource({
    kubeconfigFile: fake.writeKubeconfig(),
    nodeName: NODE,
    logger: silentLogger(),
    backoff: FAST_BACKOFF,
    resyncIntervalMs: 0,
    ...extra,
  });
  await source.start(listener);
  return { source, listener };
}

describe('kubernetes source', () => {
  let fake: FakeApiServer;
  let source: KubernetesSource | undefined;
  let started: RecordingListener | undefined;

  before(async () => {
    fake = await FakeApiServer.start();
  });
  after(async () => {
    await source?.stop();
    await fake.close();
  });

  test('lists, then watches: adds, spec changes and deletes arrive per origin', async () => {
    fake.setNodeLabels(NODE, { 'sensorlet.io/site': 'plant-1' });
    fake.apply(sensor('boiler', { interval: '1s' }));
    fake.apply({ apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sink', metadata: { name: 'plant-mqtt', namespace: 'edge' }, spec: { mqtt: { url: 'mqtt://127.0.0.1:1883' } } });
    const first = await startSource(fake);
    source = first.source;
    started = first.listener;
    const { listener } = first;

    await waitFor(() => listener.syncedCount === 1, { what: 'synced' });
    assert.deepEqual([...listener.current.keys()].sort(), ['k8s:Sensor/default/boiler', 'k8s:Sink/edge/plant-mqtt']);
    const document = listener.current.get('k8s:Sensor/default/boiler')![0];
    assert.deepEqual(document.origin, { file: 'k8s:Sensor/default/boiler' });
    const object = document.object as { apiVersion: string; kind: string; metadata: Record<string, unknown> };
    assert.equal(object.apiVersion, 'sensorlet.io/v1alpha1');
    assert.equal(object.kind, 'Sensor');
    assert.deepEqual(object.metadata.labels, { site: 'plant-1' });
    assert.equal(object.metadata.generation, 1);

    fake.apply(sensor('boiler', { interval: '5s' }));
    await waitFor(() => (listener.spec('k8s:Sensor/default/boiler') as { interval?: string })?.interval === '5s', { what: 'modified' });
    fake.apply(sensor('pump', { interval: '2s' }, 'edge'));
    await waitFor(() => listener.current.has('k8s:Sensor/edge/pump'), { what: 'added by watch' });
    fake.delete('Sensor', 'default', 'boiler');
    await waitFor(() => !listener.current.has('k8s:Sensor/default/boiler'), { what: 'deleted' });
    assert.deepEqual(listener.calls.at(-1), { origin: 'k8s:Sensor/default/boiler', count: 0 });
  });

  test('a status-only update is not reported as a change', async () => {
    const listener = await currentListener();
    const before = listener.callsFor('k8s:Sensor/edge/pump');
    const response = await fetch(`${fake.url}/apis/sensorlet.io/v1alpha1/namespaces/edge/sensors/pump/status?fieldManager=sensorlet/x&force=true`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/apply-patch+yaml' },
      body: 'apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: {name: pump, namespace: edge}\nstatus: {nodes: [{name: x}]}\n',
    });
    assert.equal(response.status, 200);
    // A marker after the status change: once it arrives, the status MODIFIED event has been seen.
    fake.apply(sensor('marker', { interval: '1s' }));
    await waitFor(() => listener.current.has('k8s:Sensor/default/marker'));
    assert.equal(listener.callsFor('k8s:Sensor/edge/pump'), before);
  });

  test('dropped watches (reset and clean close) recover without losing or duplicating objects', async () => {
    const listener = await currentListener();
    for (const mode of ['destroy', 'end'] as const) {
      await waitFor(() => fake.openWatchCount('Sensor') === 1, { what: `sensor watch open before ${mode}` });
      const callsBefore = listener.calls.length;
      assert.ok(fake.dropWatches(mode) >= WATCHES, 'every informer had a watch open');
      // Changes while no watch is open must arrive on resume.
      fake.apply(sensor(`while-${mode}`, { interval: '3s' }));
      fake.apply(sensor('pump', { interval: mode === 'end' ? '8s' : '7s' }, 'edge'));
      await waitFor(() => listener.current.has(`k8s:Sensor/default/while-${mode}`), { what: `added while dropped (${mode})` });
      await waitFor(() => (listener.spec('k8s:Sensor/edge/pump') as { interval?: string }).interval === (mode === 'end' ? '8s' : '7s'));
      await waitFor(() => fake.openWatchCount() === WATCHES, { what: 'all watches reopened' });
      // Exactly the two changes were reported: no duplicates from replay.
      assert.deepEqual(
        listener.calls.slice(callsBefore).map((call) => call.origin).sort(),
        [`k8s:Sensor/default/while-${mode}`, 'k8s:Sensor/edge/pump'].sort(),
      );
    }
  });

  test('410 Gone relists: deletes missed while away are reported, nothing duplicated', async () => {
    const listener = await currentListener();
    await waitFor(() => fake.openWatchCount() === WATCHES, { what: 'watches open' });
    const callsBefore = listener.calls.length;
    fake.dropWatches('destroy');
    fake.delete('Sensor', 'default', 'while-destroy');
    fake.apply(sensor('after-gone', { interval: '4s' }));
    // The history the client would resume from is compacted: its next watch gets ERROR 410.
    fake.expireWatches();
    await waitFor(() => listener.current.has('k8s:Sensor/default/after-gone'), { what: 'added across 410' });
    await waitFor(() => !listener.current.has('k8s:Sensor/default/while-destroy'), { what: 'deleted across 410' });
    await waitFor(() => fake.openWatchCount() === WATCHES, { what: 'watches reopened' });
    assert.ok(fake.goneAnswers >= 1, 'a watch resumed from a compacted version and got 410');
    const relists = fake.requests.filter((request) => !request.url.includes('watch=') && request.url.includes('/sensors'));
    assert.ok(relists.length >= 2, 'the Sensor informer listed again');
    assert.deepEqual(
      listener.calls.slice(callsBefore).map((call) => `${call.origin}:${call.count}`).sort(),
      ['k8s:Sensor/default/after-gone:1', 'k8s:Sensor/default/while-destroy:0'],
    );

    // An open watch that receives the 410 ERROR event also relists.
    const openCalls = listener.calls.length;
    fake.expireWatches();
    fake.apply(sensor('after-open-gone', { interval: '4s' }));
    await waitFor(() => listener.current.has('k8s:Sensor/default/after-open-gone'));
    await waitFor(() => fake.openWatchCount() === WATCHES, { what: 'watches reopened' });
    assert.deepEqual(listener.calls.slice(openCalls).map((call) => call.origin), ['k8s:Sensor/default/after-open-gone']);
  });

  test('bookmarks are requested and advance the resume version', async () => {
    await waitFor(() => fake.openWatchCount() === WATCHES);
    const watches = fake.requests.filter((request) => request.url.includes('watch=true'));
    assert.ok(watches.every((request) => request.url.includes('allowWatchBookmarks=true')));
    fake.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'unrelated', namespace: 'elsewhere' }, type: 'Opaque', data: {} });
    fake.bookmark();
    const bookmarkedAt = fake.resourceVersion;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const count = fake.requests.length;
    fake.dropWatches('end');
    await waitFor(() => fake.openWatchCount() === WATCHES);
    const resumed = fake.requests.slice(count).find((request) => request.url.startsWith('/apis/sensorlet.io/v1alpha1/sensors?'));
    assert.ok(resumed, 'sensor watch resumed');
    assert.match(resumed.url, new RegExp(`resourceVersion=${bookmarkedAt}(&|$)`));
  });

  test('node label changes call back with the new labels', async () => {
    assert.deepEqual(source!.nodeLabels(), { 'sensorlet.io/site': 'plant-1' });
    const seen: Record<string, string>[] = [];
    const off = source!.onNodeLabels((labels) => seen.push(labels));
    fake.setNodeLabels('other-node', { 'sensorlet.io/site': 'plant-9' });
    fake.setNodeLabels(NODE, { 'sensorlet.io/site': 'plant-2', zone: 'a' });
    await waitFor(() => seen.length === 1, { what: 'label callback' });
    assert.deepEqual(seen[0], { 'sensorlet.io/site': 'plant-2', zone: 'a' });
    assert.deepEqual(source!.nodeLabels(), { 'sensorlet.io/site': 'plant-2', zone: 'a' });
    // Same labels again (e.g. a heartbeat update) → no callback.
    fake.setNodeLabels(NODE, { zone: 'a', 'sensorlet.io/site': 'plant-2' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(seen.length, 1);
    off();
    const nodeWatch = fake.requests.find((request) => request.url.startsWith('/api/v1/nodes?') && request.url.includes('watch=true'));
    assert.match(nodeWatch!.url, /fieldSelector=metadata.name%3Dgateway-7/);
  });

  test('secrets: data by name and a change callback (tls rotation, Opaque PKCS#12, delete)', async () => {
    const changes: string[] = [];
    source!.onSecretChange(({ namespace, name }) => changes.push(`${namespace}/${name}`));
    const tls = (cert: string) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'device-tls', namespace: 'default' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from('KEY').toString('base64'), 'ca.crt': Buffer.from('CA').toString('base64') },
    });
    fake.apply(tls('CERT-1'));
    await waitFor(() => source!.secret('default', 'device-tls'), { what: 'tls secret' });
    assert.equal(source!.secret('default', 'device-tls')!.type, 'kubernetes.io/tls');
    assert.equal(source!.secret('default', 'device-tls')!.data['tls.crt'].toString(), 'CERT-1');
    fake.apply(tls('CERT-2'));
    await waitFor(() => source!.secret('default', 'device-tls')!.data['tls.crt'].toString() === 'CERT-2', { what: 'rotation' });
    fake.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'device-p12', namespace: 'default' },
      type: 'Opaque',
      data: { 'device.p12': Buffer.from([0x30, 0x82, 0x01]).toString('base64'), password: Buffer.from('s3cret').toString('base64') },
    });
    await waitFor(() => source!.secret('default', 'device-p12'));
    assert.deepEqual([...source!.secret('default', 'device-p12')!.data['device.p12']], [0x30, 0x82, 0x01]);
    fake.delete('Secret', 'default', 'device-tls');
    await waitFor(() => source!.secret('default', 'device-tls') === undefined, { what: 'secret deleted' });
    await waitFor(() => changes.length === 4);
    assert.deepEqual(changes, ['default/device-tls', 'default/device-tls', 'default/device-p12', 'default/device-tls']);
    // Secrets of other namespaces are not watched (RBAC grants only the agent's namespace).
    assert.equal(source!.secret('elsewhere', 'unrelated'), undefined);
  });

  test('resync relists everything and reports deletions the watch missed', async () => {
    const listener = await currentListener();
    const before = new Set(listener.current.keys());
    const callsBefore = listener.calls.length;
    await source!.resync();
    assert.deepEqual(new Set(listener.current.keys()), before);
    assert.equal(listener.calls.length, callsBefore, 'an unchanged relist reports nothing');
    await waitFor(() => fake.openWatchCount() === WATCHES, { what: 'watches reopened after resync' });

    // A deletion whose watch event was lost is found by the next relist.
    assert.ok(fake.deleteSilently('Sensor', 'default', 'marker'));
    await source!.resync();
    assert.equal(listener.current.has('k8s:Sensor/default/marker'), false);
    assert.deepEqual(listener.calls.slice(callsBefore), [{ origin: 'k8s:Sensor/default/marker', count: 0 }]);
  });

  async function currentListener(): Promise<RecordingListener> {
    assert.ok(source && started, 'the first test started the source');
    return started;
  }
});

describe('kubernetes source, namespaced and with a failing API server', () => {
  test('retries failed lists with backoff, then syncs only the namespace it was given', async () => {
    const fake = await FakeApiServer.start();
    fake.setNodeLabels(NODE, {});
    fake.apply(sensor('inside', { interval: '1s' }, 'plant'));
    fake.apply(sensor('outside', { interval: '1s' }, 'default'));
    fake.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls', namespace: 'plant' }, type: 'kubernetes.io/tls', data: {} });
    fake.failNextLists(6);
    const { source, listener } = await startSource(fake, { namespace: 'plant' });
    try {
      await waitFor(() => listener.syncedCount === 1, { what: 'synced after failures' });
      assert.deepEqual([...listener.current.keys()], ['k8s:Sensor/plant/inside']);
      assert.deepEqual(source.secretsNamespaces, ['plant']);
      assert.ok(source.secret('plant', 'tls'));
      assert.ok(fake.requests.some((request) => request.url.startsWith('/apis/sensorlet.io/v1alpha1/namespaces/plant/sensors')));
      assert.ok(!fake.requests.some((request) => request.url.startsWith('/apis/sensorlet.io/v1alpha1/sensors')));
      assert.ok(fake.requests.every((request) => request.authorization === 'Bearer fake-token'));
    } finally {
      await source.stop();
      await fake.close();
    }
  });
});

test('a kind whose CRD is not installed lists as empty: the rest syncs and runs, and the kind appears once its CRD does', async () => {
  const fake = await FakeApiServer.start();
  fake.missingKinds.add('firmwares');
  fake.setNodeLabels(NODE, {});
  fake.apply(sensor('without-firmware-crd', { interval: '1s' }));
  const { source, listener } = await startSource(fake);
  try {
    assert.equal(listener.syncedCount, 1, 'synced although the Firmware CRD is missing');
    assert.ok(listener.current.has('k8s:Sensor/default/without-firmware-crd'));
    fake.missingKinds.delete('firmwares');
    fake.apply({ apiVersion: 'sensorlet.io/v1alpha1', kind: 'Firmware', metadata: { name: 'late', namespace: 'default' }, spec: { version: '1.0.0' } });
    await waitFor(() => listener.current.has('k8s:Firmware/default/late'), { timeoutMs: 5000, what: 'Firmware listed once its CRD exists' });
  } finally {
    await source.stop();
    await fake.close();
  }
});
