// Issue 2 end to end: simulated sensors → a real Mosquitto at QoS 1, and live manifest edits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

let broker: Mosquitto;
before(async () => {
  broker = await Mosquitto.start();
});
after(async () => {
  await broker.stop();
});

function sensor(name: string, interval: string, labels: Record<string, string>, extra = ''): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata:
  name: ${name}
  labels: ${JSON.stringify(labels)}
spec:
  driver:
    simulated: { waveform: counter, min: 0, step: 1 }
  interval: ${interval}
  unit: Cel
${extra}`;
}

function mqttSink(name: string, url: string, selector: string, topic: string, protocol = { version: 5, qos: 1 }): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata:
  name: ${name}
spec:
  selector: ${selector}
  mqtt:
    url: ${url}
    protocolVersion: ${protocol.version}
    qos: ${protocol.qos}
    topic: "${topic}"
  batch: { maxReadings: 50, maxDelay: 50ms }
`;
}

/** Asserts seq is 1..n without gaps or duplicates per sensor, in order. */
function assertContiguous(readings: { seq: number }[], sensor: string): void {
  assert.ok(readings.length > 0, `no readings for ${sensor}`);
  readings.forEach((reading, index) => assert.equal(reading.seq, readings[0].seq + index, `${sensor}: seq gap or reorder at index ${index}`));
}

