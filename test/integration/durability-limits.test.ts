// Issue 3: the full policies against a stopped broker, and corrupted chunks on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { metricValue } from '../bench/harness.js';
import { decodeChunk } from '../../pkg/outbox/chunk-file.js';

/** The Sensor here offers 2000 readings per second, above the default per-Sensor cap: the operator raises it. */
const HIGH_RATE = ['--max-readings-per-second', '20000'];

/** A broker that keeps the test subscriber's session across its own restarts. */
async function persistentBroker(): Promise<{ broker: Mosquitto; subscriber: Subscriber }> {
  const broker = await Mosquitto.start({ extraConfig: `persistence true\npersistence_location ${mkdtempSync(path.join(tmpdir(), 'mosq-db-'))}/\nautosave_interval 1` });
  const subscriber = await Subscriber.connect(broker.url, 'limits/#', { clean: false, clientId: `limits-${Date.now()}` });
  return { broker, subscriber };
}

function manifests(url: string, whenFull: string, maxBytes: string, maxReadings = 100): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: fill, labels: { app: limits } }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: 50 } }
  interval: 25ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: bystander, labels: { app: other } }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 100ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: limited }
spec:
  selector: { matchLabels: { app: limits } }
  mqtt: { url: "${url}", qos: 1, topic: "limits/{sensor}" }
  batch: { maxReadings: ${maxReadings}, maxDelay: 50ms }
  outbox: { maxBytes: ${maxBytes}, whenFull: ${whenFull} }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: { matchLabels: { app: other } }
  stdout: {}
