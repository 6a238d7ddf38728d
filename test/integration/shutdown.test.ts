// SIGTERM/SIGINT end the real agent (the CLI) with exit 0 within 2 s whatever it is doing: a
// broker down at a long reconnect backoff, a firmware download under way, a reload under way. What
// it had accepted is kept: readings queued before the signal are delivered after a restart, seq
// continues without a gap, and a download resumes from the bytes it had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { freePort, waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureYaml, signedArtifact, trustKey } from '../../pkg/ota/testing/artifacts.js';
import { OtaStateFile } from '../../pkg/ota/state.js';

const STOP_LIMIT_MS = 2000;

/** Sends the signal and measures the time to the exit of the process (killed after 15 s: a hang fails, it does not hold the run). */
async function signalAndTime(agent: AgentProcess, signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
  const sent = performance.now();
  agent.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const hung = await Promise.race([agent.exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 15_000)))]);
  clearTimeout(timer);
  if (hung) await agent.kill();
  return { code: hung ? null : await agent.exited, ms: performance.now() - sent };
}

function folder(prefix: string): { dir: string; manifests: string; stateDir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const manifests = path.join(dir, 'manifests');
  const stateDir = path.join(dir, 'state');
  mkdirSync(manifests);
  return { dir, manifests, stateDir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The longest delivery backoff a log line announced ("retryInMs"), 0 before any. */
function longestRetry(agent: AgentProcess): number {
  let longest = 0;
  for (const line of agent.stderr.split('\n')) {
    const match = /"retryInMs":(\d+)/.exec(line);
    if (match) longest = Math.max(longest, Number(match[1]));
  }
  return longest;
}

test('SIGTERM with the broker down during a delivery backoff: exit 0 within 2 s; the queued readings arrive after a restart, seq continues', async () => {
  const port = await freePort(); // nothing listens until the restart
  const f = folder('sensorlet-shutdown-broker-');
  writeFileSync(
    path.join(f.manifests, 'all.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 100ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: broker }
spec:
  selector: {}
  mqtt: { url: "mqtt://127.0.0.1:${port}", topic: "t/{sensor}", payload: batch }
  batch: { maxReadings: 5, maxDelay: 100ms }
`,
  );
  let agent = await AgentProcess.start({ manifests: f.manifests, stateDir: f.stateDir });
  let broker: Mosquitto | undefined;
  let subscriber: Subscriber | undefined;
  try {
    // Delivery backs off 250 ms, 500 ms, ... doubling (capped at 30 s), one step per failed
    // reconnect; the 4 s step starts ~16 s into the outage, and the signal comes inside it.
    await waitFor(() => longestRetry(agent) >= 4000, { timeoutMs: 40_000, intervalMs: 100, what: 'a 4 s delivery backoff' });
    // Sends while offline wait for the connection: one `connect` listener each used to pile up.
    assert.doesNotMatch(agent.stderr, /MaxListenersExceededWarning/);
    const before = (await agent.resource('Sensor', 'counter'))!.status.nodes[0].lastReading.seq as number;
    assert.ok(before > 100, `readings were queued while the broker was down (seq ${before})`);
    const { code, ms } = await signalAndTime(agent, 'SIGTERM');
    assert.ok(ms < STOP_LIMIT_MS, `SIGTERM to exit took ${Math.round(ms)} ms`);
    assert.equal(code, 0, `exit code; stderr: ${agent.stderr.slice(-1000)}`);
    assert.ok(existsSync(path.join(f.stateDir, 'status.json')), 'status persisted');

    broker = await Mosquitto.start({ port });
    subscriber = await Subscriber.connect(broker.url, 't/#');
    agent = await AgentProcess.start({ manifests: f.manifests, stateDir: f.stateDir });
    await subscriber.waitForReadings((readings) => readings.some((reading) => reading.seq >= before + 20), 20_000, `seq past ${before + 20}`);
    const readings = subscriber.readingsOf('counter');
    assertInOrderWithoutGaps(readings, 'counter across the restart');
    assert.equal(readings[0].seq, 1, 'the first reading queued before SIGTERM arrived');
    // seq continued after the restart: a seq never names two different readings.
    const timeOfSeq = new Map<number, string>();
    for (const reading of readings) {
      const seen = timeOfSeq.get(reading.seq);
      assert.ok(seen === undefined || seen === reading.time, `seq ${reading.seq} was used twice`);
      timeOfSeq.set(reading.seq, reading.time);
    }
  } finally {
    await agent.kill();
    await subscriber?.close();
    await broker?.stop();
    f.cleanup();
  }
});

test('SIGTERM during a firmware download: exit 0 within 2 s; the restart resumes the download from the bytes on disk', async () => {
  const SIZE = 256 * 1024;
  const f = folder('sensorlet-shutdown-ota-');
  const artifact = signedArtifact(SIZE);
  const server = await ArtifactServer.start(artifact.body);
  server.faults.bytesPerSecond = 32 * 1024; // 8 s for the whole artifact
  const trustDir = path.join(f.dir, 'trust');
  trustKey(trustDir, 'release', artifact.key);
  const installed = path.join(f.dir, 'installed');
  const install = path.join(f.dir, 'install.sh');
  writeFileSync(install, `#!/bin/sh\ncp "$1" "${installed}"\n`, { mode: 0o755 });
  writeFileSync(
    path.join(f.manifests, 'all.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
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
    signature: ${signatureYaml(artifact.sign({ version: '2.0.0', target: 'command', install: { command: [install, '{file}'] } }))}
  install: { command: ["${install}", "{file}"] }
  healthCheck: { timeout: 10s, require: [sensorsReady] }
  drain: { timeout: 2s }
`,
  );
  const artifactFile = path.join(f.stateDir, 'ota', 'default.modem', 'artifact');
  const firmwarePolicy = ['--allow-firmware-commands', '--firmware-command-allowlist', install, '--firmware-trust-dir', trustDir];
  let agent = await AgentProcess.start({ manifests: f.manifests, stateDir: f.stateDir, extraArgs: firmwarePolicy });
  try {
    await waitFor(() => existsSync(artifactFile) && statSync(artifactFile).size > SIZE / 4, { timeoutMs: 15_000, what: 'a quarter downloaded' });
    const { code, ms } = await signalAndTime(agent, 'SIGTERM');
    assert.ok(ms < STOP_LIMIT_MS, `SIGTERM to exit took ${Math.round(ms)} ms`);
    assert.equal(code, 0, `exit code; stderr: ${agent.stderr.slice(-1000)}`);
    const record = OtaStateFile.read(path.join(f.stateDir, 'ota', 'default.modem', 'state.json'));
    assert.equal(record?.phase, 'Downloading', 'the record says the download is to be resumed');
    const kept = statSync(artifactFile).size;
    assert.ok(kept > SIZE / 4 && kept < SIZE, `the partial artifact was kept (${kept} bytes)`);
    assert.equal(record?.progress?.bytes, kept, 'the progress persisted is what is on disk');

    server.faults.bytesPerSecond = undefined;
    agent = await AgentProcess.start({ manifests: f.manifests, stateDir: f.stateDir, extraArgs: firmwarePolicy });
    await waitFor(async () => (await agent.resource('Firmware', 'modem'))?.status.nodes[0]?.phase === 'Succeeded', { timeoutMs: 20_000, what: 'Firmware Succeeded' });
    const resumed = server.log[server.log.length - 1];
    assert.equal(resumed.status, 206, 'the restart resumed with Range');
    assert.equal(resumed.start, kept);
    assert.ok(readFileSync(installed).equals(artifact.body));
  } finally {
    await agent.kill();
    await server.close();
    f.cleanup();
  }
});

test('SIGINT while reloads are under way (one request still arriving, one reconciling a changed folder): exit 0 within 2 s', async () => {
  const f = folder('sensorlet-shutdown-reload-');
  const manifests = (interval: string) =>
    Array.from({ length: 50 }, (_, index) => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter-${index} }
spec:
  driver: { simulated: { waveform: counter } }
  interval: ${interval}
`).join('---\n') +
    `---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
`;
  writeFileSync(path.join(f.manifests, 'all.yaml'), manifests('100ms'));
  const agent = await AgentProcess.start({ manifests: f.manifests, stateDir: f.stateDir });
  const socket = new Socket();
  try {
    await agent.waitForCondition('Sensor', 'counter-49', 'Ready', 'True');
    // A client that started a POST /reload and has not finished sending it (a slow link, a stuck
    // script): the admin server must not wait for it.
    const [host, port] = agent.adminAddr.split(':');
    await new Promise<void>((resolve, reject) => socket.once('error', reject).connect(Number(port), host, () => resolve()));
    socket.write(`POST /reload HTTP/1.1\r\nHost: ${agent.adminAddr}\r\nContent-Length: 0\r\n`);
    // And a reload that changes every Sensor: 50 drivers restarting when the signal comes.
    writeFileSync(path.join(f.manifests, 'all.yaml'), manifests('150ms'));
    const reload = fetch(`http://${agent.adminAddr}/reload`, { method: 'POST' }).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const { code, ms } = await signalAndTime(agent, 'SIGINT');
    assert.ok(ms < STOP_LIMIT_MS, `SIGINT to exit took ${Math.round(ms)} ms`);
    assert.equal(code, 0, `exit code; stderr: ${agent.stderr.slice(-1000)}`);
    await reload;
    assert.ok(existsSync(path.join(f.stateDir, 'status.json')), 'status persisted');
  } finally {
    socket.destroy();
    await agent.kill();
    f.cleanup();
  }
});
