// Issue 3: kill -9 under load (12.5k readings/s offered, ≥ 10k/s asserted), five times on one state dir. Every reading sealed before a kill is
// delivered after the restart; only the open chunk may be lost; seq keeps going up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

/** The Sensor here offers 12 500 readings per second, above the default per-Sensor cap: the operator raises it. */
const HIGH_RATE = ['--max-readings-per-second', '20000'];

const MAX_READINGS = 500;
const MAX_DELAY_MS = 100;
/** Time for the last sealed chunk's file write to be issued; kill -9 keeps what reached the kernel. */
const SEAL_MARGIN_MS = 100;

let broker: Mosquitto;
before(async () => (broker = await Mosquitto.start()));
after(async () => broker.stop());

const manifests = (url: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter, labels: { app: crash } }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: 125 } }
  interval: 10ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: crash-mqtt }
spec:
  selector: { matchLabels: { app: crash } }
  mqtt: { url: "${url}", qos: 1, topic: "crash/{sensor}" }
  batch: { maxReadings: ${MAX_READINGS}, maxDelay: ${MAX_DELAY_MS}ms }
`;

test('kill -9 under load, 5 times: every sealed reading arrives, seq continues upward', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-crash-'));
  const stateDir = mkdtempSync(path.join(tmpdir(), 'sensorlet-crash-state-'));
  writeFileSync(path.join(dir, 'crash.yaml'), manifests(broker.url));
  const subscriber = await Subscriber.connect(broker.url, 'crash/#');
  const killTimes: number[] = [];
  try {
    for (let round = 0; round < 5; round++) {
      const agent = await AgentProcess.start({ manifests: dir, stateDir, extraArgs: HIGH_RATE });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      killTimes.push(Date.now());
      await agent.kill();
    }
    // A last, clean run delivers the backlog; then it stops gracefully and loses nothing.
    const agent = await AgentProcess.start({ manifests: dir, stateDir, extraArgs: HIGH_RATE });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await agent.stop(), 0);
    const cleanStop = Date.now();
    // Delivery is complete when the subscriber stops receiving.
    let seen = -1;
    await waitFor(() => {
      const count = subscriber.readings().length;
      const settled = count === seen && Date.now() - cleanStop > 1000;
      seen = count;
      return settled;
    }, { timeoutMs: 10_000, intervalMs: 250, what: 'the subscriber to stop receiving' });

    // Runs are told apart by seq - value: the counter restarts at 0 in every run, seq does not.
    const runs = new Map<number, { values: Set<number>; maxValue: number; firstTime: number; lastTime: number; minSeq: number; maxSeq: number }>();
    for (const reading of subscriber.readings()) {
      const offset = reading.seq - reading.value;
      let run = runs.get(offset);
      if (!run) runs.set(offset, (run = { values: new Set(), maxValue: -1, firstTime: Infinity, lastTime: 0, minSeq: Infinity, maxSeq: -Infinity }));
      run.values.add(reading.value);
      run.maxValue = Math.max(run.maxValue, reading.value);
      run.firstTime = Math.min(run.firstTime, Date.parse(reading.time));
      run.lastTime = Math.max(run.lastTime, Date.parse(reading.time));
      run.minSeq = Math.min(run.minSeq, reading.seq);
      run.maxSeq = Math.max(run.maxSeq, reading.seq);
    }
    const ordered = [...runs.entries()].sort(([a], [b]) => a - b).map(([, run]) => run);
    assert.equal(ordered.length, 6, `expected 6 runs, saw ${ordered.length}`);
    ordered.forEach((run, index) => {
      // No hole anywhere: what was read before the last delivered reading all arrived.
      assert.equal(run.values.size, run.maxValue + 1, `run ${index}: readings missing in the middle`);
      // The rate over the run's own sample times: the load the kill hit.
      const rate = (run.maxValue + 1) / ((run.lastTime - run.firstTime) / 1000);
      assert.ok(rate >= 10_000, `run ${index}: ${Math.round(rate)} readings/s (< 10k/s)`);
      if (index < 5) {
        // Only the open chunk may be lost: the last delivered reading is within maxDelay of the kill.
        const lostMs = killTimes[index] - run.lastTime;
        assert.ok(lostMs <= MAX_DELAY_MS + SEAL_MARGIN_MS, `run ${index}: ${lostMs} ms of readings before the kill were lost`);
      }
      if (index > 0) assert.ok(run.minSeq > ordered[index - 1].maxSeq, `run ${index}: seq did not continue upward`);
    });
  } finally {
    await subscriber.close();
  }
});