`;
}

function seqsOf(subscriber: Subscriber, sensor: string): number[] {
  return [...new Set(subscriber.readingsOf(sensor).map((reading) => reading.seq as number))].sort((a, b) => a - b);
}

async function dropped(agent: AgentProcess, reason: string): Promise<number> {
  return (await agent.resource('Sink', 'limited'))!.status.nodes[0].dropped?.[reason] ?? 0;
}

for (const whenFull of ['dropOldest', 'dropNewest', 'block'] as const) {
  test(`whenFull: ${whenFull} with a small maxBytes against a stopped broker`, { timeout: 90_000 }, async () => {
    const { broker, subscriber } = await persistentBroker();
    const dir = mkdtempSync(path.join(tmpdir(), `sensorlet-${whenFull}-`));
    writeFileSync(path.join(dir, 'limits.yaml'), manifests(broker.url, whenFull, '256Ki'));
    await broker.stop();
    const agent = await AgentProcess.start({ manifests: dir, extraArgs: HIGH_RATE });
    try {
      await agent.waitForCondition('Sink', 'limited', 'BufferFull', 'True', undefined, 20_000);
      if (whenFull === 'block') {
        await agent.waitForCondition('Sensor', 'fill', 'Backpressure', 'True', 'OutboxFull', 5000);
        const paused = (await agent.resource('Sensor', 'fill'))!.status.nodes[0].readings;
        const bystanderBefore = (await agent.resource('Sensor', 'bystander'))!.status.nodes[0].readings;
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal((await agent.resource('Sensor', 'fill'))!.status.nodes[0].readings, paused, 'the blocked Sensor is paused');
        assert.ok((await agent.resource('Sensor', 'bystander'))!.status.nodes[0].readings > bystanderBefore + 10, 'other Sensors and Sinks keep going');
      } else {
        await waitFor(async () => (await dropped(agent, whenFull)) > 500, { timeoutMs: 10_000, what: `${whenFull} drops` });
      }
      await broker.restart();
      await agent.waitForCondition('Sink', 'limited', 'BufferFull', 'False', undefined, 20_000);
      if (whenFull === 'block') await agent.waitForCondition('Sensor', 'fill', 'Backpressure', 'False', undefined, 5000);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(await agent.stop(), 0);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const seqs = seqsOf(subscriber, 'fill');
      const last = seqs.at(-1)!;
      const missing = last - seqs.length;
      const counted = await (async () => {
        // The agent has stopped: the counters persist in the outbox metadata.
        const { readOutboxStats } = await import('../../pkg/outbox/stats.js');
        const stats = (await readOutboxStats(agent.stateDir)).find((item) => item.sink === 'default.limited')!;
        return stats.dropped;
      })();
      if (whenFull === 'dropOldest') {
        // Batches already out for delivery are never dropped (the transport may hold them), so a
        // head of at most the handed-out window (4 batches in flight + 1 waiting for a slot, of 100
        // readings each) arrives before the first gap. (While the backlog drains the outbox may
        // still be full, so later gaps of the then-oldest queued chunks are legitimate.) Every
        // missing reading is counted.
        assert.ok(missing > 0, 'the oldest readings were dropped');
        const gapAt = seqs.findIndex((seq, index) => seq !== index + 1);
        assert.ok(gapAt >= 0 && gapAt <= 500, `delivered head before the gap: ${gapAt}`);
        assert.ok(seqs.slice(-1000).every((seq, index, tail) => index === 0 || seq === tail[index - 1] + 1), 'the newest readings all arrived');
        assert.equal(counted.dropOldest, missing, 'every missing reading is counted as dropOldest');
        assert.equal(counted.dropNewest, 0);
      } else if (whenFull === 'dropNewest') {
        assert.equal(seqs[0], 1, 'the oldest readings were kept');
        assert.ok(missing > 0);
        assert.equal(counted.dropNewest, missing, 'every missing reading is counted as dropNewest');
        assert.equal(counted.dropOldest, 0);
      } else {
        assert.equal(seqs[0], 1);
        assert.equal(missing, 0, 'block loses nothing');
        assert.equal(counted.dropNewest + counted.dropOldest, 0);
      }
    } finally {
      await agent.kill();
      await subscriber.close();
      await broker.stop();
    }
  });
}

test('a truncated chunk and a bit-flipped chunk are moved aside and counted; everything else is delivered', { timeout: 90_000 }, async () => {
  const { broker, subscriber } = await persistentBroker();
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-corrupt-'));
  writeFileSync(path.join(dir, 'limits.yaml'), manifests(broker.url, 'dropNewest', '64Mi'));
  await broker.stop();
  let agent = await AgentProcess.start({ manifests: dir, extraArgs: HIGH_RATE });
  const chunksDir = path.join(agent.stateDir, 'outbox', 'default.limited', 'chunks');
  await waitFor(() => readdirSync(chunksDir).filter((file) => file.endsWith('.chunk')).length >= 12, { timeoutMs: 20_000, what: '12 sealed chunks' });
  assert.equal(await agent.stop(), 0);
  const chunks = readdirSync(chunksDir).filter((file) => file.endsWith('.chunk')).sort((a, b) => parseInt(a) - parseInt(b));
  const [truncated, flipped] = [chunks[2], chunks[5]].map((file) => path.join(chunksDir, file));
  const lost = new Set([truncated, flipped].flatMap((file) => decodeChunk(readFileSync(file)).readings.filter((r) => r.sensor === 'fill').map((r) => r.seq)));
  truncateSync(truncated, statSync(truncated).size - 17);
  const bytes = readFileSync(flipped);
  bytes[bytes.length - 40] ^= 0x20;
  writeFileSync(flipped, bytes);
  // Restart without the producing Sensor, with the broker up: only the backlog is delivered.
  writeFileSync(path.join(dir, 'limits.yaml'), manifests(broker.url, 'dropNewest', '64Mi').replace(/kind: Sensor\nmetadata: \{ name: fill[\s\S]*?---\n/, ''));
  await broker.restart();
  agent = await AgentProcess.start({ manifests: dir, stateDir: agent.stateDir, extraArgs: HIGH_RATE });
  try {
    await waitFor(async () => (await agent.resource('Sink', 'limited'))?.status.nodes[0]?.queued === 0, { timeoutMs: 30_000, what: 'backlog drained' });
    assert.equal(metricValue(await agent.metrics(), 'sensorlet_outbox_corrupt_chunks_total', 'sink="limited"'), 2);
    assert.equal((await agent.resource('Sink', 'limited'))!.status.nodes[0].corruptChunks, 2);
    assert.equal(readdirSync(path.join(agent.stateDir, 'outbox', 'default.limited', 'corrupt')).length, 2, 'both chunks moved aside');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const seqs = new Set(seqsOf(subscriber, 'fill'));
    const last = Math.max(...seqs, ...lost);
    for (let seq = 1; seq <= last; seq++) {
      if (lost.has(seq)) assert.ok(!seqs.has(seq), `seq ${seq} came from a corrupt chunk yet arrived`);
      else assert.ok(seqs.has(seq), `seq ${seq} was not delivered`);
    }
  } finally {
    await agent.kill();
    await subscriber.close();
    await broker.stop();
  }
});
