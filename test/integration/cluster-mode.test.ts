// Issue 6 end to end: the real `sensorlet run --kubeconfig` against the in-test API server
// (test/support/fake-apiserver.ts) and a real Mosquitto. The tests share one agent and run in order;
// each one uses its own resources.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeApiServer, type KubeObject, type RecordedPatch } from '../support/fake-apiserver.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { TestPki, spiffeId } from '../support/pki.js';

const NODE = 'node-a';
const FIELD_MANAGER = `sensorlet/${NODE}`;
const GROUP = 'sensorlet.io/v1alpha1';

let broker: Mosquitto;
let subscriber: Subscriber;
let fake: FakeApiServer;
let agent: AgentProcess;
let pki: TestPki | undefined;
/** A sysfs-like folder the agent may write (--file-write-allow-prefix), for the Actuator test. */
const sysfs = mkdtempSync(path.join(tmpdir(), 'sensorlet-cluster-sysfs-'));

function sensor(name: string, interval: string, extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: GROUP,
    kind: 'Sensor',
    metadata: { name, namespace: 'default', labels: { site: 'plant-1' } },
    spec: { driver: { simulated: { waveform: 'counter', min: 0, step: 1 } }, interval, unit: 'Cel', ...extra },
  };
}

const sink = (url: string): KubeObject => ({
  apiVersion: GROUP,
  kind: 'Sink',
  metadata: { name: 'plant-mqtt', namespace: 'default' },
  spec: {
    selector: { matchLabels: { site: 'plant-1' } },
    mqtt: { url, protocolVersion: 5, qos: 1, topic: 'cluster/{device}/{sensor}' },
    batch: { maxReadings: 50, maxDelay: '50ms' },
  },
});

const readingsOf = (name: string) => subscriber.readingsOf(name);

/** The node entry the API server holds for an object (what `kubectl get -o yaml` would show). */
function serverEntry(kind: string, name: string): Record<string, any> | undefined {
  const object = fake.get(kind, 'default', name);
  return ((object?.status as { nodes?: Record<string, any>[] } | undefined)?.nodes ?? []).find((entry) => entry.name === NODE);
}

const ready = (entry: Record<string, any> | undefined) => entry?.conditions?.find((condition: { type: string }) => condition.type === 'Ready');

async function readyInAgent(name: string): Promise<void> {
  await agent.waitForCondition('Sensor', name, 'Ready', 'True', undefined, 10_000);
}

/** Unique and contiguous seq, no message delivered twice, one runner's worth of readings. */
function assertOneStream(name: string): void {
  const readings = readingsOf(name);
  assert.ok(readings.length > 0, `readings of ${name}`);
  const seqs = readings.map((reading) => reading.seq as number);
  assert.equal(new Set(seqs).size, seqs.length, `${name}: a seq was delivered twice (two runners, or a replay)`);
  seqs.forEach((seq, index) => assert.equal(seq, seqs[0] + index, `${name}: seq gap or reorder at index ${index}`));
}

async function countIn(name: string, ms: number): Promise<number> {
  const before = readingsOf(name).length;
  await new Promise((resolve) => setTimeout(resolve, ms));
  return readingsOf(name).length - before;
}

before(async () => {
  broker = await Mosquitto.start();
  subscriber = await Subscriber.connect(broker.url, 'cluster/#');
  fake = await FakeApiServer.start();
  fake.setNodeLabels(NODE, { role: 'edge' });
  fake.apply(sink(broker.url));
  agent = await AgentProcess.start({
    deviceId: NODE,
    // Certificates in `default` may present acme (the Secret rotation test); Secrets are read there.
    extraArgs: ['--kubeconfig', fake.writeKubeconfig(), '--node-name', NODE, ...policyArgs({ tenantGrants: { default: ['acme'] }, secretNamespaces: ['default'] }), '--file-write-allow-prefix', sysfs],
  });
});

