// Damaged state heals itself, and one state dir serves one agent. Real files are damaged between
// runs of the real CLI; readings go to a real Mosquitto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AGENT_NODE_FLAGS, AgentProcess, CLI } from '../support/agent.js';
import { freePort, waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';
import { counterToMqttManifests } from '../support/counter-to-mqtt.js';


test('a damaged outbox index and sequence file: the backlog is rebuilt from the chunk files and delivered, seq jumps forward, both say so', { timeout: 120_000 }, async () => {
  const broker = await Mosquitto.start();
  const subscriber = await Subscriber.connect(broker.url, 'heal/#');
  const dir = counterToMqttManifests(broker.url, 'heal');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'sensorlet-heal-state-'));
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: dir, stateDir });
    await subscriber.waitForReadings((readings) => readings.length >= 100);
    // A backlog on disk while the broker is away.
    await broker.stop();
    await agent.waitForCondition('Sink', 'heal-mqtt', 'Connected', 'False');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(await agent.stop(), 0);
    const outbox = path.join(stateDir, 'outbox', 'default.heal-mqtt');
    const chunks = readdirSync(path.join(outbox, 'chunks')).filter((file) => file.endsWith('.chunk'));
    assert.ok(chunks.length > 3, `a backlog of chunks on disk (${chunks.length})`);
    const lastOfFirst = Math.max(...subscriber.readingsOf('heal-sensor').map((reading) => reading.seq));

    // Damage both: garbage over the index, a torn sequence file.
    writeFileSync(path.join(outbox, 'meta.db'), 'this is not an nedb file\n\u0000\u0001garbage\n{"_id":\n'.repeat(20));
    writeFileSync(path.join(stateDir, 'sequences', 'sequences.json'), '{"version":2,"generation":');

    await broker.restart();
    agent = await AgentProcess.start({ manifests: dir, stateDir });
    await agent.waitForCondition('Sink', 'heal-mqtt', 'Ready', 'True');
    await agent.waitForCondition('Sink', 'heal-mqtt', 'IndexRebuilt', 'True', 'OutboxIndexRebuilt');
    await agent.waitForCondition('Sensor', 'heal-sensor', 'SequenceRecovered', 'True', 'SequenceStateCorrupt');
    await agent.waitForCondition('Sensor', 'heal-sensor', 'Routed', 'True');
    const metrics = await agent.metrics();
    assert.match(metrics, /sensorlet_state_recovered_total\{area="outbox",reason="OutboxIndexRebuilt"\} 1/);
    assert.match(metrics, /sensorlet_state_recovered_total\{area="sequences",reason="SequenceStateCorrupt"\} 1/);
    await waitFor(async () => ((await agent!.resource('Sink', 'heal-mqtt'))!.status.nodes[0].queued ?? Infinity) < 200, { timeoutMs: 30_000, what: 'backlog drained' });
    const before = subscriber.readingsOf('heal-sensor').length;
    await subscriber.waitForReadings(() => subscriber.readingsOf('heal-sensor').length > before + 100, 10_000, 'new readings');
    assert.equal(await agent.stop(), 0);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const readings = subscriber.readingsOf('heal-sensor');
    // The whole first run arrived, the backlog included, in order and without a gap ...
    const firstRun = readings.filter((reading) => reading.seq < lastOfFirst + 100_000);
    assertInOrderWithoutGaps(firstRun, 'first run, backlog rebuilt from chunk files');
    assert.ok(Math.max(...firstRun.map((reading) => reading.seq)) > lastOfFirst + 50, 'the backlog arrived');
    // ... and the second run numbers past anything the damaged file could have reserved.
    const secondRun = readings.filter((reading) => reading.seq >= lastOfFirst + 100_000);
    assert.ok(secondRun.length > 100, `the second run delivered (${secondRun.length})`);
    assertInOrderWithoutGaps(secondRun, 'second run');
  } finally {
    await agent?.kill();
    await subscriber.close();
    await broker.stop();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `sensorlet run` without waiting for it to be ready: for the one that must refuse to start. */
async function runRaw(manifestsDir: string, stateDir: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--manifests', manifestsDir, '--state-dir', stateDir, '--admin-addr', `127.0.0.1:${await freePort()}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  return { code, stderr, ms: performance.now() - started };
}

test('one agent per state dir: a second one exits at once naming the dir and the holder; a lock left by kill -9 does not block', { timeout: 60_000 }, async () => {
  const dir = counterToMqttManifests('mqtt://127.0.0.1:1', 'lock');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'sensorlet-lock-state-'));
  let first: AgentProcess | undefined;
  let third: AgentProcess | undefined;
  try {
    first = await AgentProcess.start({ manifests: dir, stateDir });
    const second = await runRaw(dir, stateDir);
    assert.notEqual(second.code, 0, 'the second agent must not run');
    assert.notEqual(second.code, null, `the second agent must exit by itself (stderr: ${second.stderr})`);
    const lines = second.stderr.trim().split('\n');
    const error = lines[lines.length - 1];
    assert.ok(error.startsWith('error: '), `one clear line: ${second.stderr}`);
    assert.ok(error.includes(stateDir), `names the dir: ${error}`);
    assert.ok(error.includes(`pid ${first.child.pid}`), `names the holder: ${error}`);
    assert.ok(second.ms < 10_000, `exits at once (${second.ms.toFixed(0)} ms)`);
    assert.equal(first.child.exitCode, null, 'the first agent keeps running');

    // kill -9 leaves the lock behind; the next start takes it over.
    await first.kill();
    third = await AgentProcess.start({ manifests: dir, stateDir });
    assert.match(third.stderr + third.stdout, /replaced the stale lock of pid \d+/);
    assert.equal(await third.stop(), 0);
  } finally {
    await first?.kill();
    await third?.kill();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
