// SIGHUP and POST /reload force a full resync: every resource is reconciled again, and nothing
// that did not change is restarted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { metricValue } from '../bench/harness.js';

test('SIGHUP and POST /reload reconcile every resource again without restarting any', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-reload-'));
  writeFileSync(
    path.join(dir, 'all.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: steady }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 100ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: {}
  stdout: {}
`,
  );
  const agent = await AgentProcess.start({ manifests: dir });
  try {
    await agent.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    const readySince = (await agent.condition('Sensor', 'steady', 'Ready'))!.lastTransitionTime;
    const reconciles = async () => metricValue(await agent.metrics(), 'sensorlet_reconcile_total', 'result="success"');
    const before = await reconciles();
    await agent.reload();
    await waitFor(async () => (await reconciles()) >= before + 2, { timeoutMs: 3000, what: 'POST /reload reconciles both resources' });
    const afterReload = await reconciles();
    agent.child.kill('SIGHUP');
    await waitFor(async () => (await reconciles()) >= afterReload + 2, { timeoutMs: 3000, what: 'SIGHUP reconciles both resources' });
    assert.equal(agent.child.exitCode, null, 'SIGHUP does not stop the agent');
    // Nothing was restarted: the Sensor's Ready condition never flipped, and seq kept counting.
    assert.equal((await agent.condition('Sensor', 'steady', 'Ready'))!.lastTransitionTime, readySince);
    const seqs = agent.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line).seq as number);
    seqs.forEach((seq, index) => assert.equal(seq, index + 1));
  } finally {
    await agent.kill();
  }
});
