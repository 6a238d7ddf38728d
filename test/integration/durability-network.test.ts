// Issue 3: network faults between the agent and the broker, injected by a user-space TCP proxy
// (the kernel here has no netem): latency with jitter, a bandwidth cap, connections reset
// mid-stream, and a blackhole that only the MQTT keepalive can detect. After each, every seq
// arrives, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess } from '../support/agent.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';

let broker: Mosquitto;
let proxy: FaultProxy;
let subscriber: Subscriber;
let agent: AgentProcess;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  broker = await Mosquitto.start();
  proxy = await FaultProxy.start(broker.port);
  subscriber = await Subscriber.connect(broker.url, 'faults/#');
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-faults-'));
  writeFileSync(
    path.join(dir, 'faults.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: faulty, labels: { app: faults } }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: 10 } }
  interval: 20ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: through-proxy }
spec:
  selector: { matchLabels: { app: faults } }
  mqtt: { url: "mqtt://127.0.0.1:${proxy.port}", qos: 1, topic: "faults/{sensor}", keepalive: 2s }
  batch: { maxReadings: 200, maxDelay: 100ms }
`,
  );
  agent = await AgentProcess.start({ manifests: dir });
  await subscriber.waitForReadings((readings) => readings.length >= 500);
});

after(async () => {
  await agent?.kill();
  await subscriber?.close();
  await proxy?.stop();
  await broker?.stop();
});

/** After a fault is cleared, readings taken after it arrive and nothing before is missing. */
async function assertRecovered(fault: string): Promise<void> {
  const clearedAt = Date.now();
  await waitFor(() => subscriber.readingsOf('faulty').some((reading) => Date.parse(reading.time) > clearedAt + 500), { timeoutMs: 30_000, what: `delivery after ${fault}` });
  assertInOrderWithoutGaps(subscriber.readingsOf('faulty'), `after ${fault}`);
}

test('latency with jitter', async () => {
  proxy.set({ latencyMs: 150, jitterMs: 100 });
  await sleep(3000);
  proxy.clear();
  await assertRecovered('latency with jitter');
});

test('a bandwidth cap below the offered rate', async () => {
  // ~500 readings/s of ~150 bytes each is ~75 kB/s; cap it at 20 kB/s.
  proxy.set({ bytesPerSecond: 20_000 });
  await sleep(4000);
  assert.ok(((await agent.resource('Sink', 'through-proxy'))!.status.nodes[0].queued ?? 0) > 100, 'a backlog builds behind the cap');
  proxy.clear();
  await assertRecovered('bandwidth cap');
});

test('connections reset mid-stream', async () => {
  const acceptedBefore = proxy.accepted;
  for (let i = 0; i < 5; i++) {
    proxy.resetAll();
    await sleep(700);
  }
  // The resets hit: the agent had to connect again after them.
  assert.ok(proxy.accepted >= acceptedBefore + 5, `${proxy.accepted - acceptedBefore} reconnections for 5 resets`);
  await assertRecovered('resets');
});

test('a blackhole that swallows traffic without closing: the keepalive detects it', async () => {
  proxy.set({ blackhole: true });
  // keepalive 2s: mqtt.js gives up on the silent connection after ~1.5 keepalives.
  await agent.waitForCondition('Sink', 'through-proxy', 'Connected', 'False', undefined, 10_000);
  await sleep(2000);
  proxy.clear();
  await agent.waitForCondition('Sink', 'through-proxy', 'Connected', 'True', undefined, 30_000);
  await assertRecovered('blackhole');
});
