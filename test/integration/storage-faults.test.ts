// A full or read-only state dir never stops the agent. The state dir is a real, small tmpfs that the
// test fills with a filler file (or remounts read-only); the agent is the real CLI with a simulated
// Sensor and an MQTT Sink to a real Mosquitto that is down, then up. /healthz is polled throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';
import { counterToMqttManifests } from '../support/counter-to-mqtt.js';
import { Tmpfs } from '../support/tmpfs.js';

const HEALTHZ_BUDGET_MS = 100;


/**
 * Polls /healthz every 50 ms from a process of its own (so that the test's own work, e.g. parsing
 * thousands of MQTT messages, does not count against the agent); every answer must come within
 * the budget. One poller per agent process.
 */
class HealthPoller {
  readonly slow: string[] = [];
  polls = 0;
  private poller: { child: ChildProcess; exited: Promise<void> } | undefined;

  watch(agent: AgentProcess | undefined): void {
    this.unwatch();
    if (!agent) return;
    // node:http, not fetch: fetch loads undici on first use, which would charge ~100 ms to the agent.
    const script = `
      const http = require('node:http');
      const url = process.argv[1];
      const report = (line) => { process.stdout.write(line + '\\n'); setTimeout(tick, 50); };
      const tick = () => {
        const started = performance.now();
        const request = http.get(url, { timeout: 2000 }, (response) => {
          response.resume();
          response.on('end', () => {
            const ms = performance.now() - started;
            report(response.statusCode === 200 && ms <= ${HEALTHZ_BUDGET_MS} ? 'ok' : response.statusCode + ' in ' + ms.toFixed(0) + ' ms at ' + new Date().toISOString());
          });
        });
        request.on('timeout', () => request.destroy(new Error('timeout')));
        request.on('error', (error) => report('no answer: ' + error.message + ' at ' + new Date().toISOString()));
      };
      tick();`;
    const child = spawn(process.execPath, ['-e', script, `http://${agent.adminAddr}/healthz`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        this.polls++;
        if (line !== 'ok') this.slow.push(line);
      }
    });
    this.poller = { child, exited: new Promise((resolve) => child.once('exit', () => resolve())) };
  }

  /** Before the agent stops: a stopping agent may rightly stop answering. */
  unwatch(): void {
    this.poller?.child.kill('SIGKILL');
    this.poller = undefined;
  }
}

async function sinkNode(agent: AgentProcess, sink: string) {
  return (await agent.resource('Sink', sink))?.status.nodes[0];
}

function metricValue(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The readings an agent logged as lost at shutdown because the disk refused them. */
function lostAtShutdown(agent: AgentProcess): number {
  let lost = 0;
  for (const line of (agent.stdout + agent.stderr).split('\n')) {
    if (!line.includes('could not be written before shutdown')) continue;
    lost += JSON.parse(line).readings as number;
  }
  return lost;
}

test('full state dir: no crash, StorageFull condition and metric, start-up on the full disk drains the backlog, recovery when space returns', { timeout: 240_000 }, async () => {
  const tmpfs = Tmpfs.mount('2m');
  const broker = await Mosquitto.start({ extraConfig: `persistence true\npersistence_location ${mkdtempSync(path.join(tmpdir(), 'mosq-db-'))}/\nautosave_interval 1` });
  const subscriber = await Subscriber.connect(broker.url, 'full/#', { clean: false, clientId: 'full-subscriber' });
  const dir = counterToMqttManifests(broker.url, 'full');
  const health = new HealthPoller();
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: dir, stateDir: tmpfs.dir });
    health.watch(agent);
    await subscriber.waitForReadings((readings) => readings.length >= 200);

    // Broker down: a backlog builds on disk. Then the disk fills up.
    await broker.stop();
    await agent.waitForCondition('Sink', 'full-mqtt', 'Connected', 'False');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const filler = tmpfs.fill();
    await agent.waitForCondition('Sink', 'full-mqtt', 'StorageFull', 'True', 'NoSpaceLeft', 15_000);
    await waitFor(async () => metricValue(await agent!.metrics(), 'sensorlet_outbox_storage_full', 'sink="full-mqtt"') === 1, { what: 'storage-full metric' });
    // The old agent crashed on an uncaught ENOSPC after ~17 s: stay on the full disk longer.
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    assert.equal(agent.child.exitCode, null, `the agent died on the full disk: ${agent.stderr.slice(-2000)}`);
    const held = (await sinkNode(agent, 'full-mqtt'))!;
    assert.ok(held.unwrittenBytes > 0, `readings the disk refused are held in memory: ${JSON.stringify(held)}`);
    // The outbox deletes the partial file of a chunk the disk refused, which frees a few pages that
    // a small status file can fit into: fill those too, so the status writes that follow (the Sink's
    // facts change all the time) meet a full disk.
    const topUp = tmpfs.fill('filler-top-up');
    await waitFor(async () => /sensorlet_state_write_errors_total\{area="status",reason="NoSpaceLeft"\} [1-9]/.test(await agent!.metrics()), { timeoutMs: 15_000, what: 'status writes refused to be counted' });
    const sensor = await agent.resource('Sensor', 'full-sensor');
    assert.equal(sensor!.status.nodes[0].conditions.find((c) => c.type === 'Ready')?.status, 'True', 'sequence numbering needs no free space');
    // Restart on the still-full disk: SIGTERM exits 0, and the next start comes up.
    health.unwatch();
    assert.equal(await agent.stop(), 0, `stop on a full disk: ${agent.stderr.slice(-2000)}`);
    const lost = lostAtShutdown(agent);
    const firstRun = subscriber.readingsOf('full-sensor');
    agent = await AgentProcess.start({ manifests: dir, stateDir: tmpfs.dir });
    health.watch(agent);
    await agent.waitForCondition('Sink', 'full-mqtt', 'StorageFull', 'True', 'NoSpaceLeft', 15_000);

    // The broker returns: the backlog drains (and delivered chunks free space).
    await broker.restart();
    await agent.waitForCondition('Sink', 'full-mqtt', 'Connected', 'True', undefined, 20_000);
    await waitFor(async () => ((await sinkNode(agent!, 'full-mqtt'))?.queued ?? Infinity) < 500, { timeoutMs: 60_000, what: 'backlog drained' });

    // Space returns: everything recovers by itself.
    rmSync(filler.file);
    rmSync(topUp.file);
    await agent.waitForCondition('Sink', 'full-mqtt', 'StorageFull', 'False', 'StorageWritable', 20_000);
    await waitFor(async () => metricValue(await agent!.metrics(), 'sensorlet_outbox_storage_full', 'sink="full-mqtt"') === 0, { what: 'storage-full metric cleared' });
    // The index nedb could not rewrite at the start on the full disk is a file again.
    await waitFor(() => agent!.stderr.includes('outbox index written to disk again'), { timeoutMs: 20_000, what: 'outbox index back on disk' });
    const before = subscriber.readingsOf('full-sensor').length;
    await subscriber.waitForReadings(() => subscriber.readingsOf('full-sensor').length > before + 100, 10_000, 'readings after recovery');
    health.unwatch();
    assert.equal(await agent.stop(), 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));

    // Every reading arrived once at least, in order, except those the first run logged as lost at
    // shutdown (held in memory, the disk refusing them): one gap of exactly that size, where the
    // second run begins.
    const seen = new Set<number>();
    const firsts = subscriber.readingsOf('full-sensor').map((reading) => reading.seq as number).filter((seq) => (seen.has(seq) ? false : (seen.add(seq), true)));
    const jumps = firsts.flatMap((seq, index) => (index > 0 && seq !== firsts[index - 1] + 1 ? [[firsts[index - 1], seq]] : []));
    assert.equal(firsts[0], 1);
    assert.ok(jumps.length <= 1, `more than one gap or a reorder: ${JSON.stringify(jumps.slice(0, 5))}`);
    const gap = jumps.length === 0 ? 0 : jumps[0][1] - jumps[0][0] - 1;
    assert.equal(gap, lost, `not delivered and not logged as lost: ${JSON.stringify(jumps)} (${lost} logged)`);
    assert.ok(firsts.length > 1000, `${firsts.length} readings arrived`);
    assert.deepEqual(health.slow, [], `/healthz answered late or not at all (${health.polls} polls)`);
  } finally {
    health.unwatch();
    await agent?.kill();
    await subscriber.close();
    await broker.stop();
    tmpfs.unmount();
  }
});

