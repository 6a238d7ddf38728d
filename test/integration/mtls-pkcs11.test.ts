// Issue 4, done means 3: a Certificate whose private key lives in a SoftHSM 2 token (initialised by the
// test, key generated inside it) connects to the mutual-TLS listener and delivers readings; a wrong PIN
// is its own condition (BadPin). Each case runs in a fresh agent process: SoftHSM only notices a wrong
// PIN on the first login of a process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TestPki, spiffeId, standardFixtures } from '../support/pki.js';
import { SoftHsm, SOFTHSM_MODULE, type TokenKey } from '../support/softhsm.js';
import { startMtlsBroker, type MtlsBroker } from '../support/mtls-broker.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { assertContiguous, counterSensor, isContiguous, mtlsSink } from '../support/mtls-manifests.js';

let pki: TestPki;
let hsm: SoftHsm;
let tokenKey: TokenKey;
let mtls: MtlsBroker;

before(async () => {
  pki = TestPki.create();
  hsm = SoftHsm.create();
  tokenKey = hsm.issueTokenKey(pki, { object: 'acme-hsm', cn: 'acme', sans: [spiffeId('acme', 'hsm1')] });
  mtls = await startMtlsBroker(pki, standardFixtures(pki).server);
});
after(async () => {
  await mtls?.broker.stop();
  hsm?.remove();
  pki?.remove();
});

/** The operator allows the SoftHSM module and the test PKI's folder, and grants acme to the namespace. */
function hsmPolicy(): string[] {
  return policyArgs({ certificateDirs: [pki.dir], pkcs11Modules: [SOFTHSM_MODULE], tenantGrants: { default: ['acme'] } });
}

function manifests(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-mtls-hsm-'));
  writeFileSync(path.join(dir, 'all.yaml'), [
    `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata: { name: hsm-id }
spec:
  pkcs11:
    uri: ${JSON.stringify(tokenKey.uri)}
    pinFrom: { env: SENSORLET_SECRET_HSM_PIN }
    certFile: ${JSON.stringify(tokenKey.certFile)}
    caFile: ${JSON.stringify(pki.ca.certFile)}
    module: ${SOFTHSM_MODULE}
`,
    counterSensor('hsm-sensor', { interval: '50ms' }),
    mtlsSink('hsm-sink', { url: mtls.tlsUrl, tls: `{ certificateRef: { name: hsm-id }, caFile: ${JSON.stringify(pki.ca.certFile)} }` }),
  ].join('---\n'));
  return dir;
}

test('a key in SoftHSM 2 connects over mutual TLS and delivers readings', async () => {
  const dir = manifests();
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'gw-hsm', env: { ...hsm.env, SENSORLET_SECRET_HSM_PIN: hsm.pin }, extraArgs: hsmPolicy() });
  try {
    const ready = await agent.waitForCondition('Certificate', 'hsm-id', 'Ready', 'True', undefined, 15_000);
    assert.doesNotMatch(ready.message, new RegExp(hsm.pin));
    const status = (await agent.resource('Certificate', 'hsm-id'))!.status.nodes[0];
    assert.equal(status.tenant, 'acme');
    assert.equal(status.device, 'hsm1');
    await agent.waitForCondition('Sink', 'hsm-sink', 'Connected', 'True', undefined, 15_000);
    await observer.waitForReadings((readings) => readings.length >= 20 && isContiguous(readings), 15_000, '20 contiguous readings over the token key');
    assertContiguous(observer.readingsOf('hsm-sensor'), 'hsm-sensor');
    for (const message of observer.messages) assert.equal(message.topic, 'sensorlet/acme/hsm1/hsm-sensor');
    assert.doesNotMatch(agent.stdout + agent.stderr, new RegExp(`pin-value|${hsm.pin}`), 'the PIN never appears in logs');
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a wrong PIN is BadPin; the agent keeps running and nothing is sent', async () => {
  const dir = manifests();
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'gw-hsm', env: { ...hsm.env, SENSORLET_SECRET_HSM_PIN: '000000' }, extraArgs: hsmPolicy() });
  try {
    const ready = await agent.waitForCondition('Certificate', 'hsm-id', 'Ready', 'False', 'BadPin', 15_000);
    assert.doesNotMatch(ready.message, /000000/, 'the PIN never appears in conditions');
    await agent.waitForCondition('Sink', 'hsm-sink', 'Connected', 'False', 'CertificateNotReady');
    await waitFor(async () => ((await agent.resource('Sink', 'hsm-sink'))?.status.nodes[0]?.queued ?? 0) >= 5, { timeoutMs: 10_000, what: 'readings kept in the outbox' });
    assert.equal(observer.messages.length, 0);
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
