// Firmware trust in cluster mode, through the real CLI against the in-test API server: the keys that
// verify Firmware come only from the operator's Secret in the agent's own namespace
// (--firmware-trust-secret, namespace from POD_NAMESPACE), read by name with a field selector (what
// a Role with resourceNames grants). A manifest author's Secret of the same name in their own
// namespace, holding their key, verifies nothing; a key added to the operator's Secret is picked
// up without a restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureFor, signedArtifact, signingKey, type Intent } from '../../pkg/ota/testing/artifacts.js';

const NODE = 'edge-1';
const AGENT_NAMESPACE = 'sensorlet-system';
const TRUST_SECRET = 'sensorlet-firmware-trust';
const dir = mkdtempSync(path.join(tmpdir(), 'ota-trust-cluster-'));
const canary = path.join(dir, 'canary');
let fake: FakeApiServer | undefined;
let server: ArtifactServer | undefined;
let agent: AgentProcess | undefined;

after(async () => {
  await agent?.kill();
  await fake?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
  if (agent) rmSync(agent.stateDir, { recursive: true, force: true });
});

function program(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const secret = (namespace: string, keys: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: TRUST_SECRET, namespace },
  type: 'Opaque',
  data: Object.fromEntries(Object.entries(keys).map(([name, pem]) => [`${name}.pem`, Buffer.from(pem).toString('base64')])),
});

test('cluster mode: the trust key comes from the Secret in the agent namespace; a same-named Secret in the manifest\'s namespace verifies nothing', async () => {
  const install = program('install.sh', `cp "$1" "${dir}/installed"`);
  const other = program('other-tool.sh', `touch "${canary}"`);
  const artifact = signedArtifact(32 * 1024);
  const attacker = signingKey();
  server = await ArtifactServer.start(artifact.body);
  fake = await FakeApiServer.start();
  fake.setNodeLabels(NODE, {});
  // The operator's Secret exists but does not hold the release key yet.
  fake.apply(secret(AGENT_NAMESPACE, { unrelated: signingKey().publicKeyPem }));
  // The manifest author's Secret: same name, their namespace, their key under the release name.
  fake.apply(secret('default', { release: attacker.publicKeyPem, attacker: attacker.publicKeyPem }));

  const genuine: Intent = { version: '2.0.0', target: 'command', install: { command: [install, '{file}'] } };
  const firmware = (name: string, intent: Intent, keyName: string, key = artifact.key): KubeObject => ({
    apiVersion: 'sensorlet.io/v1alpha1',
    kind: 'Firmware',
    metadata: { name, namespace: 'default' },
    spec: {
      ...intent,
      artifact: { url: server!.url(`${name}.bin`), sha256: artifact.sha256, size: artifact.size, signature: signatureFor(intent, artifact, key, keyName) },
      healthCheck: { timeout: '5s', require: ['sensorsReady'] },
      drain: { timeout: '1s' },
    },
  });
  const evil: Intent = { ...genuine, install: { command: [other, '{file}'] } };
  fake.apply(firmware('modem', genuine, 'release'));
  fake.apply(firmware('evil-release', evil, 'release', attacker));
  fake.apply(firmware('evil-own', evil, 'attacker', attacker));

  agent = await AgentProcess.start({
    deviceId: NODE,
    env: { POD_NAMESPACE: AGENT_NAMESPACE },
    extraArgs: [
      '--kubeconfig', fake.writeKubeconfig(dir),
      '--node-name', NODE,
      '--allow-firmware-commands', '--firmware-command-allowlist', install, other,
      '--firmware-trust-secret', TRUST_SECRET,
    ],
  });
  const nothingDownloaded = (name: string) => assert.equal(existsSync(path.join(agent!.stateDir, 'ota', `default.${name}`, 'artifact')), false, `${name}: nothing downloaded`);
  // Before the operator adds the key: refused, waiting for it.
  const missing = await agent.waitForCondition('Firmware', 'modem', 'Ready', 'False', 'TrustKeyNotFound');
  assert.match(missing.message, new RegExp(`release\\.pem.*${TRUST_SECRET}`));
  // The attacker's key under the trusted name does not verify (the trusted release key is not theirs);
  // their own key name is simply not in the operator's Secret.
  await agent.waitForCondition('Firmware', 'evil-own', 'Ready', 'False', 'TrustKeyNotFound');
  fake.apply(secret(AGENT_NAMESPACE, { release: artifact.key.publicKeyPem }));
  await agent.waitForCondition('Firmware', 'evil-release', 'Ready', 'False', 'SignatureInvalid', 15_000);
  await agent.waitForCondition('Firmware', 'modem', 'Ready', 'True', 'UpToDate', 20_000);
  assert.ok(readFileSync(path.join(dir, 'installed')).equals(artifact.body), 'installed through the allowed program');
  await agent.waitForCondition('Firmware', 'evil-own', 'Ready', 'False', 'TrustKeyNotFound');
  nothingDownloaded('evil-release');
  nothingDownloaded('evil-own');
  assert.equal(server.log.length, 1, 'only the legitimate artifact was downloaded');
  assert.equal(existsSync(canary), false, 'no program of the attacker ran');
  // The trust Secret is read by name in the agent namespace only (a Role with resourceNames can grant it).
  const trustReads = fake.requests.filter((request) => request.url.includes(`/namespaces/${AGENT_NAMESPACE}/secrets`));
  assert.ok(trustReads.length > 0, 'the trust Secret was read');
  for (const request of trustReads) assert.match(decodeURIComponent(request.url), new RegExp(`fieldSelector=metadata\\.name=${TRUST_SECRET}`), request.url);
  assert.equal(await agent.stop(), 0);
});
