// Serial and file Actuators through the real agent: a command rendered onto a socat pty and
// answered by the test's device (a wrong answer is ReadBackMismatch), sharing the port with a
// request-mode Sensor without interleaving; a value written to sysfs-like files under the operator's
// --file-write-allow-prefix, with the fail-safe (onStop: set) written on delete and on SIGTERM; and
// the policy refusals for a file outside the write prefix and for a command without
// --allow-command-driver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { AgentProcess, CLI, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { EmulatedSerialDevice, PTY_SERIAL_ARGS, tempDir } from '../support/socat.js';

function sysfsFile(root: string, relative: string, content: string): string {
  const file = path.join(root, relative);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

test('serial and file Actuators write, confirm and fail safe; what the policy forbids is refused', async () => {
  const temp = tempDir('sensorlet-actuator-serial-file-');
  const sys = path.join(temp.dir, 'sys');
  const duty = sysfsFile(sys, 'class/pwm/pwmchip0/pwm0/duty_cycle', '0\n');
  const led = sysfsFile(sys, 'class/gpio/gpio17/value', '0\n');
  const outside = sysfsFile(temp.dir, 'other/value', '0\n');
  // Under the write prefix, but named like key material: never written, whatever the prefix allows.
  const keyFile = sysfsFile(sys, 'class/misc/device.key', 'KEY\n');
  const valve = new EmulatedSerialDevice(temp.dir, 'ttyVALVE');
  const stubborn = new EmulatedSerialDevice(temp.dir, 'ttyBUSY');
  let agent: AgentProcess | undefined;
  try {
    // The valve answers SET with the position it took, and READ with its temperature; lines are
    // checked whole, so an interleaved write would show as a line that is neither.
    let received = '';
    const garbled: string[] = [];
    valve.onRequest = (data, device) => {
      received += data.toString('utf8');
      for (;;) {
        const end = received.indexOf('\r\n');
        if (end < 0) break;
        const line = received.slice(0, end);
        received = received.slice(end + 2);
        const set = /^SET (-?[0-9.]+)$/.exec(line);
        if (set) void device.send(`OK ${set[1]}\n`);
        else if (line === 'READ') void device.send('T=20.5\n');
        else garbled.push(line);
      }
    };
    stubborn.onRequest = (_data, device) => void device.send('ERR busy\n');
    await valve.start();
    await stubborn.start();
    const manifests = path.join(temp.dir, 'manifests');
    mkdirSync(manifests);
    const serialActuator = (name: string, port: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: ${name} }
spec:
  driver:
    serial: { port: ${port}, command: "SET {value}\\r\\n", reply: { pattern: "^OK (?<value>-?[0-9.]+)$" } }
  desired: 42
  bounds: { min: 0, max: 100 }
  resyncInterval: 200ms
  minWriteInterval: 10ms
---
`;
    const common = `${serialActuator('valve-position', valve.devicePath)}${serialActuator('busy-valve', stubborn.devicePath)}apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: valve-temp }
spec:
  driver:
    serial: { port: ${valve.devicePath}, mode: request, request: { text: "READ\\r\\n" }, frame: { pattern: "^T=(?<value>[0-9.]+)$" } }
  interval: 50ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: status-led }
spec:
  driver: { file: { path: ${led} } }
  desired: true
  onStop: { set: false }
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: outside-prefix }
spec:
  driver: { file: { path: ${outside} } }
  desired: 1
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: key-writer }
spec:
  driver: { file: { path: ${keyFile} } }
  desired: 1
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: run-setter }
spec:
  driver: { command: { argv: [/bin/echo, "{value}"] } }
  desired: 1
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
---
`;
    const fan = `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: fan-duty }
spec:
  driver: { file: { path: ${duty}, scale: 0.0001 } }   # percent of a 1 ms period, in ns
  desired: 75
  bounds: { min: 20, max: 100 }
  onStop: { set: 100 }
  resyncInterval: 300ms
  minWriteInterval: 10ms
