// MQTT client ids through the agent and a real Mosquitto: two Sinks with the same name in two
// namespaces keep one connection each (a shared id would have the broker close one whenever the
// other connects), and a connection taken over by another client with the same id is said so, in
// the log, the Connected condition and a metric.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { AgentProcess } from '../support/agent.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { waitFor } from '../support/ports.js';
import { metricValue } from '../bench/harness.js';

const sensorAndSink = (namespace: string, url: string, extra = '') => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter, namespace: ${namespace} }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 200ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: uplink, namespace: ${namespace} }
spec:
  selector: {}
  mqtt: { url: "${url}", topic: "t/{namespace}/{sensor}"${extra} }
`;

test('two Sinks with the same name in two namespaces keep their connections', async () => {
  const broker = await Mosquitto.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-client-id-'));
  writeFileSync(path.join(dir, 'a.yaml'), sensorAndSink('plant-a', broker.url));
  writeFileSync(path.join(dir, 'b.yaml'), sensorAndSink('plant-b', broker.url));
  const subscriber = await Subscriber.connect(broker.url, 't/#');
  const agent = await AgentProcess.start({ manifests: dir });
  try {
    await subscriber.waitForReadings((readings) => readings.some((reading) => reading.namespace === 'plant-a') && readings.some((reading) => reading.namespace === 'plant-b'));
    const from = subscriber.readings().length;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const metrics = await agent.metrics();
    assert.equal(metricValue(metrics, 'sensorlet_sink_connections_lost_total', 'sink="uplink"'), 0, 'no connection was lost');
    assert.equal(metricValue(metrics, 'sensorlet_sink_takeovers_total', 'sink="uplink"'), 0, 'no takeover');
    assert.doesNotMatch(broker.output, /already connected, closing old connection/);
    // Both kept delivering: ~15 readings each in 3 s.
    const recent = subscriber.readings().slice(from);
    for (const namespace of ['plant-a', 'plant-b']) {
      const count = recent.filter((reading) => reading.namespace === namespace).length;
      assert.ok(count >= 10, `${namespace} delivered ${count} readings in 3 s`);
    }
  } finally {
    await agent.stop();
    await subscriber.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a connection taken over by another client with the same id is logged and counted as SessionTakenOver', async () => {
  const broker = await Mosquitto.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-takeover-'));
  writeFileSync(path.join(dir, 'a.yaml'), sensorAndSink('default', broker.url, ', clientId: gateway-7'));
  const agent = await AgentProcess.start({ manifests: dir });
  let intruder: mqtt.MqttClient | undefined;
  try {
    await agent.waitForCondition('Sink', 'uplink', 'Connected', 'True');
    // Mosquitto closes the older connection without a word (MQTT 3.1.1 has none to give).
    intruder = await mqtt.connectAsync(broker.url, { clientId: 'gateway-7', reconnectPeriod: 0 });
    await waitFor(() => /"reason":"SessionTakenOver"/.test(agent.stderr), { timeoutMs: 5000, what: 'a SessionTakenOver log line' });
    const line = agent.stderr.split('\n').find((text) => text.includes('"reason":"SessionTakenOver"'))!;
    assert.match(line, /"clientId":"gateway-7"/);
    assert.match(line, /"level":40/, 'a warning');
    await waitFor(async () => metricValue(await agent.metrics(), 'sensorlet_sink_takeovers_total', 'sink="uplink"') >= 1, {
      timeoutMs: 5000,
      what: 'the takeover counted',
    });
    await intruder.endAsync(true);
    // The Sink takes its id back once the other client is gone.
    await agent.waitForCondition('Sink', 'uplink', 'Connected', 'True');
  } finally {
    await intruder?.endAsync(true).catch(() => undefined);
    await agent.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
