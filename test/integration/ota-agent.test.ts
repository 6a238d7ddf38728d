// Firmware with target: agent through the real CLI (`sensorlet run --self-update`): the launcher,
// A/B slots in the state dir, a real HTTP artifact server and a real Mosquitto. The artifact is a
// sensorlet-bundle/1 of the current dist/ stamped with a new version, so the test tells the builds
// apart from `sensorlet_build_info{version,slot}`.
// kill -9 of launcher and agent together (the process group, as a power cut) in Installing,
// Restarting, HealthCheck and RollingBack, then a restart: the update resumes or rolls back and
// `phase` in status tells the truth. Installing (unpacking into the inactive slot), Restarting and
// RollingBack are short windows, held open in the killed agent with the failpoint
// SENSORLET_OTA_PAUSE_IN (pkg/ota/failpoint.ts), i.e. the kill lands after the phase's record and
// before its action; the restart runs without it. Downloading, Verifying and Draining run the same
// coordinator code as for target: command, whose kill -9 tests cover them (ota-command.test.ts).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { freePort, waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureYaml, signedArtifact, trustKey, type SignedArtifact } from '../../pkg/ota/testing/artifacts.js';
import { packAgentBundle, type PackOptions } from '../../pkg/ota/bundle.js';
import { readActive } from '../../pkg/ota/slots.js';
import { PAUSE_ENV } from '../../pkg/ota/failpoint.js';
import { OtaStateFile } from '../../pkg/ota/state.js';
import { assertPhases, firmwareStatus, stopWatchers, watchPhases } from './ota-phases.js';

const INSTALLED_VERSION = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let broker: Mosquitto;
before(async () => (broker = await Mosquitto.start()));
after(async () => broker.stop());
afterEach(stopWatchers);

interface Setup {
  dir: string;
  manifests: string;
  stateDir: string;
  server: ArtifactServer;
  artifact: SignedArtifact;
  /** Applies the Firmware (writes its manifest into the watched folder). */
  applyFirmware(): void;
  /** The operator's flags: self-update, and the trust store folder holding the release key. */
  args: string[];
}

