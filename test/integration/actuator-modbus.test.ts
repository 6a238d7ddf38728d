// Actuators against pymodbus over TCP and over RTU on a socat pty, through the whole public path
// (`sensorlet validate`, then the real agent). What the device holds is read from the server's own
// memory, never through the agent. One agent runs every case: typed registers with scale, float32
// in both word orders, a register block, a coil, drift corrected behind the agent's back, a Modbus
// exception on write, and a Sensor polling the same device on its schedule while Actuators write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, CLI, policyArgs, type ListedResource } from '../support/agent.js';
import { freePort, waitFor } from '../support/ports.js';
import { PymodbusServer } from '../support/pymodbus.js';
import { PTY_SERIAL_ARGS, startPtyPair } from '../support/socat.js';

/** The two documents of the Actuator contract, exactly as users write them. */
const CONTRACT = `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: boiler-setpoint }
spec:
  driver:
    modbus: { tcp: { host: 127.0.0.1, port: 5020 }, unitId: 1, table: holdingRegisters, address: 100, type: int16, scale: 0.1 }
  desired: 21.5          # written as raw 215
  bounds: { min: 5, max: 30 }
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: pump-enable }
spec:
  driver:
    modbus: { tcp: { host: 127.0.0.1, port: 5020 }, unitId: 1, table: coils, address: 3 }
  desired: true
`;

const FLOAT = 1234.5678;
/** The raw registers of a float32, high word first (bigEndian) or low word first (littleEndian). */
function floatWords(value: number, order: 'bigEndian' | 'littleEndian'): number[] {
  const bytes = Buffer.alloc(4);
  bytes.writeFloatBE(value, 0);
  const words = [bytes.readUInt16BE(0), bytes.readUInt16BE(2)];
  return order === 'bigEndian' ? words : words.reverse();
}

const RESYNC_MS = 1000;
const SENSOR_INTERVAL_MS = 100;

function documents(prefix: string, link: string): string {
  const actuator = (name: string, driver: string, rest: string) =>
    `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: ${prefix}-${name} }
spec:
  driver: { modbus: { ${link}, ${driver} } }
${rest}
  resyncInterval: ${RESYNC_MS}ms
  minWriteInterval: 50ms
---
`;
  return (
    // The contract's first document on this link, as written (its port is the test's).
    actuator('setpoint', 'unitId: 1, table: holdingRegisters, address: 100, type: int16, scale: 0.1', '  desired: 21.5\n  bounds: { min: 5, max: 30 }') +
    actuator('pump', 'unitId: 1, table: coils, address: 3', '  desired: true') +
    actuator('float-be', 'address: 110, type: float32', `  desired: ${FLOAT}`) +
    actuator('float-le', 'address: 120, type: float32, wordOrder: littleEndian', `  desired: ${FLOAT}`) +
    actuator('block', 'address: 130, type: uint16', '  desired: [7, 8, 9]') +
    // The register the drift phase keeps changing behind the agent's back, while the Sensor polls.
    actuator('churn', 'address: 140, type: int16', '  desired: -5') +
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${prefix}-poll }
spec:
  driver: { modbus: { ${link}, address: 100, type: int16, scale: 0.1 } }
  interval: ${SENSOR_INTERVAL_MS}ms
---
`
  );
}

test('Actuator documents validate as written; malformed and out-of-bounds ones fail at their field paths', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-actuator-validate-'));
  try {
    writeFileSync(path.join(dir, 'contract.yaml'), CONTRACT);
    const good = spawnSync(process.execPath, [CLI, 'validate', path.join(dir, 'contract.yaml')], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stdout + good.stderr);
    writeFileSync(
      path.join(dir, 'bad.yaml'),
      `${CONTRACT.replace('desired: 21.5 ', 'desired: 35.5 ').replace('desired: true', 'desired: 1')}---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: malformed }
spec:
  driver: { modbus: { tcp: { host: 127.0.0.1 }, address: 1, type: int16 }, file: { path: /sys/x } }
  desired: 1
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: fail-safe-outside }
spec:
  driver: { modbus: { tcp: { host: 127.0.0.1 }, address: 1, type: int16 } }
  desired: 40000
  bounds: { allowed: [0, 40000] }
  onStop: { set: 7 }
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: remote-unbounded }
spec:
  driver: { modbus: { tcp: { host: 127.0.0.1 }, address: 1, type: int16 } }
  desired: 1
  tenant: acme
  remote: true
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: shared-command-topic }
spec:
  selector: {}
  mqtt: { url: "mqtts://127.0.0.1:8883", protocolVersion: 5, commands: { topic: "cmd/{device}/{actuator}" } }
