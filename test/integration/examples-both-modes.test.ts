// "The same example manifests run unchanged in folder mode and in cluster mode": manifests/examples
// is given to one agent as a folder and, as `kubectl apply -R -f` would send it, to another through
// the in-test API server. Both must end up running the same set: same kinds, namespaces, names and
// specs, and the same Sensors Ready. (The mqtt example's Sink points at 127.0.0.1:1883; whether a
// broker is there does not matter: only the running set is compared.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { AgentProcess, type ListedResource } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

const EXAMPLES = path.join(PACKAGE_ROOT, 'manifests', 'examples');

function exampleDocuments(dir: string): KubeObject[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return exampleDocuments(full);
    if (!/\.(ya?ml|json)$/.test(entry.name)) return [];
    return yaml.loadAll(readFileSync(full, 'utf8')).filter((document) => document !== null && typeof document === 'object') as KubeObject[];
  });
}

interface Running {
  key: string;
  spec: unknown;
  ready: string | undefined;
}

function runningSet(items: ListedResource[]): Running[] {
  return items
    .map((item) => ({
      key: `${item.kind}/${item.metadata.namespace}/${item.metadata.name}`,
      spec: item.spec,
      ready: item.kind === 'Sensor' ? item.status.nodes[0]?.conditions.find((condition) => condition.type === 'Ready')?.status : undefined,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
}

const allSensorsReady = (items: ListedResource[]) =>
  items.some((item) => item.kind === 'Sensor') &&
  items.filter((item) => item.kind === 'Sensor').every((item) => item.status.nodes[0]?.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));

test('manifests/examples run unchanged in folder mode and in cluster mode', async () => {
  const documents = exampleDocuments(EXAMPLES);
  assert.ok(documents.length >= 4, 'examples exist');
  const fake = await FakeApiServer.start();
  let folder: AgentProcess | undefined;
  let cluster: AgentProcess | undefined;
  try {
    for (const document of documents) fake.apply(document);
    fake.setNodeLabels('node-a', { 'kubernetes.io/hostname': 'node-a' });
    folder = await AgentProcess.start({ manifests: EXAMPLES, deviceId: 'node-a', extraArgs: ['--node-name', 'node-a'] });
    cluster = await AgentProcess.start({ deviceId: 'node-a', extraArgs: ['--kubeconfig', fake.writeKubeconfig(), '--node-name', 'node-a'] });

    const folderItems = await waitFor(async () => {
      const items = await folder!.resources();
      return allSensorsReady(items) ? items : undefined;
    }, { timeoutMs: 15_000, what: 'every example Sensor Ready in folder mode' });
    const clusterItems = await waitFor(async () => {
      const items = await cluster!.resources();
      return allSensorsReady(items) ? items : undefined;
    }, { timeoutMs: 15_000, what: 'every example Sensor Ready in cluster mode' });

    assert.equal(folderItems.length, documents.length, 'folder mode runs every example document');
    assert.deepEqual(runningSet(clusterItems), runningSet(folderItems));
    // The same objects from the cluster source: nothing the API server adds leaks into the spec.
    for (const item of clusterItems) assert.equal((item as unknown as { origin?: { file?: string } }).origin?.file, `k8s:${item.kind}/${item.metadata.namespace}/${item.metadata.name}`);
  } finally {
    const codes = await Promise.all([folder?.stop(), cluster?.stop()]);
    await fake.close();
    for (const agent of [folder, cluster]) if (agent) rmSync(agent.stateDir, { recursive: true, force: true });
    assert.deepEqual(codes, [0, 0], `both agents exit 0 (stderr: ${folder?.stderr.slice(-1000)} / ${cluster?.stderr.slice(-1000)})`);
  }
});

test('--log-format pretty: the examples run with human-readable logs on stderr, readings still JSON lines on stdout', async () => {
  const agent = await AgentProcess.start({ manifests: EXAMPLES, extraArgs: ['--log-format', 'pretty'] });
  try {
    await waitFor(() => agent.stdout.includes('"seq"'), { timeoutMs: 10_000, what: 'a reading on stdout' });
    assert.match(agent.stderr, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): sensorlet started$/m);
    assert.doesNotMatch(agent.stderr, /^\{"level"/m, 'no JSON log lines');
  } finally {
    await agent.stop();
  }
});
