// A Sensor and the Sink that takes its readings, added together to a running agent (one file, one
// change): the Sensor's first reading (seq 1) is delivered, like every later one. Readings that no
// Sink takes are counted, never dropped without a trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { metricValue } from '../bench/harness.js';

test('a Sensor that arrives with its Sink in one change delivers seq 1', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-first-reading-'));
  const agent = await AgentProcess.start({ manifests: dir });
  try {
    // Several pairs, one after the other: the Sink's start (opening its outbox) races the Sensor's
    // first read every time.
    for (let round = 0; round < 3; round++) {
      writeFileSync(
        path.join(dir, `pair-${round}.yaml`),
        `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out-${round} }
spec:
  selector: { matchLabels: { pair: "${round}" } }
  stdout: {}
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: probe-${round}, labels: { pair: "${round}" } }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 500ms
`,
      );
      const seqsOf = () =>
        agent.stdout
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line))
          .filter((reading) => reading.sensor === `probe-${round}`)
          .map((reading) => reading.seq as number);
      await waitFor(() => seqsOf().some((seq) => seq >= 3), { timeoutMs: 10_000, what: `probe-${round} readings` });
      assert.deepEqual(seqsOf().slice(0, 3), [1, 2, 3], `probe-${round}: the first readings, in order`);
    }
    assert.equal(metricValue(await agent.metrics(), 'sensorlet_readings_unrouted_total', 'sensor="probe-'), 0, 'no probe reading was dropped');
    // A Sensor no Sink selects: its readings are dropped, and counted.
    writeFileSync(
      path.join(dir, 'orphan.yaml'),
      `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: orphan, labels: { pair: none } }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 100ms
`,
    );
    await waitFor(async () => metricValue(await agent.metrics(), 'sensorlet_readings_unrouted_total', 'sensor="orphan"') >= 3, { timeoutMs: 10_000, what: 'unrouted readings counted' });
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