`,
    );
    const bad = spawnSync(process.execPath, [CLI, 'validate', path.join(dir, 'bad.yaml')], { encoding: 'utf8' });
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    const lines = bad.stdout.trim().split('\n');
    const expect = (pattern: RegExp) => assert.ok(lines.some((line) => pattern.test(line)), `${pattern} in:\n${bad.stdout}`);
    expect(/bad\.yaml:7: Actuator\/boiler-setpoint: spec\.desired: 35\.5 is above bounds\.max 30/);
    expect(/Actuator\/pump-enable: spec\.desired: a coil takes true or false/);
    expect(/Actuator\/malformed: spec\.driver: must set exactly one of: modbus, serial, file, command/);
    expect(/Actuator\/fail-safe-outside: spec\.desired: 40000 is 40000 on the device, outside int16/);
    expect(/Actuator\/fail-safe-outside: spec\.onStop\.set: 7 is not one of bounds\.allowed/);
    expect(/Actuator\/remote-unbounded: spec\.bounds: spec\.remote: true needs spec\.bounds/);
    expect(/Sink\/shared-command-topic: spec\.mqtt\.commands\.topic: command topic "cmd\/\{device\}\/\{actuator\}" must contain \{tenant\}/);
    assert.equal(lines.length, 7, bad.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Actuators write, read back and correct drift on pymodbus over TCP and RTU, sharing the bus with a polling Sensor', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-actuator-modbus-'));
  const tables = { unit: 1, coils: new Array(16).fill(0), discrete: [0], holding: new Array(200).fill(0), input: [0] };
  const port = await freePort();
  let tcp: PymodbusServer | undefined;
  let rtu: PymodbusServer | undefined;
  // The contract's documents as written, but for the port (the test's own free port, never a fixed one).
  let contract: PymodbusServer | undefined;
  const contractPort = await freePort();
  let agent: AgentProcess | undefined;
  const pty = await startPtyPair(dir);
  try {
    tcp = await PymodbusServer.start({ tcpPort: port }, tables);
    rtu = await PymodbusServer.start({ serialPath: pty.a, baudRate: 19200 }, tables);
    contract = await PymodbusServer.start({ tcpPort: contractPort }, tables);
    const manifests = path.join(dir, 'manifests');
    mkdirSync(manifests);
    writeFileSync(
      path.join(manifests, 'actuators.yaml'),
      documents('tcp', `tcp: { host: 127.0.0.1, port: ${port} }`) +
        documents('rtu', `rtu: { port: ${pty.b}, baudRate: 19200 }`) +
        `${CONTRACT.replaceAll('port: 5020', `port: ${contractPort}`)}---\n` +
        // A write the device refuses: past the end of its holding registers (readBack none, so
        // the write is the first request).
        `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: tcp-refused }
spec:
  driver: { modbus: { tcp: { host: 127.0.0.1, port: ${port} }, address: 250 } }
  desired: 1
  readBack: { source: none }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
