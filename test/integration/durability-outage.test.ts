// Issue 3: the broker goes away for 30 s while sensors run. Every reading arrives afterwards, in
// order per sensor, with no gap, and the backlog drains while new readings keep flowing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';

const OUTAGE_MS = 30_000;

test('broker outage of 30 s: every reading arrives, in order, no gap; the backlog drains while new readings flow', { timeout: 120_000 }, async () => {
  // Persistence and a persistent session keep the *test's* subscriber from missing messages while
  // it is disconnected too; the agent's own durability is what is under test.
  const broker = await Mosquitto.start({ extraConfig: `persistence true\npersistence_location ${mkdtempSync(path.join(tmpdir(), 'mosq-db-'))}/\nautosave_interval 1` });
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-outage-'));
  writeFileSync(
    path.join(dir, 'outage.yaml'),
    ['a', 'b']
      .map(
        (name) => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: outage-${name}, labels: { app: outage } }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: 20 } }
  interval: 20ms
`,
      )
      .join('---\n') +
      `---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: outage-mqtt }
spec:
  selector: { matchLabels: { app: outage } }
  mqtt: { url: "${broker.url}", qos: 1, topic: "outage/{sensor}", keepalive: 5s }
  batch: { maxReadings: 500, maxDelay: 100ms }
`,
  );
  const subscriber = await Subscriber.connect(broker.url, 'outage/#', { clean: false, clientId: 'outage-subscriber' });
  const agent = await AgentProcess.start({ manifests: dir });
  try {
    await subscriber.waitForReadings((readings) => readings.length >= 2000);
    await broker.stop();
    const outageStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await agent.waitForCondition('Sink', 'outage-mqtt', 'Connected', 'False', undefined, 10_000);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - outageStart)));
    const queued = (await agent.resource('Sink', 'outage-mqtt'))!.status.nodes[0].queued;
    assert.ok(queued > 50_000, `the outbox should hold the outage's readings, holds ${queued}`);
    await broker.restart();
    const restartedAt = Date.now();
    // Drained when the outbox is (nearly) empty again, while the sensors kept producing.
    await waitFor(async () => ((await agent.resource('Sink', 'outage-mqtt'))!.status.nodes[0].queued ?? Infinity) < 5000, { timeoutMs: 60_000, what: 'backlog drained' });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(await agent.stop(), 0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    for (const name of ['a', 'b']) {
      const readings = subscriber.readingsOf(`outage-${name}`);
      assertInOrderWithoutGaps(readings, `outage-${name}`);
      // New readings taken during the drain arrived as well, after the backlog.
      assert.ok(readings.some((reading) => Date.parse(reading.time) > restartedAt + 500), `outage-${name}: nothing produced during the drain arrived`);
      assert.ok(readings.some((reading) => Date.parse(reading.time) > outageStart + 1000 && Date.parse(reading.time) < restartedAt - 1000), `outage-${name}: nothing from the outage arrived`);
    }
  } finally {
    await agent.kill();
    await subscriber.close();
    await broker.stop();
  }
});
