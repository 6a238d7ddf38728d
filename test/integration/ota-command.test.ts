// Firmware with target: command through the real agent (CLI): a real HTTP artifact server, real
// install/rollback programs, and a real kill -9 of the agent in every in-flight phase, then a
// restart: the update resumes or rolls back, never leaves a half-installed device, and `phase` in
// status tells the truth (right after the restart and at the end).
//   Downloading, Installing, HealthCheck, RollingBack (rollback program cut halfway): windows the
//     test makes long with a slow link, a slow installer or rollback, a sink that never connects;
//   Draining: long because the sink's broker is down (drain.timeout 20s); the restart has it up;
//   Verifying, Restarting, RollingBack (before its action): short windows, held open with the
//     failpoint SENSORLET_OTA_PAUSE_IN (pkg/ota/failpoint.ts) in the killed agent only; the
//     restarted agent runs without it.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { freePort, waitFor } from '../support/ports.js';
import { assertPhases, firmwareStatus, stopWatchers, waitSeen, watchPhases } from './ota-phases.js';
import { PAUSE_ENV } from '../../pkg/ota/failpoint.js';
import { OtaStateFile, type OtaRecord } from '../../pkg/ota/state.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureYaml, signedArtifact, trustKey, type SignedArtifact } from '../../pkg/ota/testing/artifacts.js';

const SIZE = 256 * 1024;

interface Setup {
  dir: string;
  manifests: string;
  stateDir: string;
  server: ArtifactServer;
  artifact: SignedArtifact;
  events(): string[];
  installed(): Buffer | undefined;
  /** The durable OTA record, read from the state dir as a restarted agent reads it. */
  record(): OtaRecord | undefined;
  /** Where the agent keeps the downloaded artifact. */
  artifactFile: string;
  /** The operator's flags: install and rollback programs allowed, the trust store folder. */
  args: string[];
}

interface SetupOptions {
  installSleep?: number;
  mqttPort?: number;
  healthTimeout?: string;
  drainTimeout?: string;
  sensorInterval?: string;
  /**
   * The rollback program is two steps: it marks the device `rolling-back`, sleeps 30 s while the
   * file `rollback-slow` exists, then removes `installed` and the mark (a kill between them leaves
   * a half rolled-back device).
   */
  slowRollback?: boolean;
}

async function setup(options: SetupOptions): Promise<Setup> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-it-'));
  const manifests = path.join(dir, 'manifests');
  const stateDir = path.join(dir, 'state');
  const artifact = signedArtifact(SIZE);
  const server = await ArtifactServer.start(artifact.body);
  const trustDir = path.join(dir, 'trust');
  trustKey(trustDir, 'release', artifact.key);
  const events = path.join(dir, 'events');
  const install = path.join(dir, 'install.sh');
  const rollback = path.join(dir, 'rollback.sh');
  // Install is two steps with a pause between them: a kill -9 there leaves a half-installed device
  // unless the agent rolls back on restart.
  writeFileSync(install, `#!/bin/sh\nset -e\necho $$ > "${dir}/install.pid"\necho "install-start" >> "${events}"\ncp "$1" "${dir}/installing"\nsleep ${options.installSleep ?? 0}\nmv "${dir}/installing" "${dir}/installed"\necho "install-done" >> "${events}"\n`);
  writeFileSync(
    rollback,
    options.slowRollback
      ? `#!/bin/sh\necho $$ > "${dir}/rollback.pid"\necho "rollback-start" >> "${events}"\ntouch "${dir}/rolling-back"\nrm -f "${dir}/installing"\nif [ -f "${dir}/rollback-slow" ]; then sleep 30; fi\nrm -f "${dir}/installed" "${dir}/rolling-back"\necho "rollback-done" >> "${events}"\n`
      : `#!/bin/sh\necho rollback >> "${events}"\nrm -f "${dir}/installing" "${dir}/installed"\n`,
  );
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
  interval: ${options.sensorInterval ?? '200ms'}
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
    signature: ${signatureYaml(artifact.sign({ version: '2.0.0', target: 'command', install: { command: [install, '{file}'] }, rollback: { command: [rollback] } }))}
  install: { command: ["${install}", "{file}"] }
  rollback: { command: ["${rollback}"] }
  healthCheck: { timeout: ${options.healthTimeout ?? '10s'}, require: [${options.mqttPort ? 'sinksConnected, sensorsReady' : 'sensorsReady'}] }
  drain: { timeout: ${options.drainTimeout ?? '2s'} }
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
    record: () => OtaStateFile.read(path.join(stateDir, 'ota', 'default.modem', 'state.json')),
    artifactFile: path.join(stateDir, 'ota', 'default.modem', 'artifact'),
    args: ['--allow-firmware-commands', '--firmware-command-allowlist', install, rollback, '--firmware-trust-dir', trustDir],
  };
}