`,
    );
    agent = await AgentProcess.start({ manifests, extraArgs: [...PTY_SERIAL_ARGS, ...policyArgs({ actuatorDrivers: ['modbus'] })] });
    const names = ['setpoint', 'pump', 'float-be', 'float-le', 'block', 'churn'];
    for (const prefix of ['tcp', 'rtu']) {
      for (const name of names) await agent.waitForCondition('Actuator', `${prefix}-${name}`, 'InSync', 'True', 'Written', 15_000);
    }

    // The contract as written: 21.5 is raw 215, the pump's coil is on.
    await agent.waitForCondition('Actuator', 'boiler-setpoint', 'InSync', 'True', 'Written');
    await agent.waitForCondition('Actuator', 'pump-enable', 'InSync', 'True', 'Written');
    assert.deepEqual(await contract.registers('holding', 100, 1), [215]);
    assert.deepEqual(await contract.registers('coils', 3, 1), [1]);

    // What the devices hold, from the servers' own memory.
    for (const server of [tcp, rtu]) {
      assert.deepEqual(await server.registers('holding', 100, 1), [215]);
      assert.deepEqual(await server.registers('coils', 3, 1), [1]);
      assert.deepEqual(await server.registers('holding', 110, 2), floatWords(FLOAT, 'bigEndian'));
      assert.deepEqual(await server.registers('holding', 120, 2), floatWords(FLOAT, 'littleEndian'));
      assert.deepEqual(await server.registers('holding', 130, 3), [7, 8, 9]);
      assert.deepEqual(await server.registers('holding', 140, 1), [0x10000 - 5]);
    }
    const setpoint = (await agent.resource('Actuator', 'rtu-setpoint'))!.status.nodes[0];
    assert.equal(setpoint.observed, 21.5);
    assert.equal(setpoint.writes, 1);
    assert.ok(setpoint.lastWriteTime);
    // float32 holds 1234.5677…: shown to its 7 significant digits.
    assert.equal((await agent.resource('Actuator', 'tcp-float-le'))!.status.nodes[0].observed, 1234.568);
    assert.deepEqual((await agent.resource('Actuator', 'tcp-block'))!.status.nodes[0].observed, [7, 8, 9]);

    // A Modbus exception on write: WriteFailed, naming the exception.
    const refused = await agent.waitForCondition('Actuator', 'tcp-refused', 'InSync', 'False', 'WriteFailed');
    assert.match(refused.message, /IllegalDataAddress/);

    // Drift: a register changed behind the agent's back is written again within two resync
    // intervals; meanwhile another register is churned so that Actuators keep writing while the
    // Sensors poll.
    const driftStart = Date.now();
    await tcp.setRegisters('holding', 100, [999]);
    await rtu.setRegisters('holding', 100, [999]);
    const churnUntil = driftStart + 3 * RESYNC_MS;
    for (const server of [tcp, rtu]) {
      await waitFor(async () => (await server.registers('holding', 100, 1))[0] === 215, { timeoutMs: 2 * RESYNC_MS + 500, intervalMs: 50, what: 'the setpoint corrected' });
    }
    const corrected = Date.now() - driftStart;
    assert.ok(corrected <= 2 * RESYNC_MS, `corrected after ${corrected} ms`);
    let churns = 0;
    while (Date.now() < churnUntil) {
      await tcp.setRegisters('holding', 140, [churns]);
      await rtu.setRegisters('holding', 140, [churns]);
      churns++;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    await waitFor(async () => (await agent!.resource('Actuator', 'rtu-setpoint'))!.status.nodes[0].driftCorrections >= 1, { timeoutMs: 2_000, what: 'driftCorrections in status' });
    for (const prefix of ['tcp', 'rtu']) {
      const found: ListedResource | undefined = await agent.resource('Actuator', `${prefix}-setpoint`);
      const node: ListedResource['status']['nodes'][number] = found!.status.nodes[0];
      assert.equal(node.driftCorrections, 1, `${prefix}: ${JSON.stringify(node)}`);
      assert.equal(node.writes, 2);
      assert.ok((await agent.resource('Actuator', `${prefix}-churn`))!.status.nodes[0].driftCorrections >= 1);
    }
    const metrics = await agent.metrics();
    assert.match(metrics, /sensorlet_actuator_drift_corrections_total\{namespace="default",actuator="tcp-setpoint"\} 1\b/);
    assert.match(metrics, /sensorlet_actuator_failures_total\{namespace="default",actuator="tcp-refused",reason="WriteFailed"\} [1-9]/);
    assert.match(metrics, /sensorlet_actuator_writes_total\{namespace="default",actuator="rtu-churn"\} ([2-9]|\d\d+)\b/);

    // The Sensors kept their schedule on the shared buses while the Actuators wrote: no gap of
    // more than a few intervals during the drift and churn phase (a write costs the bus one
    // request: at 19200 baud about 10 ms; a Sensor starved by a write loop would show gaps of seconds).
    for (const sensor of ['tcp-poll', 'rtu-poll']) {
      const times = agent.stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { sensor: string; time: string })
        .filter((reading) => reading.sensor === sensor)
        .map((reading) => Date.parse(reading.time))
        .filter((time) => time >= driftStart && time <= churnUntil);
      const expected = (churnUntil - driftStart) / SENSOR_INTERVAL_MS;
      assert.ok(times.length >= expected * 0.7, `${sensor}: ${times.length} readings of ${expected} expected`);
      const gaps = times.slice(1).map((time, index) => time - times[index]);
      assert.ok(Math.max(...gaps) < 5 * SENSOR_INTERVAL_MS, `${sensor}: largest gap ${Math.max(...gaps)} ms`);
    }
  } finally {
    await agent?.stop();
    await tcp?.stop();
    await rtu?.stop();
    await contract?.stop();
    await pty.socat.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