after(async () => {
  const code = await agent?.stop();
  await subscriber?.close();
  await fake?.close();
  await broker?.stop();
  pki?.remove();
  rmSync(sysfs, { recursive: true, force: true });
  if (agent) rmSync(agent.stateDir, { recursive: true, force: true });
  assert.equal(code, 0, `agent exit code (stderr: ${agent?.stderr.slice(-2000)})`);
});

test('apply: the Sensor runs and its readings reach Mosquitto; status reaches the API server', async () => {
  fake.apply(sensor('alpha', '200ms'));
  await subscriber.waitForReadings((readings) => readings.filter((r) => r.sensor === 'alpha').length >= 5, 10_000, 'alpha readings');
  const first = readingsOf('alpha')[0];
  assert.equal(first.device, NODE);
  assert.equal(first.namespace, 'default');
  assert.equal(subscriber.messages.find((m) => (Array.isArray(m.payload) ? m.payload : [m.payload]).some((r: any) => r.sensor === 'alpha'))?.topic, `cluster/${NODE}/alpha`);
  await readyInAgent('alpha');
  const entry = await waitFor(() => (ready(serverEntry('Sensor', 'alpha'))?.status === 'True' ? serverEntry('Sensor', 'alpha') : undefined), {
    timeoutMs: 15_000,
    what: 'alpha Ready=True on the API server',
  });
  assert.equal(entry.observedGeneration, 1);
  // The printer columns (pkg/api/crds.ts) read these facts: JSONPath cannot name a union's key.
  assert.equal(entry.driver, 'simulated');
  // Ready once connected (the first write may be from before the connection was up).
  const sinkEntry = await waitFor(() => (ready(serverEntry('Sink', 'plant-mqtt'))?.status === 'True' ? serverEntry('Sink', 'plant-mqtt') : undefined), {
    timeoutMs: 15_000,
    what: 'Sink Ready=True on the API server',
  });
  assert.equal(ready(sinkEntry)?.reason, 'Connected');
  assert.equal(sinkEntry.protocol, 'mqtt');
  assert.equal(sinkEntry.url, broker.url);
});

test('spec change: a new generation is reconciled and observedGeneration follows it', async () => {
  fake.apply(sensor('beta', '1s'));
  await readyInAgent('beta');
  const updated = fake.apply(sensor('beta', '100ms'));
  assert.equal(updated.metadata.generation, 2, 'the API server bumps generation on a spec change');
  // A metadata-only change does not bump it.
  const relabelled = fake.apply({ ...sensor('beta', '100ms'), metadata: { name: 'beta', namespace: 'default', labels: { site: 'plant-1', extra: 'yes' } } });
  assert.equal(relabelled.metadata.generation, 2);
  await waitFor(async () => (await agent.resource('Sensor', 'beta'))?.status.nodes[0]?.observedGeneration === 2, { what: 'beta observedGeneration 2 in the agent' });
  await waitFor(() => serverEntry('Sensor', 'beta')?.observedGeneration === 2, { timeoutMs: 5_000, what: 'beta observedGeneration 2 on the API server (a flip is written at once)' });
  assert.equal((await agent.resource('Sensor', 'beta'))?.spec.interval, '100ms');
  const perSecond = (await countIn('beta', 2_000)) / 2;
  assert.ok(perSecond >= 6, `beta reads at the new interval (100ms): ${perSecond}/s`);
});

