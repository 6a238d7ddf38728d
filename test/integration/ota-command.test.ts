// Firmware with target: command through the real agent (CLI): a real HTTP artifact server, real
// install/rollback programs, kill -9 of the agent in Downloading, Installing and HealthCheck, then
// a restart: the update resumes or rolls back, and `phase` in status tells the truth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signedArtifact, type SignedArtifact } from '../../pkg/ota/testing/artifacts.js';

const SIZE = 256 * 1024;

interface Setup {
  dir: string;
  manifests: string;
  stateDir: string;
  server: ArtifactServer;
  artifact: SignedArtifact;
  events(): string[];
  installed(): Buffer | undefined;
}

async function setup(options: { installSleep?: number; mqttPort?: number; healthTimeout?: string }): Promise<Setup> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-it-'));
  const manifests = path.join(dir, 'manifests');
  const stateDir = path.join(dir, 'state');
  const artifact = signedArtifact(SIZE);
  const server = await ArtifactServer.start(artifact.body);
  const keyFile = path.join(dir, 'key.pem');
  writeFileSync(keyFile, artifact.publicKeyPem);
  const events = path.join(dir, 'events');
  const install = path.join(dir, 'install.sh');
  const rollback = path.join(dir, 'rollback.sh');
  // Install is two steps with a pause between them: a kill -9 there leaves a half-installed device
  // unless the agent rolls back on restart.
  writeFileSync(install, `#!/bin/sh\nset -e\necho $$ > "${dir}/install.pid"\necho "install-start" >> "${events}"\ncp "$1" "${dir}/installing"\nsleep ${options.installSleep ?? 0}\nmv "${dir}/installing" "${dir}/installed"\necho "install-done" >> "${events}"\n`);
  writeFileSync(rollback, `#!/bin/sh\necho rollback >> "${events}"\nrm -f "${dir}/installing" "${dir}/installed"\n`);
  chmodSync(install, 0o755);
  chmodSync(rollback, 0o755);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(manifests);
  const sink = options.mqttPort
    ? `mqtt: { url: "mqtt://127.0.0.1:${options.mqttPort}", topic: "t/{sensor}" }`
    : 'stdout: {}';
  writeFileSync(
    path.join(manifests, 'all.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  ${sink}
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 200ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Firmware
metadata: { name: modem }
spec:
  version: "2.0.0"
  target: command
  artifact:
    url: ${server.url()}
    sha256: "${artifact.sha256}"
    size: ${SIZE}
    signature: { algorithm: ed25519, value: "${artifact.signature}", publicKey: { file: ${keyFile} } }
  install: { command: ["${install}", "{file}"] }
  rollback: { command: ["${rollback}"] }
  healthCheck: { timeout: ${options.healthTimeout ?? '10s'}, require: [${options.mqttPort ? 'sinksConnected, sensorsReady' : 'sensorsReady'}] }
  drain: { timeout: 2s }
`,
  );
  return {
    dir,
    manifests,
    stateDir,
    server,
    artifact,
    events: () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n') : []),
    installed: () => (existsSync(path.join(dir, 'installed')) ? readFileSync(path.join(dir, 'installed')) : undefined),
  };
}

async function firmware(agent: AgentProcess) {
  return (await agent.resource('Firmware', 'modem'))?.status.nodes[0];
}

async function waitPhase(agent: AgentProcess, phase: string, timeoutMs = 20_000) {
  const logs = () => agent.stdout.split('\n').filter((line) => line.includes('"component":"ota"')).join('\n').slice(-2000);
  return waitFor(async () => {
    const node = await firmware(agent);
    return node?.phase === phase ? node : undefined;
  }, { timeoutMs, what: `Firmware phase ${phase}; now ${JSON.stringify(await firmware(agent).catch(() => undefined))}; ota logs: ${logs()}` });
}

test('target: command through the agent: Succeeded, status facts and Ready=UpToDate', async () => {
  const s = await setup({});
  const agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
  try {
    const node = await waitPhase(agent, 'Succeeded');
    assert.equal(node.currentVersion, '2.0.0');
    assert.equal(node.targetVersion, '2.0.0');
    assert.deepEqual(node.progress, { bytes: SIZE, total: SIZE });
    assert.equal(node.lastError, null);
    await agent.waitForCondition('Firmware', 'modem', 'Ready', 'True', 'UpToDate');
    assert.ok(s.installed()!.equals(s.artifact.body));
    assert.match(await agent.metrics(), new RegExp(`sensorlet_ota_download_bytes\\{firmware="modem"\\} ${SIZE}`));
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 while Downloading: the restarted agent resumes from the bytes on disk and succeeds', async () => {
  const s = await setup({});
  s.server.faults.bytesPerSecond = 64 * 1024; // ~4 s
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
  try {
    await waitFor(async () => ((await firmware(agent))?.progress?.bytes ?? 0) > SIZE / 4, { timeoutMs: 10_000, what: 'a quarter downloaded' });
    assert.equal((await firmware(agent))!.phase, 'Downloading');
    await agent.kill();
    s.server.faults.bytesPerSecond = undefined;
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
    await waitPhase(agent, 'Succeeded');
    assert.ok(s.server.log.length >= 2);
    const resumed = s.server.log[1];
    assert.equal(resumed.status, 206, 'the restart resumed with Range');
    assert.ok(resumed.start > 0);
    // Only the missing bytes were fetched after the restart.
    assert.equal(resumed.bytesSent, SIZE - resumed.start);
    assert.ok(s.installed()!.equals(s.artifact.body));
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 while Installing: the restarted agent rolls back, never leaves a half-installed device', async () => {
  const s = await setup({ installSleep: 30 });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
  try {
    await waitPhase(agent, 'Installing');
    // The installer logs install-start before its first step; kill once that step has happened.
    await waitFor(async () => s.events().includes('install-start') && existsSync(path.join(s.dir, 'installing')), { timeoutMs: 5000, what: 'install half done' });
    await agent.kill();
    // kill -9 of the agent does not stop its child: the device's installer is still at it. Stop it
    // too, as a power cut would.
    // The installer wrote its own pid; it and its sleep child are stopped by id.
    const pid = Number(readFileSync(path.join(s.dir, 'install.pid'), 'utf8').trim());
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    assert.ok(existsSync(path.join(s.dir, 'installing')), 'the device is half-installed now');
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
    const node = await waitPhase(agent, 'RolledBack');
    assert.equal(node.lastError.reason, 'InstallInterrupted');
    assert.equal(node.currentVersion, null);
    assert.deepEqual(s.events(), ['install-start', 'rollback']);
    assert.equal(existsSync(path.join(s.dir, 'installing')), false);
    assert.equal(s.installed(), undefined);
    await agent.waitForCondition('Firmware', 'modem', 'Ready', 'False', 'InstallInterrupted');
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 in HealthCheck: the restarted agent resumes the health check (phase HealthCheck), then rolls back when the sink never connects', async () => {
  const { freePort } = await import('../support/ports.js');
  const s = await setup({ mqttPort: await freePort(), healthTimeout: '4s' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
  try {
    await waitPhase(agent, 'HealthCheck');
    await agent.kill();
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir });
    const resumed = await firmware(agent);
    assert.equal(resumed?.phase, 'HealthCheck', 'status tells the truth right after the restart');
    const node = await waitPhase(agent, 'RolledBack', 20_000);
    assert.equal(node.lastError.reason, 'HealthCheckFailed');
    assert.match(node.lastError.message, /Sink\/default\/out not Connected/);
    assert.deepEqual(s.events(), ['install-start', 'install-done', 'rollback']);
    assert.equal(s.installed(), undefined, 'the rollback program ran');
  } finally {
    await agent.stop();
    await s.server.close();
  }
});