test('three simulated sensors reach Mosquitto at QoS 1 on the templated topic with the documented payload', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-manifests-'));
  writeFileSync(path.join(dir, 'sensors.yaml'), ['a', 'b', 'c'].map((name) => sensor(`temp-${name}`, '100ms', { site: 'plant-1' })).join('---\n'));
  writeFileSync(path.join(dir, 'sink.yaml'), mqttSink('plant-mqtt', broker.url, '{ matchLabels: { site: plant-1 } }', 'sensorlet/{tenant}/{device}/{sensor}'));
  const subscriber = await Subscriber.connect(broker.url, 'sensorlet/#');
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'gw-7' });
  try {
    await subscriber.waitForReadings((readings) => ['a', 'b', 'c'].every((name) => readings.filter((r) => r.sensor === `temp-${name}`).length >= 10), 10_000);
    assert.equal(await agent.stop(), 0, `agent exit code (stderr: ${agent.stderr.slice(-1000)})`);
    // After a clean stop everything read has been flushed and acknowledged.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const name of ['a', 'b', 'c']) {
      const messages = subscriber.messages.filter((message) => message.payload.sensor === `temp-${name}`);
      for (const message of messages) assert.equal(message.topic, `sensorlet/default/gw-7/temp-${name}`);
      const readings = messages.map((message) => message.payload);
      assertContiguous(readings, name);
      assert.equal(readings[0].seq, 1);
      const first = readings[0];
      assert.deepEqual(Object.keys(first).sort(), ['device', 'namespace', 'quality', 'sensor', 'seq', 'time', 'unit', 'value']);
      assert.equal(first.device, 'gw-7');
      assert.equal(first.namespace, 'default');
      assert.equal(first.unit, 'Cel');
      assert.equal(first.quality, 'good');
      assert.ok(!Number.isNaN(Date.parse(first.time)));
      // The counter is exact: value k for the k-th reading of the run.
      readings.forEach((reading, index) => assert.equal(reading.value, index));
    }
  } finally {
    await agent.kill();
    await subscriber.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('manifest edits apply within 1 s without a restart: interval, selector, deleted Sensor, added Sink', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-manifests-'));
  const write = (file: string, text: string) => writeFileSync(path.join(dir, file), text);
  write('fast.yaml', sensor('fast', '100ms', { site: 'plant-1', line: 'a' }));
  write('other.yaml', sensor('other', '100ms', { site: 'plant-1', line: 'b' }));
  write('sink.yaml', mqttSink('main', broker.url, '{ matchLabels: { site: plant-1 } }', 'edits/main/{sensor}'));
  const subscriber = await Subscriber.connect(broker.url, 'edits/#');
  const agent = await AgentProcess.start({ manifests: dir });
  const pid = agent.child.pid;
  try {
    await subscriber.waitForReadings((readings) => readings.filter((r) => r.sensor === 'fast').length >= 5 && readings.filter((r) => r.sensor === 'other').length >= 5);

    // 1. Interval: 100ms → 600ms. Within 1 s the spacing of new readings is the new interval.
    const generationBefore = (await agent.resource('Sensor', 'fast'))!.metadata.generation;
    write('fast.yaml', sensor('fast', '600ms', { site: 'plant-1', line: 'a' }));
    const changedAt = Date.now();
    await waitFor(async () => (await agent.resource('Sensor', 'fast'))?.status.nodes[0]?.observedGeneration === generationBefore + 1, { timeoutMs: 1000, what: 'new generation observed' });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const settled = subscriber.readingsOf('fast').filter((r) => Date.parse(r.time) > changedAt + 1000);
    await subscriber.waitForReadings(() => subscriber.readingsOf('fast').filter((r) => Date.parse(r.time) > changedAt + 1000).length >= 3, 5000, 'readings at the new interval');
    const recent = subscriber.readingsOf('fast').filter((r) => Date.parse(r.time) > changedAt + 1000);
    for (let i = 1; i < recent.length; i++) {
      const gap = Date.parse(recent[i].time) - Date.parse(recent[i - 1].time);
      assert.ok(gap >= 500 && gap <= 800, `interval after edit should be ~600ms, got ${gap}ms`);
    }
    assert.ok(settled.length <= 3, 'readings at 100ms after the edit window');

    // 2. Selector: the Sink now selects line=a only → `other` stops arriving within 1 s.
    write('sink.yaml', mqttSink('main', broker.url, '{ matchLabels: { line: a } }', 'edits/main/{sensor}'));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const otherCount = subscriber.readingsOf('other').length;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(subscriber.readingsOf('other').length, otherCount, 'deselected sensor still arrives after 1 s');
    await agent.waitForCondition('Sensor', 'other', 'Routed', 'False', 'NoMatchingSink', 2000);

    // 3. Deleting a Sensor: its readings stop and it leaves the resource list within 1 s.
    write('sink.yaml', mqttSink('main', broker.url, '{}', 'edits/main/{sensor}'));
    await subscriber.waitForReadings(() => subscriber.readingsOf('other').length > otherCount, 3000, 'other routed again');
    rmSync(path.join(dir, 'other.yaml'));
    await waitFor(async () => !(await agent.resource('Sensor', 'other')), { timeoutMs: 1000, what: 'Sensor/other removed' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const afterDelete = subscriber.readingsOf('other').length;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(subscriber.readingsOf('other').length, afterDelete, 'deleted sensor still produces readings');

    // 4. Adding a Sink: readings appear on its topic within 1 s.
    write('sink2.yaml', mqttSink('second', broker.url, '{}', 'edits/second/{sensor}'));
    const addedAt = Date.now();
    // Within 1 s of the edit, plus one 600 ms interval for the next reading to exist.
    await waitFor(() => subscriber.messages.some((message) => message.topic === 'edits/second/fast'), { timeoutMs: 1700, what: 'readings on the new sink' });
    assert.ok(Date.now() - addedAt <= 1700);
    await agent.waitForCondition('Sink', 'second', 'Connected', 'True', undefined, 1000);
    assert.equal(agent.child.pid, pid, 'the agent was not restarted');
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    await subscriber.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const version of [4, 5]) {
  test(`QoS 2 over MQTT ${version === 5 ? '5' : '3.1.1'}: readings arrive once each, in order, and PUBCOMP releases them from the outbox`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-manifests-'));
    writeFileSync(path.join(dir, 'sensor.yaml'), sensor('exactly-once', '20ms', { qos: 'two' }));
    writeFileSync(path.join(dir, 'sink.yaml'), mqttSink('qos2', broker.url, '{ matchLabels: { qos: two } }', `qos2/v${version}/{sensor}`, { version, qos: 2 }));
    const subscriber = await Subscriber.connect(broker.url, `qos2/v${version}/#`);
    const agent = await AgentProcess.start({ manifests: dir });
    try {
      await subscriber.waitForReadings((readings) => readings.length >= 100, 10_000);
      // Every reading read so far was acknowledged with PUBCOMP: nothing stays queued for long.
      await waitFor(async () => ((await agent.resource('Sink', 'qos2'))!.status.nodes[0].queued ?? Infinity) < 20, { timeoutMs: 5000, what: 'the outbox to drain' });
      assert.equal(await agent.stop(), 0, `agent exit code (stderr: ${agent.stderr.slice(-1000)})`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const readings = subscriber.messages.map((message) => message.payload);
      assertContiguous(readings, 'exactly-once');
      assert.equal(readings[0].seq, 1);
    } finally {
      await agent.kill();
      await subscriber.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