test('read-only state dir: the agent runs and says why it keeps nothing; it recovers by itself when the dir is writable again', { timeout: 120_000 }, async () => {
  const tmpfs = Tmpfs.mount('8m');
  const broker = await Mosquitto.start();
  const subscriber = await Subscriber.connect(broker.url, 'ro/#');
  const dir = counterToMqttManifests(broker.url, 'ro');
  const health = new HealthPoller();
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: dir, stateDir: tmpfs.dir });
    await subscriber.waitForReadings((readings) => readings.length >= 100);
    assert.equal(await agent.stop(), 0);
    const firstRun = subscriber.readingsOf('ro-sensor');

    tmpfs.remount('ro');
    agent = await AgentProcess.start({ manifests: dir, stateDir: tmpfs.dir });
    health.watch(agent);
    // Nothing can be numbered durably: readings are dropped, and the Sensor says so.
    await agent.waitForCondition('Sensor', 'ro-sensor', 'StorageFull', 'True', 'SequenceStateWriteFailed', 15_000);
    await waitFor(async () => /sensorlet_sensor_readings_dropped_total\{namespace="default",sensor="ro-sensor",reason="SequenceStateWriteFailed"\} [1-9]/.test(await agent!.metrics()), { what: 'dropped metric' });
    await new Promise((resolve) => setTimeout(resolve, 5000));
    assert.equal(agent.child.exitCode, null, `the agent died on a read-only state dir: ${agent.stderr.slice(-2000)}`);
    assert.doesNotMatch(agent.stderr, /^\s+at /m, 'no stack trace');

    tmpfs.remount('rw');
    await agent.waitForCondition('Sensor', 'ro-sensor', 'StorageFull', 'False', undefined, 15_000);
    const before = subscriber.readingsOf('ro-sensor').length;
    await subscriber.waitForReadings(() => subscriber.readingsOf('ro-sensor').length > before + 100, 10_000, 'readings after recovery');
    health.unwatch();
    assert.equal(await agent.stop(), 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const readings = subscriber.readingsOf('ro-sensor');
    const lastOfFirst = Math.max(...firstRun.map((reading) => reading.seq));
    assert.ok(readings.filter((reading) => reading.seq > lastOfFirst).length > 100, 'the second run numbers above the first');
    assertInOrderWithoutGaps(readings.filter((reading) => reading.seq > lastOfFirst), 'after recovery');
    assert.deepEqual(health.slow, [], `/healthz answered late or not at all (${health.polls} polls)`);
  } finally {
    health.unwatch();
    await agent?.kill();
    await subscriber.close();
    await broker.stop();
    tmpfs.unmount();
  }
});
