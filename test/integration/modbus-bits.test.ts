// Modbus coils (function 1) and discrete inputs (function 2) through the whole public path:
// `sensorlet validate`, then the real agent (validation, schema defaults, the driver) reading an
// independent pymodbus server. Bits take no register type; a default must not give them one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, CLI } from '../support/agent.js';
import { freePort, waitFor } from '../support/ports.js';
import { PymodbusServer } from '../support/pymodbus.js';

test('coils and discrete inputs validate and read through the agent against pymodbus', async () => {
  const port = await freePort();
  const server = await PymodbusServer.start({ tcpPort: port }, { unit: 1, coils: [1, 0, 1, 1], discrete: [0, 1, 1, 0], holding: [0], input: [0] });
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-modbus-bits-'));
  const manifests = path.join(dir, 'manifests.yaml');
  const link = `tcp: { host: 127.0.0.1, port: ${port} }`;
  writeFileSync(
    manifests,
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: valve-coils }
spec:
  driver: { modbus: { ${link}, function: 1, address: 0, count: 4 } }
  interval: 200ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: door-contact }
spec:
  driver: { modbus: { ${link}, function: 2, address: 1 } }
  interval: 200ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: bits-with-type }
spec:
  driver: { modbus: { ${link}, function: 2, address: 0, type: int16 } }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
`,
  );
  let agent: AgentProcess | undefined;
  try {
    // validate: the bit Sensors are valid; a type given to bits is the one error, at its field.
    const validate = spawnSync(process.execPath, [CLI, 'validate', manifests], { encoding: 'utf8' });
    assert.equal(validate.status, 1, validate.stdout + validate.stderr);
    const errors = validate.stdout.trim().split('\n');
    assert.equal(errors.length, 1, validate.stdout);
    assert.match(errors[0], /Sensor\/bits-with-type: spec\.driver\.modbus\.type: coils and discrete inputs are bits/);

    agent = await AgentProcess.start({ manifests: dir });
    await agent.waitForCondition('Sensor', 'valve-coils', 'Ready', 'True');
    await agent.waitForCondition('Sensor', 'door-contact', 'Ready', 'True');
    await agent.waitForCondition('Sensor', 'bits-with-type', 'Ready', 'False', 'InvalidSpec');
    const readingsOf = (sensor: string) =>
      agent!.stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line))
        .filter((reading) => reading.sensor === sensor);
    await waitFor(() => readingsOf('valve-coils').length > 0 && readingsOf('door-contact').length > 0, { timeoutMs: 10_000, what: 'bit readings' });
    assert.deepEqual(readingsOf('valve-coils')[0].values, { 0: 1, 1: 0, 2: 1, 3: 1 });
    assert.equal(readingsOf('door-contact')[0].value, 1);
  } finally {
    await agent?.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
