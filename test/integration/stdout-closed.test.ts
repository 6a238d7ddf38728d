// A stdout Sink whose reader goes away (`sensorlet run | head`, a log shipper that exits) fails
// alone: the agent keeps running, that Sink shows Connected=False (OutputClosed) and keeps its
// readings queued, and another Sink fed by the same Sensor goes on delivering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { waitFor } from '../support/ports.js';
import { readOutboxStats } from '../../pkg/outbox/stats.js';

test('standard output closed under a stdout Sink: the agent and the other Sink go on, the readings stay queued', async () => {
  const broker = await Mosquitto.start();
  const manifests = mkdtempSync(path.join(tmpdir(), 'sensorlet-stdout-closed-'));
  writeFileSync(
    path.join(manifests, 'all.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 50ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: broker }
spec:
  selector: {}
  mqtt: { url: "${broker.url}", qos: 1, topic: "t/{sensor}" }
`,
  );
  const subscriber = await Subscriber.connect(broker.url, 't/#');
  const agent = await AgentProcess.start({ manifests });
  try {
    await waitFor(() => agent.stdout.includes('"sensor":"counter"'), { timeoutMs: 10_000, what: 'readings on standard output' });
    // The reader goes away: the agent's next writes to its stdout pipe fail with EPIPE.
    agent.child.stdout!.destroy();
    const closed = await waitFor(
      async () => {
        const condition = await agent.condition('Sink', 'out', 'Connected');
        return condition?.status === 'False' ? condition : undefined;
      },
      { timeoutMs: 10_000, what: 'the stdout Sink reporting its closed output' },
    );
    assert.equal(closed.reason, 'OutputClosed');
    assert.match(closed.message, /standard output is closed/);

    // Still running and still delivering to the broker, seconds later.
    const before = subscriber.readingsOf('counter').length;
    await subscriber.waitForReadings((readings) => readings.filter((reading) => reading.sensor === 'counter').length >= before + 20, 10_000, 'readings at the broker after stdout closed');
    assert.equal((await fetch(`http://${agent.adminAddr}/readyz`)).status, 200);
    assert.equal(agent.child.exitCode, null, `the agent exited; stderr: ${agent.stderr.slice(-1000)}`);

    // SIGTERM still ends it cleanly, and what the stdout Sink could not write is still queued.
    assert.equal(await agent.stop(), 0, `exit code; stderr: ${agent.stderr.slice(-1000)}`);
    const outbox = (await readOutboxStats(agent.stateDir)).find((item) => item.sink === 'default.out');
    assert.ok(outbox && outbox.readings > 0, `the stdout Sink's readings stay queued (${JSON.stringify(outbox)})`);
    assert.doesNotMatch(agent.stderr, /Error: write EPIPE|Unhandled 'error' event/);
  } finally {
    await agent.kill();
    await subscriber.close();
    await broker.stop();
    rmSync(manifests, { recursive: true, force: true });
    rmSync(agent.stateDir, { recursive: true, force: true });
  }
});