test('delete: the Sensor stops and leaves the agent', async () => {
  assert.ok(fake.delete('Sensor', 'default', 'beta'));
  await waitFor(async () => !(await agent.resource('Sensor', 'beta')), { what: 'beta gone from the agent' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(await countIn('beta', 1_500), 0, 'no readings of beta after delete');
  assertOneStream('beta');
});

test('Actuator: applied through the API server, written, its status reported there; deleted, its fail-safe written', async () => {
  const brightness = path.join(sysfs, 'class', 'backlight', 'panel', 'brightness');
  mkdirSync(path.dirname(brightness), { recursive: true });
  writeFileSync(brightness, '0\n');
  fake.apply({
    apiVersion: GROUP,
    kind: 'Actuator',
    metadata: { name: 'panel-backlight', namespace: 'default' },
    spec: { driver: { file: { path: brightness } }, desired: 180, bounds: { min: 10, max: 255 }, onStop: { set: 255 } },
  });
  const entry = await waitFor(
    () => {
      const found = serverEntry('Actuator', 'panel-backlight');
      return found?.conditions?.find((condition: { type: string }) => condition.type === 'InSync')?.status === 'True' ? found : undefined;
    },
    { timeoutMs: 15_000, what: 'panel-backlight InSync=True on the API server' },
  );
  assert.equal(readFileSync(brightness, 'utf8'), '180\n');
  assert.equal(entry.observed, 180);
  assert.equal(entry.writes, 1);
  assert.equal(entry.driver, 'file');
  assert.equal(entry.observedGeneration, 1);
  // Out of bounds through the API server: nothing written, OutOfBounds at the field path.
  fake.apply({
    apiVersion: GROUP,
    kind: 'Actuator',
    metadata: { name: 'panel-backlight', namespace: 'default' },
    spec: { driver: { file: { path: brightness } }, desired: 999, bounds: { min: 10, max: 255 }, onStop: { set: 255 } },
  });
  const outOfBounds = await waitFor(
    () => serverEntry('Actuator', 'panel-backlight')?.conditions?.find((condition: { type: string; reason: string }) => condition.type === 'InSync' && condition.reason === 'OutOfBounds'),
    { timeoutMs: 15_000, what: 'OutOfBounds on the API server' },
  );
  assert.match(outOfBounds.message, /spec\.desired: 999 is above bounds\.max 255/);
  assert.equal(readFileSync(brightness, 'utf8'), '180\n');
  assert.ok(fake.delete('Actuator', 'default', 'panel-backlight'));
  await waitFor(async () => !(await agent.resource('Actuator', 'panel-backlight')), { what: 'panel-backlight gone from the agent' });
  // The invalid generation stopped the loop without its fail-safe (the value is held); a delete writes it.
  await waitFor(() => readFileSync(brightness, 'utf8') === '255\n', { timeoutMs: 5_000, what: 'the fail-safe on delete' });
});

test('node labels: a Sensor with a nodeSelector starts and stops without a restart', async () => {
  const pid = agent.child.pid;
  fake.apply(sensor('gamma', '200ms', { nodeSelector: { zone: 'north' } }));
  await waitFor(async () => !!(await agent.resource('Sensor', 'gamma')), { what: 'gamma known to the agent' });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(readingsOf('gamma').length, 0, 'gamma does not run on a node without zone=north');
  assert.deepEqual((await agent.resource('Sensor', 'gamma'))?.status.nodes, [], 'no status entry where it does not run');

  fake.setNodeLabels(NODE, { role: 'edge', zone: 'north' });
  await subscriber.waitForReadings((readings) => readings.filter((r) => r.sensor === 'gamma').length >= 3, 10_000, 'gamma readings');
  await readyInAgent('gamma');
  await waitFor(() => ready(serverEntry('Sensor', 'gamma'))?.status === 'True', { timeoutMs: 5_000, what: 'gamma Ready on the API server' });

  fake.setNodeLabels(NODE, { role: 'edge', zone: 'south' });
  await waitFor(async () => (await agent.resource('Sensor', 'gamma'))?.status.nodes.length === 0, { what: 'gamma stopped on this node' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(await countIn('gamma', 1_500), 0, 'no readings of gamma after the label went');
  // This node no longer acts on gamma: its entry is withdrawn from status.nodes[].
  await waitFor(() => serverEntry('Sensor', 'gamma') === undefined, { timeoutMs: 15_000, what: `node-a entry withdrawn from gamma (now ${JSON.stringify(serverEntry('Sensor', 'gamma'))})` });
  assertOneStream('gamma');
  assert.equal(agent.child.pid, pid);
  assert.equal(agent.child.exitCode, null);
});

test('Secret rotation: a Certificate from a kubernetes.io/tls Secret reloads', async () => {
  pki = TestPki.create();
  const first = pki.issue({ name: 'node-a-1', cn: 'acme', sans: [spiffeId('acme', NODE)] });
  const second = pki.issue({ name: 'node-a-2', cn: 'acme', sans: [spiffeId('acme', NODE)] });
  const tlsSecret = (issued: { certFile: string; keyFile: string }): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'device-tls', namespace: 'default' },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': readFileSync(issued.certFile).toString('base64'),
      'tls.key': readFileSync(issued.keyFile).toString('base64'),
      'ca.crt': readFileSync(pki!.ca.certFile).toString('base64'),
    },
  });
  fake.apply(tlsSecret(first));
  fake.apply({ apiVersion: GROUP, kind: 'Certificate', metadata: { name: 'device-identity', namespace: 'default' }, spec: { secretRef: { name: 'device-tls' } } });
  await agent.waitForCondition('Certificate', 'device-identity', 'Ready', 'True', 'Loaded');
  const before = (await agent.resource('Certificate', 'device-identity'))!.status.nodes[0];
  assert.equal(before.tenant, 'acme');
  assert.equal(before.device, NODE);
  assert.equal(before.chain, 'trusted');
  await waitFor(() => serverEntry('Certificate', 'device-identity')?.fingerprint === before.fingerprint, { timeoutMs: 15_000, what: 'fingerprint on the API server' });

  fake.apply(tlsSecret(second));
  const after = await waitFor(
    async () => {
      const entry = (await agent.resource('Certificate', 'device-identity'))?.status.nodes[0];
      return entry?.fingerprint && entry.fingerprint !== before.fingerprint ? entry : undefined;
    },
    { timeoutMs: 10_000, what: 'the rotated fingerprint in the agent' },
  );
  assert.equal(ready(after)?.status, 'True');
  // Not a condition flip: the write may wait out the 10 s coalescing window.
  await waitFor(() => serverEntry('Certificate', 'device-identity')?.fingerprint === after.fingerprint, { timeoutMs: 15_000, what: 'rotated fingerprint on the API server' });
});

