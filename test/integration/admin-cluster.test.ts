// Cluster mode through the in-test API server: the admin API on every address accepts Kubernetes
// tokens that TokenReview authenticates and SubjectAccessReview allows for the path (as
// kube-rbac-proxy does), and a Sink takes its broker password from a Secret key in its namespace;
// the password connects to a real Mosquitto and is found in no output, the API server's copy of
// the status included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AGENT_NODE_FLAGS, AgentProcess, CLI } from '../support/agent.js';
import { freePort } from '../support/ports.js';

const execFileAsync = promisify(execFile);
const NODE = 'node-a';
const GROUP = 'sensorlet.io/v1alpha1';
const PROMETHEUS = 'system:serviceaccount:monitoring:prometheus';

async function status(url: string, token?: string, method = 'GET'): Promise<number> {
  const response = await fetch(url, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  await response.arrayBuffer();
  return response.status;
}

test('--admin-token-review: 401 for no or unknown tokens, 403 for a user RBAC does not allow, 200 for one it does; answers are cached', async () => {
  const fake = await FakeApiServer.start();
  fake.setNodeLabels(NODE, {});
  const prometheusToken = `prom-${randomBytes(16).toString('hex')}`;
  const otherToken = `other-${randomBytes(16).toString('hex')}`;
  fake.addToken(prometheusToken, PROMETHEUS, ['system:serviceaccounts', 'system:authenticated']);
  fake.addToken(otherToken, 'system:serviceaccount:default:someone');
  fake.allowNonResource(PROMETHEUS, ['/metrics'], ['get']);
  fake.apply({ apiVersion: GROUP, kind: 'Sensor', metadata: { name: 'boiler', namespace: 'default' }, spec: { driver: { simulated: { waveform: 'counter' } }, interval: '1s' } });
  let agent: AgentProcess | undefined;
  const kube = mkdtempSync(path.join(tmpdir(), 'sensorlet-kube-'));
  try {
    agent = await AgentProcess.start({
      deviceId: NODE,
      adminHost: '0.0.0.0',
      stateDir: path.join(kube, 'state'),
      extraArgs: ['--kubeconfig', fake.writeKubeconfig(kube), '--node-name', NODE, '--admin-token-review'],
    });
    const base = `http://${agent.adminAddr}`;
    assert.equal(await status(`${base}/healthz`), 200);
    assert.equal(await status(`${base}/readyz`), 200);
    assert.equal(await status(`${base}/metrics`), 401);
    assert.equal(await status(`${base}/metrics`, `unknown-${randomBytes(8).toString('hex')}`), 401);
    assert.equal(await status(`${base}/metrics`, otherToken), 403, 'authenticated, but RBAC does not allow it');
    assert.equal(await status(`${base}/metrics`, prometheusToken), 200);
    assert.equal(await status(`${base}/api/v1/resources`, prometheusToken), 403, 'allowed /metrics only');
    assert.equal(await status(`${base}/reload`, prometheusToken, 'POST'), 403);
    const forbidden = await fetch(`${base}/api/v1/resources`, { headers: { authorization: `Bearer ${prometheusToken}` } });
    assert.match(await forbidden.text(), new RegExp(`${PROMETHEUS} may not get /api/v1/resources`));

    // What the agent asked: the token, then the user's groups and the path with the HTTP verb.
    const access = fake.reviews.find((review) => review.kind === 'SubjectAccessReview' && review.spec.user === PROMETHEUS && review.spec.nonResourceAttributes.path === '/metrics');
    assert.deepEqual(access?.spec.nonResourceAttributes, { path: '/metrics', verb: 'get' });
    assert.deepEqual(access?.spec.groups, ['system:serviceaccounts', 'system:authenticated']);

    // A scraper does not cost two API calls per scrape.
    const reviewsBefore = fake.reviews.length;
    for (let scrape = 0; scrape < 5; scrape++) assert.equal(await status(`${base}/metrics`, prometheusToken), 200);
    assert.equal(fake.reviews.length, reviewsBefore, 'answered from the cache');
    assert.ok(!(agent.stdout + agent.stderr).includes(prometheusToken), 'tokens are never logged');

    // `sensorlet get` with a Kubernetes token in a file, for a user RBAC allows.
    fake.allowNonResource('system:serviceaccount:default:someone', ['/api/v1/*'], ['get']);
    const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-token-'));
    try {
      writeFileSync(path.join(dir, 'token'), otherToken);
      // Asynchronously: the API server it reviews the token with runs in this process.
      const get = await execFileAsync(process.execPath, [CLI, 'get', '--admin-addr', agent.adminAddr, '--token-file', path.join(dir, 'token')], { encoding: 'utf8', timeout: 15_000 });
      assert.match(get.stdout, /boiler/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await agent?.kill();
    await fake.close();
    rmSync(kube, { recursive: true, force: true });
  }
});

test('--admin-token-review needs cluster mode: standalone, the agent refuses to start and says so', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-review-'));
  try {
    const result = spawnSync(
      process.execPath,
      [...AGENT_NODE_FLAGS, CLI, 'run', '--manifests', dir, '--state-dir', path.join(dir, 'state'), '--admin-addr', `0.0.0.0:${await freePort()}`, '--admin-token-review'],
      { encoding: 'utf8', timeout: 15_000 },
    );
    assert.equal(result.status, 2, 'a usage error');
    assert.match(result.stderr.trim(), /^error: --admin-token-review needs cluster mode/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Sink takes its broker user and password from a Secret in its namespace (secretKeyRef); the password appears nowhere', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-secret-creds-'));
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const passwordFile = path.join(dir, 'mosquitto.passwd');
  writeFileSync(passwordFile, '');
  execFileSync('mosquitto_passwd', ['-b', passwordFile, 'gateway', password]);
  const broker = await Mosquitto.start({ config: (port) => [`user root`, `listener ${port} 127.0.0.1`, `allow_anonymous false`, `password_file ${passwordFile}`].join('\n') });
  let subscriber: Subscriber | undefined;
  let agent: AgentProcess | undefined;
  const fake = await FakeApiServer.start();
  fake.setNodeLabels(NODE, {});
  const secret: KubeObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'broker-credentials', namespace: 'default' },
    type: 'Opaque',
    data: { username: Buffer.from('gateway').toString('base64'), password: Buffer.from(`${password}\n`).toString('base64') },
  };
  fake.apply(secret);
  fake.apply({
    apiVersion: GROUP,
    kind: 'Sink',
    metadata: { name: 'plant', namespace: 'default' },
    spec: {
      selector: {},
      mqtt: {
        url: broker.url,
        topic: 'secret/{sensor}',
        usernameFrom: { secretKeyRef: { name: 'broker-credentials', key: 'username' } },
        passwordFrom: { secretKeyRef: { name: 'broker-credentials', key: 'password' } },
      },
      batch: { maxReadings: 10, maxDelay: '50ms' },
    },
  });
  fake.apply({
    apiVersion: GROUP,
    kind: 'Sink',
    metadata: { name: 'by-file', namespace: 'default' },
    spec: { selector: {}, mqtt: { url: broker.url, topic: 'secret/file/{sensor}', passwordFrom: { file: passwordFile } } },
  });
  fake.apply({ apiVersion: GROUP, kind: 'Sensor', metadata: { name: 'boiler', namespace: 'default' }, spec: { driver: { simulated: { waveform: 'counter' } }, interval: '100ms' } });
  try {
    subscriber = await Subscriber.connect(broker.url, 'secret/#', { username: 'gateway', password });
    agent = await AgentProcess.start({ deviceId: NODE, stateDir: path.join(dir, 'state'), extraArgs: ['--kubeconfig', fake.writeKubeconfig(dir), '--node-name', NODE] });
    await agent.waitForCondition('Sink', 'plant', 'Connected', 'True', undefined, 15_000);
    await subscriber.waitForReadings((readings) => readings.some((reading) => reading.sensor === 'boiler'), 10_000, 'readings through the Secret-authenticated connection');
    await agent.waitForCondition('Sink', 'by-file', 'Ready', 'False', 'CredentialFileNotAllowed');

    // A rotated Secret reconnects the Sink with the new value: a wrong one is refused by the broker.
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    fake.apply({ ...secret, data: { ...(secret.data as Record<string, string>), password: Buffer.from(wrong).toString('base64') } });
    await agent.waitForCondition('Sink', 'plant', 'Connected', 'False', undefined, 15_000);

    await new Promise((resolve) => setTimeout(resolve, 1500)); // status writes reach the API server
    const outputs = [
      agent.stdout + agent.stderr,
      await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).text(),
      await agent.metrics(),
      JSON.stringify(fake.patches),
      JSON.stringify(fake.get('Sink', 'default', 'plant')?.status),
    ];
    for (const text of outputs) {
      assert.ok(!text.includes(password), 'the password appears in an output');
      assert.ok(!text.includes(wrong), 'the rotated password appears in an output');
    }
  } finally {
    await agent?.kill();
    await subscriber?.close();
    await fake.close();
    await broker.stop();
    rmSync(broker.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
