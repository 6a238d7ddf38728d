// Issue 6 end to end: the real `sensorlet run --kubeconfig` against the in-test API server
// (test/support/fake-apiserver.ts) and a real Mosquitto. The tests share one agent and run in order;
// each one uses its own resources.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { TestPki, spiffeId } from '../support/pki.js';

const NODE = 'node-a';
const GROUP = 'sensorlet.io/v1alpha1';
/** Fleet timings shortened so that a report write (normally every 10 s at most) is seen in a second. */
const TIMINGS = { reportIntervalMs: 1_000, heartbeatIntervalMs: 1_000, leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 300, rollupIntervalMs: 200 };

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

/** This node's entry for an object in its NodeReport on the API server. */
function reported(kind: string, name: string): Record<string, any> | undefined {
  const report = fake.get('NodeReport', 'default', NODE) as { resources?: Record<string, any>[] } | undefined;
  return (report?.resources ?? []).find((entry) => entry.kind === kind && entry.name === name);
}

/** The fleet roll-up in an object's status (what `kubectl get` shows). */
function rolledUp(kind: string, name: string): Record<string, any> {
  return (fake.get(kind, 'default', name)?.status ?? {}) as Record<string, any>;
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
    extraArgs: ['--kubeconfig', fake.writeKubeconfig(), '--node-name', NODE, ...policyArgs({ tenantGrants: { default: ['acme'] }, secretNamespaces: ['default'], actuatorDrivers: ['file'] }), '--file-write-allow-prefix', sysfs],
    env: { SENSORLET_TEST_FLEET_TIMINGS: JSON.stringify(TIMINGS) },
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
  await waitFor(() => reported('Sensor', 'alpha')?.state === 'Ready', { timeoutMs: 15_000, what: 'alpha Ready in the NodeReport' });
  assert.equal(reported('Sensor', 'alpha')?.observedGeneration, 1);
  const status = await waitFor(() => (rolledUp('Sensor', 'alpha').readyOfDesired === '1/1' ? rolledUp('Sensor', 'alpha') : undefined), { timeoutMs: 15_000, what: 'alpha 1/1 on the API server' });
  assert.equal(status.observedGeneration, 1);
  assert.equal(status.desired, 1);
  await waitFor(() => rolledUp('Sink', 'plant-mqtt').readyOfDesired === '1/1', { timeoutMs: 15_000, what: 'Sink 1/1 on the API server' });
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
  await waitFor(() => rolledUp('Sensor', 'beta').observedGeneration === 2, { timeoutMs: 5_000, what: 'beta observedGeneration 2 on the API server' });
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
  // The fleet roll-up on the API server; the per-node facts (observed, writes) on the agent's admin API.
  await waitFor(() => reported('Actuator', 'panel-backlight')?.state === 'Ready', { timeoutMs: 15_000, what: 'panel-backlight Ready in the NodeReport' });
  await waitFor(() => rolledUp('Actuator', 'panel-backlight').readyOfDesired === '1/1', { timeoutMs: 15_000, what: 'panel-backlight 1/1 on the API server' });
  await agent.waitForCondition('Actuator', 'panel-backlight', 'InSync', 'True');
  const entry = (await agent.resource('Actuator', 'panel-backlight'))!.status.nodes[0] as Record<string, any>;
  assert.equal(readFileSync(brightness, 'utf8'), '180\n');
  assert.equal(entry.observed, 180);
  assert.equal(entry.writes, 1);
  assert.equal(entry.driver, 'file');
  assert.equal(reported('Actuator', 'panel-backlight')?.observedGeneration, 1);
  // Out of bounds through the API server: nothing written, OutOfBounds at the field path.
  fake.apply({
    apiVersion: GROUP,
    kind: 'Actuator',
    metadata: { name: 'panel-backlight', namespace: 'default' },
    spec: { driver: { file: { path: brightness } }, desired: 999, bounds: { min: 10, max: 255 }, onStop: { set: 255 } },
  });
  const outOfBounds = await waitFor(
    () => (reported('Actuator', 'panel-backlight')?.reason === 'OutOfBounds' ? reported('Actuator', 'panel-backlight') : undefined),
    { timeoutMs: 15_000, what: 'OutOfBounds in the NodeReport' },
  );
  assert.equal(outOfBounds!.state, 'NotReady');
  await waitFor(() => rolledUp('Actuator', 'panel-backlight').worstNodes?.[0]?.reason === 'OutOfBounds', { timeoutMs: 15_000, what: 'OutOfBounds in the roll-up on the API server' });
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
  await waitFor(() => rolledUp('Sensor', 'gamma').readyOfDesired === '1/1', { timeoutMs: 5_000, what: 'gamma Ready on the API server' });

  fake.setNodeLabels(NODE, { role: 'edge', zone: 'south' });
  await waitFor(async () => (await agent.resource('Sensor', 'gamma'))?.status.nodes.length === 0, { what: 'gamma stopped on this node' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(await countIn('gamma', 1_500), 0, 'no readings of gamma after the label went');
  // This node no longer acts on gamma: it leaves the report, and the roll-up counts no node.
  await waitFor(() => reported('Sensor', 'gamma') === undefined && rolledUp('Sensor', 'gamma').desired === 0, { timeoutMs: 15_000, what: `gamma withdrawn (now ${JSON.stringify(rolledUp('Sensor', 'gamma'))})` });
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
  await waitFor(() => rolledUp('Certificate', 'device-identity').readyOfDesired === '1/1', { timeoutMs: 15_000, what: 'Certificate 1/1 on the API server' });

  fake.apply(tlsSecret(second));
  const after = await waitFor(
    async () => {
      const entry = (await agent.resource('Certificate', 'device-identity'))?.status.nodes[0];
      return entry?.fingerprint && entry.fingerprint !== before.fingerprint ? entry : undefined;
    },
    { timeoutMs: 10_000, what: 'the rotated fingerprint in the agent' },
  );
  assert.equal(ready(after)?.status, 'True');
  assert.equal(rolledUp('Certificate', 'device-identity').readyOfDesired, '1/1');
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

test('API writes: one NodeReport and one heartbeat Lease per node, the roll-up only when it changes', async () => {
  const writes = fake.requests.filter((request) => request.method !== 'GET');
  const paths = new Set(writes.map((request) => new URL(request.url, fake.url).pathname.replace(/\/(sensors|sinks|certificates|firmwares|actuators)\/[^/]+\/status$/, '/$1/NAME/status')));
  for (const path of paths) {
    assert.match(path, /^\/apis\/(sensorlet\.io\/v1alpha1\/namespaces\/default\/(nodereports(\/node-a)?|(sensors|sinks|certificates|actuators)\/NAME\/status)|coordination\.k8s\.io\/v1\/namespaces\/default\/leases(\/sensorlet-(leader|node-node-a))?)$/, `an expected write: ${path}`);
  }
  // alpha has read every 200 ms for the whole file: its report entry is unchanged (Ready), so the
  // report is written on changes only, never per reading, and at most once per interval.
  const reportWrites = fake.requests.filter((request) => request.method !== 'GET' && request.url.includes('/nodereports'));
  const first = fake.get('NodeReport', 'default', NODE)!.metadata.creationTimestamp as string;
  const seconds = (Date.now() - Date.parse(first)) / 1000;
  assert.ok(reportWrites.length <= seconds / (TIMINGS.reportIntervalMs / 1000) + 2, `${reportWrites.length} report writes in ${seconds.toFixed(0)} s`);
  const statusWrites = fake.requests.filter((request) => request.method === 'PATCH' && request.url.includes('/sensors/alpha/status'));
  assert.ok(statusWrites.length <= 6, `alpha's roll-up written ${statusWrites.length} times (on changes only)`);
});