test('a watch drop and a 410 recover without losing or duplicating Sensors', async () => {
  const readyBefore = ready((await agent.resource('Sensor', 'alpha'))!.status.nodes[0]);
  const sensorsBefore = (await agent.resources()).filter((item) => item.kind === 'Sensor').map((item) => item.metadata.name).sort();
  assert.deepEqual(sensorsBefore, ['alpha', 'gamma']);

  // A dropped connection: the informers resume from their last version and see what happened meanwhile.
  assert.ok(fake.dropWatches('destroy') >= 5, 'the agent had its watches open');
  fake.apply(sensor('delta', '200ms'));
  await readyInAgent('delta');
  await waitFor(() => fake.openWatchCount('Sensor') === 1, { timeoutMs: 15_000, what: 'Sensor watch reopened' });

  // A 410: the history is compacted, the watch is told its version is gone and must relist.
  const requestsBefore = fake.requests.length;
  fake.expireWatches();
  fake.apply(sensor('epsilon', '200ms'));
  await readyInAgent('epsilon');
  await waitFor(() => fake.openWatchCount('Sensor') === 1 && fake.openWatchCount('Sink') === 1, { timeoutMs: 15_000, what: 'watches reopened after 410' });
  const relisted = fake.requests.slice(requestsBefore).filter((request) => request.method === 'GET' && /\/sensors(\?|$)/.test(request.url) && !/[?&]watch=/.test(request.url));
  assert.ok(relisted.length >= 1, 'the 410 made the Sensor informer relist');

  const items = (await agent.resources()).filter((item) => item.kind === 'Sensor');
  assert.deepEqual(items.map((item) => item.metadata.name).sort(), ['alpha', 'delta', 'epsilon', 'gamma'], 'every Sensor exactly once');
  // The runner of alpha was never restarted (Ready would have flipped to Starting and back).
  const readyAfter = ready((await agent.resource('Sensor', 'alpha'))!.status.nodes[0]);
  assert.equal(readyAfter?.status, 'True');
  assert.equal(readyAfter?.lastTransitionTime, readyBefore?.lastTransitionTime, 'alpha kept its runner');
  // One runner each: 200 ms → about 5/s, never twice that.
  for (const name of ['alpha', 'delta', 'epsilon']) {
    const perSecond = (await countIn(name, 3_000)) / 3;
    assert.ok(perSecond >= 3 && perSecond <= 7, `${name}: ${perSecond} readings/s at interval 200ms (two runners would double it)`);
    assertOneStream(name);
  }
});