`;
    writeFileSync(path.join(manifests, 'common.yaml'), common);
    writeFileSync(path.join(manifests, 'fan.yaml'), fan);
    agent = await AgentProcess.start({ manifests, extraArgs: [...PTY_SERIAL_ARGS, ...policyArgs({ actuatorDrivers: ['serial', 'file', 'command'] }), '--file-write-allow-prefix', sys] });

    // Serial: the far end received the rendered command and answered with the value.
    await agent.waitForCondition('Actuator', 'valve-position', 'InSync', 'True', 'Written');
    assert.equal((await agent.resource('Actuator', 'valve-position'))!.status.nodes[0].observed, 42);
    const wrong = await agent.waitForCondition('Actuator', 'busy-valve', 'InSync', 'False', 'ReadBackMismatch');
    assert.match(wrong.message, /did not match reply\.pattern/);
    assert.doesNotMatch(wrong.message, /busy/, 'what the device said is counted, never quoted');

    // File: the sysfs-like files hold the values; a file changed behind the agent's back is corrected.
    await agent.waitForCondition('Actuator', 'fan-duty', 'InSync', 'True', 'Written');
    await agent.waitForCondition('Actuator', 'status-led', 'InSync', 'True', 'Written');
    assert.equal(readFileSync(duty, 'utf8'), '750000\n');
    assert.equal(readFileSync(led, 'utf8'), '1\n');
    assert.equal((await agent.resource('Actuator', 'fan-duty'))!.status.nodes[0].observed, 75);
    writeFileSync(duty, '0\n');
    await waitFor(() => readFileSync(duty, 'utf8') === '750000\n', { timeoutMs: 2_000, what: 'the duty cycle corrected' });

    // The operator's policy: a file outside --file-write-allow-prefix, a command without --allow-command-driver.
    const path_ = await agent.waitForCondition('Actuator', 'outside-prefix', 'Ready', 'False', 'PathNotAllowed');
    assert.match(path_.message, /--file-write-allow-prefix/);
    assert.equal(readFileSync(outside, 'utf8'), '0\n');
    const key = await agent.waitForCondition('Actuator', 'key-writer', 'Ready', 'False', 'PathNotAllowed');
    assert.match(key.message, /never written/);
    assert.equal(readFileSync(keyFile, 'utf8'), 'KEY\n');
    const command = await agent.waitForCondition('Actuator', 'run-setter', 'Ready', 'False', 'CommandNotAllowed');
    assert.match(command.message, /--allow-command-driver/);

    // Several resync writes went out on the valve's port while the Sensor polled it: no line garbled.
    await waitFor(async () => (await agent!.resource('Actuator', 'valve-position'))!.status.nodes[0].writes >= 5, { timeoutMs: 5_000, what: 'resync writes' });
    const temps = agent.stdout.split('\n').filter((line) => line.includes('"sensor":"valve-temp"'));
    assert.ok(temps.length >= 10, `${temps.length} readings of the Sensor sharing the port`);
    assert.equal((await agent.condition('Sensor', 'valve-temp', 'Ready'))?.status, 'True');
    assert.deepEqual(garbled, [], 'lines the valve received that were neither a command nor a request');

    // `sensorlet get actuators`: what is desired, what the device holds, whether they agree.
    const get = spawnSync(process.execPath, [CLI, 'get', 'actuators', '--admin-addr', agent.adminAddr], { encoding: 'utf8' });
    assert.equal(get.status, 0, get.stderr);
    const rows = get.stdout.trim().split('\n');
    assert.match(rows[0], /^NAMESPACE\s+NAME\s+READY\s+REASON\s+DESIRED\s+OBSERVED\s+IN-SYNC\s+SYNC-REASON$/);
    assert.match(get.stdout, /\n\S+\s+fan-duty\s+1\/1\s+Running\s+75\s+75\s+True\s+Written\n/);
    assert.match(get.stdout, /\s+busy-valve\s+1\/1\s+Running\s+42\s+False\s+ReadBackMismatch/);

    // Delete: the fail-safe is written.
    writeFileSync(path.join(manifests, 'fan.yaml'), '');
    await waitFor(() => readFileSync(duty, 'utf8') === '1000000\n', { timeoutMs: 5_000, what: 'the fail-safe on delete' });

    // SIGTERM: the fail-safe of the Actuators still declared is written before the agent exits.
    assert.equal(await agent.stop(), 0);
    assert.equal(readFileSync(led, 'utf8'), '0\n');
  } finally {
    await agent?.kill();
    await valve.stop();
    await stubborn.stop();
    temp.remove();
  }
});