async function setup(options: { version: string; bundle?: PackOptions; deadSink?: boolean; healthTimeout?: string; topic: string }): Promise<Setup> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-agent-it-'));
  const manifests = path.join(dir, 'manifests');
  const stateDir = path.join(dir, 'state');
  mkdirSync(manifests);
  const artifact = signedArtifact(0, 'ed25519', packAgentBundle(PACKAGE_ROOT, { version: options.version, ...options.bundle }));
  const server = await ArtifactServer.start(artifact.body);
  const trustDir = path.join(dir, 'trust');
  trustKey(trustDir, 'release', artifact.key);
  const dead = options.deadSink ? await freePort() : 0;
  writeFileSync(
    path.join(manifests, 'data.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter, labels: { app: ota } }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 50ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: broker }
spec:
  selector: { matchLabels: { app: ota } }
  mqtt: { url: "${broker.url}", qos: 1, topic: "${options.topic}/{sensor}" }
  batch: { maxReadings: 100, maxDelay: 50ms }
${
  options.deadSink
    ? `---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: dead }
spec:
  selector: { matchLabels: { app: none } }
  mqtt: { url: "mqtt://127.0.0.1:${dead}", qos: 1, topic: "x/{sensor}" }
`
    : ''
}`,
  );
  const firmware = `apiVersion: sensorlet.io/v1alpha1
kind: Firmware
metadata: { name: agent }
spec:
  version: "${options.version}"
  target: agent
  artifact:
    url: ${server.url('sensorlet.bundle')}
    sha256: "${artifact.sha256}"
    size: ${artifact.body.length}
    signature: ${signatureYaml(artifact.sign({ version: options.version, target: 'agent' }))}
  healthCheck: { timeout: ${options.healthTimeout ?? '10s'}, require: [sinksConnected, sensorsReady] }
  drain: { timeout: 5s }
`;
  const args = ['--self-update', '--firmware-trust-dir', trustDir];
  return { dir, manifests, stateDir, server, artifact, args, applyFirmware: () => writeFileSync(path.join(manifests, 'firmware.yaml'), firmware) };
}

async function firmware(agent: AgentProcess): Promise<any> {
  return firmwareStatus(agent, 'agent');
}

async function waitPhase(agent: AgentProcess, phase: string, timeoutMs = 30_000) {
  try {
    return await waitFor(
      async () => {
        const node = await firmware(agent);
        return node?.phase === phase ? node : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `Firmware phase ${phase}` },
    );
  } catch (error) {
    // The state at the deadline, not at the start of the wait.
    const now = await firmware(agent).catch((cause: Error) => cause.message);
    throw new Error(`${(error as Error).message}; now ${JSON.stringify(now)}; agent log: ${(agent.stderr + agent.stdout).slice(-4000)}`);
  }
}

/** The build the agent runs now, from its metrics. */
async function buildInfo(agent: AgentProcess): Promise<{ version: string; slot: string }> {
  const match = /sensorlet_build_info\{version="([^"]+)",slot="([^"]+)"\} 1/.exec(await agent.metrics());
  assert.ok(match, 'sensorlet_build_info is exported');
  return { version: match[1], slot: match[2] };
}

function runsOf(readings: { seq: number; value: number }[]): number {
  // The counter restarts at 0 in every process; seq does not: seq - value names the process.
  return new Set(readings.map((reading) => reading.seq - reading.value)).size;
}

test('target: agent: the agent restarts into the new build and commits it (Succeeded); the counter stream loses no seq', async () => {
  const s = await setup({ version: '9.9.9-ota', topic: 'ota-ok' });
  const subscriber = await Subscriber.connect(broker.url, 'ota-ok/#');
  const agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    assert.deepEqual(await buildInfo(agent), { version: INSTALLED_VERSION, slot: 'installed' });
    await subscriber.waitForReadings((readings) => readings.length >= 20, 10_000, 'readings before the update');
    s.applyFirmware();
    const node = await waitPhase(agent, 'Succeeded');
    assert.equal(node.currentVersion, '9.9.9-ota');
    assert.equal(node.targetVersion, '9.9.9-ota');
    assert.equal(node.lastError, null);
    assert.deepEqual(await buildInfo(agent), { version: '9.9.9-ota', slot: 'a' });
    await agent.waitForCondition('Firmware', 'agent', 'Ready', 'True', 'UpToDate');
    const active = readActive(s.stateDir)!;
    assert.equal(active.slot, 'a');
    assert.equal(active.state, 'good', 'the new slot is committed');
    // Every seq sealed before the update arrives after it: the stream, deduplicated, has no hole,
    // and it spans two processes (the installed build and the new one).
    const afterUpdate = subscriber.readingsOf('counter').length;
    await subscriber.waitForReadings((readings) => readings.length >= afterUpdate + 20, 10_000, 'readings from the new build');
    assertInOrderWithoutGaps(subscriber.readingsOf('counter'), 'counter across the self-update');
    assert.equal(runsOf(subscriber.readingsOf('counter')), 2, 'readings come from the old and the new process');
    // The bundle carries the build's precompiled validators: the new build does not compile them.
    assert.ok(!agent.stderr.includes('ValidatorsCompiledAtRunTime'), 'the new build warned that it compiled its validators');
    assert.equal(await agent.stop(), 0, 'SIGTERM reaches the agent through the launcher; exit 0');
  } finally {
    await agent.kill();
    await subscriber.close();
    await s.server.close();
  }
});

test('target: agent: a build that exits at start-up is tried MAX_TRIAL_BOOTS times, then RolledBack and the previous build runs', async () => {
  const s = await setup({
    version: '9.9.9-broken',
    topic: 'ota-broken',
    bundle: { override: { 'dist/cmd/sensorlet/main.js': "process.stderr.write('broken build\\n');\nprocess.exit(3);\n" } },
  });
  const subscriber = await Subscriber.connect(broker.url, 'ota-broken/#');
  const agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    await subscriber.waitForReadings((readings) => readings.length >= 10, 10_000, 'readings before the update');
    s.applyFirmware();
    const node = await waitPhase(agent, 'RolledBack');
    assert.equal(node.lastError.reason, 'HealthCheckFailed');
    assert.match(node.lastError.message, /did not stay up: 3 starts/);
    assert.equal(node.currentVersion, INSTALLED_VERSION);
    assert.equal((agent.stderr.match(/broken build/g) ?? []).length, 3, 'the broken build was started 3 times');
    assert.deepEqual(await buildInfo(agent), { version: INSTALLED_VERSION, slot: 'installed' });
    assert.equal(readActive(s.stateDir)?.slot ?? null, null, 'the installed build is active again');
    const count = subscriber.readingsOf('counter').length;
    await subscriber.waitForReadings((readings) => readings.length >= count + 10, 10_000, 'readings after the rollback');
    assertInOrderWithoutGaps(subscriber.readingsOf('counter'), 'counter across the failed update');
  } finally {
    await agent.kill();
    await subscriber.close();
    await s.server.close();
  }
});

test('target: agent: a health check that fails in the new build (a Sink that cannot connect) → RolledBack, the previous build runs', async () => {
  const s = await setup({ version: '9.9.9-unhealthy', topic: 'ota-unhealthy', deadSink: true, healthTimeout: '3s' });
  const agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    s.applyFirmware();
    await waitPhase(agent, 'HealthCheck');
    const node = await waitPhase(agent, 'RolledBack');
    assert.equal(node.lastError.reason, 'HealthCheckFailed');
    assert.match(node.lastError.message, /Sink\/default\/dead not Connected/);
    assert.equal(node.currentVersion, INSTALLED_VERSION);
    assert.deepEqual(await buildInfo(agent), { version: INSTALLED_VERSION, slot: 'installed' });
    await agent.waitForCondition('Firmware', 'agent', 'Ready', 'False', 'HealthCheckFailed');
    assert.equal(readActive(s.stateDir)?.slot ?? null, null);
  } finally {
    await agent.kill();
    await s.server.close();
  }
});

test('target: agent: kill -9 of launcher and agent during the new build\'s health check; the restart resumes it in the new build and commits', async () => {
  const s = await setup({ version: '9.9.9-resume', topic: 'ota-resume', deadSink: true, healthTimeout: '60s' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
  try {
    s.applyFirmware();
    await waitPhase(agent, 'HealthCheck');
    assert.equal((await buildInfo(agent)).version, '9.9.9-resume');
    await agent.kill();
    assert.equal(readActive(s.stateDir)?.state, 'trial');
    // The dead Sink is gone on restart, so the resumed health check passes.
    const data = path.join(s.manifests, 'data.yaml');
    writeFileSync(data, readFileSync(data, 'utf8').split('---\napiVersion: sensorlet.io/v1alpha1\nkind: Sink\nmetadata: { name: dead }')[0]);
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    assert.equal((await buildInfo(agent)).version, '9.9.9-resume', 'the launcher starts the trial build again');
    const resumed = await firmware(agent);
    assert.ok(resumed?.phase === 'HealthCheck' || resumed?.phase === 'Succeeded', `phase tells the truth after the restart: ${resumed?.phase}`);
    const node = await waitPhase(agent, 'Succeeded');
    assert.equal(node.currentVersion, '9.9.9-resume');
    assert.equal(readActive(s.stateDir)?.state, 'good');
  } finally {
    await agent.kill();
    await s.server.close();
  }
});

/** The durable OTA record, read from the state dir as a restarted agent reads it. */
function recordOf(s: Setup) {
  return OtaStateFile.read(path.join(s.stateDir, 'ota', 'default.agent', 'state.json'));
}

test('target: agent: kill -9 of launcher and agent in Installing, before the slot is written; the restart rolls back (InstallInterrupted) and the previous build stays', async () => {
  const s = await setup({ version: '9.9.9-installing', topic: 'ota-installing' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'Installing:20000' } });
  try {
    s.applyFirmware();
    await waitPhase(agent, 'Installing');
    await agent.kill();
    assert.equal(recordOf(s)?.phase, 'Installing', 'the record the crash left names Installing');
    assert.equal(readActive(s.stateDir)?.slot ?? null, null);
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchPhases(async () => (await firmware(agent))?.phase);
    const node = await waitPhase(agent, 'RolledBack');
    assertPhases(await watch.stop(), ['Installing', 'RollingBack', 'RolledBack']);
    assert.equal(node.lastError.reason, 'InstallInterrupted');
    assert.equal(node.currentVersion, INSTALLED_VERSION, 'the previous version stays current');
    assert.deepEqual(await buildInfo(agent), { version: INSTALLED_VERSION, slot: 'installed' });
    assert.equal(readActive(s.stateDir)?.slot ?? null, null, 'no slot was activated');
    await agent.waitForCondition('Firmware', 'agent', 'Ready', 'False', 'InstallInterrupted');
  } finally {
    await agent.kill();
    await s.server.close();
  }
});

test('target: agent: kill -9 of launcher and agent in Restarting, before the new slot is activated; the restart activates it, restarts into it and commits', async () => {
  const s = await setup({ version: '9.9.9-restarting', topic: 'ota-restarting' });
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'Restarting:20000' } });
  try {
    s.applyFirmware();
    await waitPhase(agent, 'Restarting');
    assert.deepEqual(await buildInfo(agent), { version: INSTALLED_VERSION, slot: 'installed' }, 'the previous build still runs');
    await agent.kill();
    const record = recordOf(s);
    assert.equal(record?.phase, 'Restarting', 'the record the crash left names Restarting');
    assert.equal(record?.slots?.trying, 'a', 'the new build was installed into slot a before Restarting was written');
    assert.equal(record?.currentVersion, INSTALLED_VERSION);
    assert.equal(readActive(s.stateDir)?.slot ?? null, null, 'the slot was not activated yet: the launcher starts the installed build');
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchPhases(async () => (await firmware(agent))?.phase);
    const node = await waitPhase(agent, 'Succeeded');
    assertPhases(await watch.stop(), ['Restarting', 'HealthCheck', 'Succeeded']);
    assert.equal(node.currentVersion, '9.9.9-restarting');
    assert.equal(node.lastError, null);
    assert.deepEqual(await buildInfo(agent), { version: '9.9.9-restarting', slot: 'a' });
    assert.equal(readActive(s.stateDir)?.state, 'good', 'the new slot is committed');
    assert.equal(s.server.log.length, 1, 'the bundle was not downloaded again');
  } finally {
    await agent.kill();
    await s.server.close();
  }
});

test('target: agent: kill -9 of launcher and agent in RollingBack while the new build runs; the restart rolls back again and the previous build runs (RolledBack)', async () => {
  const s = await setup({ version: '9.9.9-rollingback', topic: 'ota-rollingback', deadSink: true, healthTimeout: '3s' });
  // The launcher hands its environment to the build it starts: the new build pauses in RollingBack.
  let agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args, env: { [PAUSE_ENV]: 'RollingBack:20000' } });
  try {
    s.applyFirmware();
    const rolling = await waitPhase(agent, 'RollingBack');
    assert.equal(rolling.lastError.reason, 'HealthCheckFailed');
    assert.deepEqual(await buildInfo(agent), { version: '9.9.9-rollingback', slot: 'a' }, 'the new build runs and has not returned to the previous one yet');
    await agent.kill();
    assert.equal(recordOf(s)?.phase, 'RollingBack', 'the record the crash left names RollingBack');
    assert.deepEqual({ slot: readActive(s.stateDir)?.slot, state: readActive(s.stateDir)?.state }, { slot: 'a', state: 'trial' }, 'slot a is still the (uncommitted) trial');
    // The launcher starts the trial build again; its coordinator rolls back (activates the previous
    // build and restarts into it), and the previous build ends the rollback.
    agent = await AgentProcess.start({ manifests: s.manifests, stateDir: s.stateDir, extraArgs: s.args });
    const watch = watchPhases(async () => (await firmware(agent))?.phase);
    const node = await waitPhase(agent, 'RolledBack');
    assertPhases(await watch.stop(), ['RollingBack', 'RolledBack']);
    assert.equal(node.lastError.reason, 'HealthCheckFailed', 'the cause of the rollback survives the crash');
    assert.equal(node.currentVersion, INSTALLED_VERSION, 'the previous version stays current');
    assert.deepEqual(await buildInfo(agent), { version: INSTALLED_VERSION, slot: 'installed' });
    assert.equal(readActive(s.stateDir)?.slot ?? null, null, 'the installed build is active again');
    await agent.waitForCondition('Firmware', 'agent', 'Ready', 'False', 'HealthCheckFailed');
  } finally {
    await agent.kill();
    await s.server.close();
  }
});