async function firmware(agent: AgentProcess): Promise<any> {
  return firmwareStatus(agent, 'modem');
}

async function waitPhase(agent: AgentProcess, phase: string, timeoutMs = 20_000) {
  const logs = () => agent.stderr.split('\n').filter((line) => line.includes('"component":"ota"')).join('\n').slice(-2000);
  return waitSeen(
    async () => {
      const node = await firmware(agent);
      return node?.phase === phase ? node : undefined;
    },
    `Firmware phase ${phase}`,
    async () => ({ firmware: await firmware(agent).catch((cause: Error) => cause.message), otaLogs: logs() }),
    timeoutMs,
  );
}

afterEach(stopWatchers);

function watchFirmware(agent: AgentProcess) {
  return watchPhases(async () => (await firmware(agent))?.phase);
}

test('target: command through the agent: Succeeded, status facts and Ready=UpToDate', async () => {
  const s = await setup({});
  const agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    const node = await waitPhase(agent, 'Succeeded');
    assert.equal(node.currentVersion, '2.0.0');
    assert.equal(node.targetVersion, '2.0.0');
    assert.deepEqual(node.progress, { bytes: SIZE, total: SIZE });
    assert.equal(node.lastError, null);
    await agent.waitForCondition('Firmware', 'modem', 'Ready', 'True', 'UpToDate');
    assert.ok(s.installed()!.equals(s.artifact.body));
    const metrics = await agent.metrics();
    assert.match(metrics, new RegExp(`sensorlet_firmware_download_bytes\\{namespace="default",firmware="modem"\\} ${SIZE}`));
    assert.match(metrics, /^sensorlet_firmware_download_progress_ratio\{namespace="default",firmware="modem"\} 1$/m);
    assert.match(metrics, /^sensorlet_firmware_phase\{namespace="default",firmware="modem",phase="Succeeded"\} 1$/m);
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 while Downloading: the restarted agent resumes from the bytes on disk and succeeds', async () => {
  const s = await setup({});
  s.server.faults.bytesPerSecond = 64 * 1024; // ~4 s
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    await waitFor(async () => ((await firmware(agent))?.progress?.bytes ?? 0) > SIZE / 4, { timeoutMs: 10_000, what: 'a quarter downloaded' });
    assert.equal((await firmware(agent))!.phase, 'Downloading');
    await agent.kill();
    s.server.faults.bytesPerSecond = undefined;
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
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
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
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
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
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
  const s = await setup({ mqttPort: await freePort(), healthTimeout: '4s' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    await waitPhase(agent, 'HealthCheck');
    await agent.kill();
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
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

test('kill -9 in Verifying: the restarted agent verifies the bytes on disk again, then installs once and succeeds', async () => {
  const s = await setup({});
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'Verifying:15000' } });
  try {
    await waitPhase(agent, 'Verifying');
    await agent.kill();
    assert.equal(s.record()?.phase, 'Verifying', 'the record the crash left names Verifying');
    assert.equal(readFileSync(s.artifactFile).length, SIZE, 'the downloaded artifact is on disk');
    assert.deepEqual(s.events(), [], 'nothing was installed before verification passed');
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchFirmware(agent);
    const node = await waitPhase(agent, 'Succeeded');
    assertPhases(await watch.stop(), ['Verifying', 'Draining', 'Installing', 'Restarting', 'HealthCheck', 'Succeeded']);
    assert.equal(node.currentVersion, '2.0.0');
    assert.equal(node.lastError, null);
    assert.deepEqual(s.events(), ['install-start', 'install-done'], 'the install program ran once');
    assert.ok(s.installed()!.equals(s.artifact.body));
    assert.equal(s.server.log.length, 1, 'the restart verified the bytes on disk; it did not download them again');
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 in Verifying, then the artifact on disk is corrupted: the restart verifies again and refuses it (ChecksumMismatch); nothing installed', async () => {
  const s = await setup({});
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'Verifying:15000' } });
  try {
    await waitPhase(agent, 'Verifying');
    await agent.kill();
    assert.equal(s.record()?.phase, 'Verifying');
    // A byte flipped while the agent was down (bad flash, a stray write): the restart must not
    // trust a verification it did not finish.
    const bytes = readFileSync(s.artifactFile);
    bytes[SIZE >> 1] ^= 0xff;
    writeFileSync(s.artifactFile, bytes);
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchFirmware(agent);
    const node = await waitPhase(agent, 'Failed');
    assertPhases(await watch.stop(), ['Verifying', 'Failed']);
    assert.equal(node.lastError.reason, 'ChecksumMismatch');
    assert.equal(node.currentVersion, null);
    assert.deepEqual(s.events(), [], 'the install program never ran');
    assert.equal(s.installed(), undefined);
    assert.equal(existsSync(s.artifactFile), false, 'the file that failed verification is not kept');
    await agent.waitForCondition('Firmware', 'modem', 'Ready', 'False', 'ChecksumMismatch');
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 while Draining (the sink\'s broker is down): the restart drains again with the broker up, installs once and succeeds; the readings queued before the kill arrive', async () => {
  const port = await freePort();
  // Nothing listens on the sink's port yet: readings pile up in the outbox and the drain waits (20 s).
  const s = await setup({ mqttPort: port, drainTimeout: '20s', sensorInterval: '100ms' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  let broker: Mosquitto | undefined;
  let subscriber: Subscriber | undefined;
  try {
    await waitPhase(agent, 'Draining');
    const sinkQueued = async () => (await agent.resource('Sink', 'out'))?.status.nodes[0]?.queued as number | undefined;
    const queued = await waitSeen(async () => ((await sinkQueued()) ?? 0) >= 10 && (await sinkQueued()), 'at least 10 readings queued for the sink', sinkQueued);
    // The drain seals the open chunk every 100 ms: what was counted is in sealed chunks now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await firmware(agent))?.phase, 'Draining', 'still draining (drain.timeout 20s)');
    await agent.kill();
    assert.equal(s.record()?.phase, 'Draining', 'the record the crash left names Draining');
    assert.deepEqual(s.events(), [], 'nothing installed before the drain ended');
    broker = await Mosquitto.start({ port });
    subscriber = await Subscriber.connect(broker.url, 't/#');
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchFirmware(agent);
    const node = await waitPhase(agent, 'Succeeded');
    assertPhases(await watch.stop(), ['Draining', 'Installing', 'Restarting', 'HealthCheck', 'Succeeded']);
    assert.equal(node.currentVersion, '2.0.0');
    assert.deepEqual(s.events(), ['install-start', 'install-done'], 'the install program ran once, after the drain');
    assert.ok(s.installed()!.equals(s.artifact.body));
    assert.equal(s.record()?.drained?.queued, 0, 'the drain ran again and emptied the outbox before installing');
    // The killed process's readings (seq - value names the process: the counter restarts at 0) all
    // arrive, without a gap, after the restart.
    const readings = subscriber.readingsOf('counter');
    const first = readings.reduce((min, reading) => (reading.seq < min.seq ? reading : min), readings[0]);
    assert.ok(first, 'readings arrived');
    const killedRun = readings.filter((reading) => reading.seq - reading.value === first.seq - first.value);
    assertInOrderWithoutGaps(killedRun, 'readings of the killed agent');
    assert.ok(new Set(killedRun.map((reading) => reading.seq)).size >= queued, `${queued} were queued before the kill; ${killedRun.length} arrived`);
  } finally {
    await agent.stop();
    await subscriber?.close();
    await broker?.stop();
    await s.server.close();
  }
});

test('kill -9 in Restarting (target: command): the restarted agent goes on to HealthCheck and commits; the install is not run again', async () => {
  const s = await setup({});
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'Restarting:15000' } });
  try {
    await waitPhase(agent, 'Restarting');
    await agent.kill();
    assert.equal(s.record()?.phase, 'Restarting', 'the record the crash left names Restarting');
    assert.equal(s.record()?.currentVersion, undefined, 'not committed before the health check');
    assert.deepEqual(s.events(), ['install-start', 'install-done']);
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchFirmware(agent);
    const node = await waitPhase(agent, 'Succeeded');
    assertPhases(await watch.stop(), ['Restarting', 'HealthCheck', 'Succeeded']);
    assert.equal(node.currentVersion, '2.0.0');
    assert.equal(node.lastError, null);
    assert.deepEqual(s.events(), ['install-start', 'install-done'], 'neither install nor rollback ran after the restart');
    assert.ok(s.installed()!.equals(s.artifact.body));
    await agent.waitForCondition('Firmware', 'modem', 'Ready', 'True', 'UpToDate');
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 in RollingBack before the rollback program ran: the restart runs it and ends RolledBack; the previous version stays current', async () => {
  // The sink never connects, so the health check fails after 2 s and the update rolls back.
  const s = await setup({ mqttPort: await freePort(), healthTimeout: '2s' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'RollingBack:15000' } });
  try {
    const rolling = await waitPhase(agent, 'RollingBack');
    assert.equal(rolling.lastError.reason, 'HealthCheckFailed');
    await agent.kill();
    assert.equal(s.record()?.phase, 'RollingBack', 'the record the crash left names RollingBack');
    assert.deepEqual(s.events(), ['install-start', 'install-done'], 'the rollback program had not run');
    assert.ok(s.installed(), 'the new firmware is still on the device');
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchFirmware(agent);
    const node = await waitPhase(agent, 'RolledBack');
    assertPhases(await watch.stop(), ['RollingBack', 'RolledBack']);
    assert.equal(node.lastError.reason, 'HealthCheckFailed', 'the cause of the rollback survives the crash');
    assert.equal(node.currentVersion, null, 'the previous (unknown) version stays current');
    assert.deepEqual(s.events(), ['install-start', 'install-done', 'rollback']);
    assert.equal(s.installed(), undefined, 'the rollback program ran');
    await agent.waitForCondition('Firmware', 'modem', 'Ready', 'False', 'HealthCheckFailed');
  } finally {
    await agent.stop();
    await s.server.close();
  }
});

test('kill -9 while the rollback program runs: the restart runs the rollback again from the start and ends RolledBack', async () => {
  const s = await setup({ mqttPort: await freePort(), healthTimeout: '2s', slowRollback: true });
  writeFileSync(path.join(s.dir, 'rollback-slow'), '');
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    await waitPhase(agent, 'RollingBack');
    await waitSeen(async () => s.events().includes('rollback-start') && existsSync(path.join(s.dir, 'rolling-back')), 'the rollback program half done', () => s.events());
    await agent.kill();
    // Like a power cut, the kill takes the rollback program down with the agent (same process group);
    // by its pid as well, in case it outlived the group kill.
    try {
      process.kill(Number(readFileSync(path.join(s.dir, 'rollback.pid'), 'utf8').trim()), 'SIGKILL');
    } catch {
      // already gone
    }
    assert.equal(s.record()?.phase, 'RollingBack');
    assert.ok(existsSync(path.join(s.dir, 'rolling-back')) && s.installed(), 'the device is half rolled back now');
    rmSync(path.join(s.dir, 'rollback-slow'));
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchFirmware(agent);
    const node = await waitPhase(agent, 'RolledBack');
    assertPhases(await watch.stop(), ['RollingBack', 'RolledBack']);
    assert.equal(node.lastError.reason, 'HealthCheckFailed');
    assert.equal(node.currentVersion, null);
    assert.deepEqual(s.events(), ['install-start', 'install-done', 'rollback-start', 'rollback-start', 'rollback-done'], 'the rollback ran again, to the end');
    assert.equal(existsSync(path.join(s.dir, 'rolling-back')), false);
    assert.equal(s.installed(), undefined);
  } finally {
    await agent.stop();
    await s.server.close();
  }
});