test('status writes: server-side apply by sensorlet/node-a, only its own entry, coalesced', async () => {
  const patches = fake.patches.filter((patch) => patch.status !== 0);
  assert.ok(patches.length > 0);
  for (const patch of patches) {
    assert.match(patch.path, /^\/apis\/sensorlet\.io\/v1alpha1\/namespaces\/default\/(sensors|sinks|certificates|actuators)\/[^/]+\/status$/);
    assert.equal(patch.contentType, 'application/apply-patch+yaml');
    assert.equal(patch.fieldManager, FIELD_MANAGER);
    assert.equal(patch.status, 200, `${patch.path} accepted`);
    assert.deepEqual(Object.keys(patch.body).sort(), ['apiVersion', 'kind', 'metadata', 'status']);
    assert.deepEqual(Object.keys(patch.body.status as object), ['nodes']);
    const nodes = (patch.body.status as { nodes: Record<string, unknown>[] }).nodes;
    // One entry (this node's), or none: a node that stops acting on an object withdraws its entry.
    assert.ok(nodes.length <= 1, `${patch.path}: ${nodes.length} entries`);
    if (nodes.length === 1) assert.equal(nodes[0].name, NODE);
  }
  // Coalescing: two writes of one object less than 10 s apart only when a condition flipped.
  const byPath = new Map<string, RecordedPatch[]>();
  for (const patch of patches) byPath.set(patch.path, [...(byPath.get(patch.path) ?? []), patch]);
  const signature = (patch: RecordedPatch) => {
    const entry = (patch.body.status as { nodes: Record<string, any>[] }).nodes[0];
    if (!entry) return 'withdrawn';
    return JSON.stringify([entry.observedGeneration, (entry.conditions ?? []).map((c: { type: string; status: string }) => `${c.type}=${c.status}`).sort()]);
  };
  for (const [path, list] of byPath) {
    for (let index = 1; index < list.length; index++) {
      const gap = list[index].at - list[index - 1].at;
      // The writer keeps 10 s between its sends; the fake server records arrivals, which carry the
      // agent's event-loop delay (a 9898 ms gap was seen on a loaded machine). Uncoalesced writes
      // would come every 200 ms.
      if (gap >= 9_000) continue;
      assert.notEqual(signature(list[index]), signature(list[index - 1]), `${path}: written again after ${gap} ms without a condition flip`);
    }
  }
  // alpha has read every 200 ms for the whole file: without coalescing that would be hundreds of writes.
  const alpha = byPath.get('/apis/sensorlet.io/v1alpha1/namespaces/default/sensors/alpha/status') ?? [];
  const seconds = (Date.now() - (alpha[0]?.at ?? Date.now())) / 1000;
  assert.ok(alpha.length >= 2, 'alpha written more than once');
  assert.ok(alpha.length <= Math.ceil(seconds / 10) + 4, `alpha: ${alpha.length} writes in ${seconds.toFixed(0)} s`);
});
