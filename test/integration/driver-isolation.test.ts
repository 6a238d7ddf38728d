// Issue 5: one Sensor's device hangs (a serial device that never answers, and one whose port is
// gone); every other Sensor keeps its interval within ±10 %, and the hung ones say why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { PTY_SERIAL_ARGS, startPtyPair, tempDir } from '../support/socat.js';

const INTERVAL_MS = 200;

test('a hung device affects only its own Sensor', async () => {
  const work = tempDir('sensorlet-isolation-');
  // Nobody answers on the far end of this pty pair: every request times out.
  const pty = await startPtyPair(work.dir);
  const simulated = ['a', 'b', 'c']
    .map(
      (name) => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: steady-${name} }
spec:
  driver: { simulated: { waveform: counter } }
  interval: ${INTERVAL_MS}ms
`,
    )
    .join('---\n');
  writeFileSync(
    path.join(work.dir, 'sensors.yaml'),
    `${simulated}---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: silent-device }
spec:
  driver:
    serial:
      port: ${pty.a}
      baudRate: 9600
      mode: request
      request: { text: "READ\\n" }
      frame: { delimiter: "\\n", pattern: "T=(?<value>[0-9.]+)" }
  interval: ${INTERVAL_MS}ms
  timeout: 1s
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: unplugged-device }
spec:
  driver:
    serial: { port: /dev/ttyUSB-sensorlet-test-missing, baudRate: 9600, frame: { delimiter: "\\n", pattern: "(?<value>.*)" } }
  interval: ${INTERVAL_MS}ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: {}
  stdout: {}
  batch: { maxReadings: 50, maxDelay: 20ms }
`,
  );
  const agent = await AgentProcess.start({ manifests: work.dir, extraArgs: PTY_SERIAL_ARGS });
  try {
    await agent.waitForCondition('Sensor', 'silent-device', 'Degraded', 'True', 'Timeout', 5000);
    await agent.waitForCondition('Sensor', 'unplugged-device', 'Degraded', 'True', 'PortNotFound', 5000);
    const measuredFrom = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const readings = agent.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line))
      .filter((reading) => Date.parse(reading.time) >= measuredFrom);
    for (const name of ['a', 'b', 'c']) {
      const times = readings.filter((reading) => reading.sensor === `steady-${name}`).map((reading) => Date.parse(reading.time));
      assert.ok(times.length >= 15, `steady-${name}: ${times.length} readings in 4 s`);
      for (let i = 1; i < times.length; i++) {
        const gap = times[i] - times[i - 1];
        assert.ok(Math.abs(gap - INTERVAL_MS) <= INTERVAL_MS * 0.1, `steady-${name}: interval ${gap} ms while another device hangs`);
      }
    }
    assert.equal(readings.filter((reading) => reading.sensor === 'silent-device').length, 0);
  } finally {
    await agent.kill();
    await pty.socat.stop();
    work.remove();
  }
});
