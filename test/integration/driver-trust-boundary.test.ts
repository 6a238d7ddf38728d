// A manifest author who may only write Sensors tries to read secrets through the file and command
// drivers and to make one Sensor cost the agent unbounded work. Through the real CLI in folder mode:
// seeded secrets (a shadow-like file, a private key, a service-account-like token, a value in the
// agent's own environment, a file in its state dir) are pointed at directly, through symlinks and
// `..`, and with patterns that select windows of them — and are then searched for in every output
// channel: /api/v1/resources, `sensorlet get -o yaml|wide`, /metrics, the agent's stdout and stderr.
// The legitimate paths keep working alongside: sysfs-like files under an allowed prefix, a real /sys
// file, /proc/loadavg, and the command driver under its flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { AgentProcess, CLI, type ListedResource } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { tempDir } from '../support/socat.js';

const run = promisify(execFile);

function sensor(name: string, driver: string, extra = ''): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${name} }
spec:
  driver: ${driver}
  interval: 200ms
  timeout: 1s
${extra}`;
}

const fileSensor = (name: string, file: string, pattern?: string) =>
  sensor(name, `{ file: { path: ${JSON.stringify(file)}${pattern === undefined ? '' : `, pattern: ${JSON.stringify(pattern)}`} } }`);
const commandSensor = (name: string, argv: string[], pattern?: string, extra = '') =>
  sensor(name, `{ command: { argv: ${JSON.stringify(argv)}${pattern === undefined ? '' : `, pattern: ${JSON.stringify(pattern)}`} } }`, extra);

const STDOUT_SINK = `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: {}
  stdout: {}
  batch: { maxReadings: 50, maxDelay: 20ms }
`;

/** Everything a manifest author (or anyone who reads what the agent publishes) can see. */
async function everyOutput(agent: AgentProcess): Promise<string> {
  const admin = ['--admin-addr', agent.adminAddr];
  const [yamlOut, wideOut, jsonOut] = await Promise.all([
    run(process.execPath, [CLI, 'get', '-o', 'yaml', ...admin]),
    run(process.execPath, [CLI, 'get', 'sensors', '-o', 'wide', ...admin]),
    run(process.execPath, [CLI, 'get', 'sensors', '-o', 'json', ...admin]),
  ]);
  const resources = await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).text();
  return [yamlOut.stdout, wideOut.stdout, jsonOut.stdout, resources, await agent.metrics(), agent.stdout, agent.stderr].join('\n');
}

function nodeOf(resource: ListedResource | undefined) {
  return resource?.status.nodes[0];
}

test('file and command Sensors never read or echo secrets; allowed files and programs still work', async () => {
  const work = tempDir('sensorlet-trust-drivers-');
  const manifests = path.join(work.dir, 'manifests');
  const allowed = path.join(work.dir, 'allowed');
  const outside = path.join(work.dir, 'outside');
  const stateDir = path.join(allowed, 'state');
  for (const dir of [manifests, allowed, outside, stateDir, path.join(allowed, 'hwmon'), path.join(outside, 'run', 'secrets', 'serviceaccount')]) mkdirSync(dir, { recursive: true });

  // The secrets. Each canary is random, so finding it anywhere means it was read and echoed.
  const canary = (label: string) => `${label}${randomBytes(12).toString('hex')}`;
  const secrets = {
    shadow: canary('shadowhash'),
    key: canary('privkeybody'),
    token: canary('tokenvalue'),
    env: canary('envvalue'),
    state: canary('statevalue'),
    allowedKey: canary('allowedkey'),
  };
  const shadow = path.join(outside, 'shadow');
  writeFileSync(shadow, `daemon:*:19000:0:99999:7:::\nroot:$6$salt$${secrets.shadow}:19000:0:99999:7:::\n`);
  const key = path.join(outside, 'device-key');
  writeFileSync(key, `-----BEGIN PRIVATE KEY-----\nMIIEv${secrets.key}\n-----END PRIVATE KEY-----\n`);
  const token = path.join(outside, 'run', 'secrets', 'serviceaccount', 'token');
  writeFileSync(token, `eyJ${secrets.token}\n`);
  writeFileSync(path.join(stateDir, 'canary.txt'), `state=${secrets.state}\n`);
  writeFileSync(path.join(allowed, 'device.key'), `key=${secrets.allowedKey}\n`);
  // Symlinks an attacker could plant in a folder the operator allowed.
  symlinkSync(shadow, path.join(allowed, 'shadow-link'));
  symlinkSync(key, path.join(allowed, 'key-link'));
  symlinkSync(token, path.join(allowed, 'token-link'));
  symlinkSync('/proc/self/environ', path.join(allowed, 'environ-link'));
  symlinkSync(outside, path.join(allowed, 'outside-dir'));
  // The legitimate: a sysfs-like attribute and a symlink to it, both inside the allowed folder.
  const temp1 = path.join(allowed, 'hwmon', 'temp1_input');
  writeFileSync(temp1, '48312\n');
  symlinkSync(temp1, path.join(allowed, 'temp-link'));

  // Paths, each tried as a whole, with a pattern selecting the secret's window, and with one that
  // never matches (the old NoMatch quoted the start of the content).
  const targets: [string, string, string][] = [
    ['shadow', shadow, 'root:\\$6\\$salt\\$(?<value>[a-z0-9]+)'],
    ['shadow-link', path.join(allowed, 'shadow-link'), 'root:\\$6\\$salt\\$(?<value>[a-z0-9]+)'],
    ['shadow-dotdot', path.join(allowed, 'hwmon', '..', '..', 'outside', 'shadow'), 'root:\\$6\\$salt\\$(?<value>[a-z0-9]+)'],
    ['shadow-dirlink', path.join(allowed, 'outside-dir', 'shadow'), 'root:\\$6\\$salt\\$(?<value>[a-z0-9]+)'],
    ['shadow-proc-root', `/proc/self/root${shadow}`, 'root:\\$6\\$salt\\$(?<value>[a-z0-9]+)'],
    ['key', key, 'MIIEv(?<value>[a-z0-9]+)'],
    ['key-link', path.join(allowed, 'key-link'), 'MIIEv(?<value>[a-z0-9]+)'],
    ['token-link', path.join(allowed, 'token-link'), 'eyJ(?<value>[a-z0-9]+)'],
    ['environ', '/proc/self/environ', 'SENSORLET_TEST_SECRET=(?<value>[a-z0-9]+)'],
    ['environ-thread', '/proc/thread-self/environ', 'SENSORLET_TEST_SECRET=(?<value>[a-z0-9]+)'],
    ['environ-link', path.join(allowed, 'environ-link'), 'SENSORLET_TEST_SECRET=(?<value>[a-z0-9]+)'],
    ['state', path.join(stateDir, 'canary.txt'), 'state=(?<value>[a-z0-9]+)'],
    ['allowed-key', path.join(allowed, 'device.key'), 'key=(?<value>[a-z0-9]+)'],
    ['etc-shadow', '/etc/shadow', 'root:(?<value>[^:]+)'],
    ['sa-token', '/var/run/secrets/kubernetes.io/serviceaccount/token', '(?<value>.+)'],
  ];
  const hostile: string[] = [];
  const documents: string[] = [STDOUT_SINK];
  for (const [name, file, window] of targets) {
    for (const [variant, pattern] of [['whole', undefined], ['window', window], ['nomatch', 'NOPE(?<value>[0-9]+)']] as const) {
      hostile.push(`${name}-${variant}`);
      documents.push(fileSensor(`${name}-${variant}`, file, pattern));
    }
  }
  // The command driver with an allowlisted program: its arguments are free, its output is never echoed.
  const nodeStderr = `process.stderr.write(require("fs").readFileSync(${JSON.stringify(shadow)})); process.exit(3)`;
  const commands: [string, string[], string | undefined][] = [
    ['cmd-cat-shadow', ['/bin/cat', shadow], undefined],
    ['cmd-cat-shadow-window', ['/bin/cat', shadow], 'root:\\$6\\$salt\\$(?<value>[a-z0-9]+)'],
    ['cmd-cat-shadow-nomatch', ['/bin/cat', shadow], 'NOPE(?<value>[0-9]+)'],
    ['cmd-cat-environ', ['/bin/cat', '/proc/self/environ'], 'SENSORLET_TEST_SECRET=(?<value>[a-z0-9]+)'],
    ['cmd-stderr-shadow', [process.execPath, '-e', nodeStderr], undefined],
  ];
  for (const [name, argv, pattern] of commands) {
    hostile.push(name);
    documents.push(commandSensor(name, argv, pattern));
  }
  // The legitimate ones.
  documents.push(
    fileSensor('hwmon-temp', temp1).replace('driver: { file: {', 'driver: { file: { scale: 0.001,'),
    fileSensor('hwmon-temp-link', path.join(allowed, 'temp-link')),
    fileSensor('sys-lo-mtu', '/sys/class/net/lo/mtu'),
    fileSensor('proc-loadavg', '/proc/loadavg', '^(?<value>[0-9.]+) '),
    commandSensor('cmd-cat-temp', ['/bin/cat', temp1], undefined),
  );
  writeFileSync(path.join(manifests, 'sensors.yaml'), documents.join('---\n'));

  const agent = await AgentProcess.start({
    manifests,
    stateDir,
    env: { SENSORLET_TEST_SECRET: secrets.env },
    extraArgs: [
      '--file-allow-prefix', allowed, '/sys/', '/proc/loadavg',
      '--allow-command-driver', '--command-allowlist', '/bin/cat', process.execPath,
    ],
  });
  try {
    // Every hostile Sensor is refused (or fails), and is retried at least once before the search.
    for (const name of hostile) await agent.waitForCondition('Sensor', name, 'Ready', 'False');
    // The legitimate Sensors produce their values.
    const value = async (name: string) =>
      waitFor(async () => nodeOf(await agent.resource('Sensor', name))?.lastReading?.value as number | undefined, { timeoutMs: 10_000, what: `${name} reading` });
    assert.equal(await value('hwmon-temp'), 48.312);
    assert.equal(await value('hwmon-temp-link'), 48312);
    assert.equal(await value('cmd-cat-temp'), 48312);
    assert.ok((await value('sys-lo-mtu')) > 0);
    assert.ok((await value('proc-loadavg')) >= 0);
    // Let the refused ones be retried (backoff 500 ms, then 1 s) before looking everywhere.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const seen = await everyOutput(agent);
    assert.ok(seen.includes('shadow-whole') && seen.includes('hwmon-temp'), 'the outputs were collected');
    const realShadowRoot = existsSync('/etc/shadow') ? readFileSync('/etc/shadow', 'utf8').split('\n').find((line) => line.startsWith('root:'))?.split(':')[1] : undefined;
    const needles = { ...secrets, ...(realShadowRoot && realShadowRoot.length >= 13 ? { realShadowRoot } : {}) };
    for (const [label, secret] of Object.entries(needles)) {
      // The whole secret, and any 12-character piece of it (a preview is at most 8 characters).
      for (let at = 0; at + 12 <= secret.length; at += 6) {
        const piece = secret.slice(at, at + 12);
        assert.ok(!seen.includes(piece), `${label}: ${JSON.stringify(piece)} appeared in an output channel`);
      }
    }
    // Each with a named reason; the file driver's refusals name the flag and nothing was read.
    const expectedReason = (name: string) => (name.startsWith('cmd-') ? (name.endsWith('nomatch') ? 'NoMatch' : name === 'cmd-stderr-shadow' ? 'CommandFailed' : 'BadFrame') : 'PathNotAllowed');
    const resources = await agent.resources();
    for (const name of hostile) {
      const node = nodeOf(resources.find((r) => r.metadata.name === name))!;
      const ready = node.conditions.find((c) => c.type === 'Ready')!;
      assert.equal(ready.reason, expectedReason(name), `${name}: ${ready.message}`);
      assert.equal(node.readings, undefined, `${name}: no readings`);
      if (!name.startsWith('cmd-')) assert.match(ready.message, /--file-allow-prefix/, `${name}: the refusal names the flag`);
    }
  } finally {
    await agent.kill();
    work.remove();
  }
});

test('intervals, timeouts and reading rates beyond the operator limits are refused; other Sensors and /healthz carry on', async () => {
  const work = tempDir('sensorlet-trust-cost-');
  const documents = [
    STDOUT_SINK,
    sensor('steady', '{ simulated: { waveform: counter } }').replace('interval: 200ms', 'interval: 100ms'),
    sensor('zero-interval', '{ simulated: { waveform: counter } }').replace('interval: 200ms', 'interval: 0s'),
    sensor('one-ns-interval', '{ simulated: { waveform: counter } }').replace('interval: 200ms', 'interval: 1ns'),
    sensor('below-flag-interval', '{ simulated: { waveform: counter } }').replace('interval: 200ms', 'interval: 10ms'),
    sensor('zero-timeout', '{ simulated: { waveform: counter } }').replace('timeout: 1s', 'timeout: 0s'),
    sensor('one-ns-timeout', '{ simulated: { waveform: counter } }').replace('timeout: 1s', 'timeout: 1ns'),
    sensor('huge-burst', '{ simulated: { waveform: counter, samplesPerRead: 100000 } }'),
    sensor('fast-burst', '{ simulated: { waveform: counter, samplesPerRead: 1000 } }').replace('interval: 200ms', 'interval: 1ms'),
    // Exactly at the cap the operator set: 10 samples every 20 ms is 500 per second.
    sensor('at-the-cap', '{ simulated: { waveform: counter, samplesPerRead: 10 } }').replace('interval: 200ms', 'interval: 20ms'),
    sensor('over-the-cap', '{ simulated: { waveform: counter, samplesPerRead: 11 } }').replace('interval: 200ms', 'interval: 20ms'),
  ];
  const manifests = path.join(work.dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'sensors.yaml'), documents.join('---\n'));
  const agent = await AgentProcess.start({
    manifests,
    stateDir: path.join(work.dir, 'state'),
    extraArgs: ['--min-interval', '20ms', '--min-timeout', '5ms', '--max-readings-per-second', '500'],
  });
  try {
    const refused: [string, string, RegExp][] = [
      ['zero-interval', 'InvalidSpec', /spec\.interval: must be greater than 0.*--min-interval/],
      ['one-ns-interval', 'IntervalTooShort', /--min-interval/],
      ['below-flag-interval', 'IntervalTooShort', /--min-interval/],
      ['zero-timeout', 'InvalidSpec', /spec\.timeout: must be greater than 0.*--min-timeout/],
      ['one-ns-timeout', 'TimeoutTooShort', /--min-timeout/],
      ['huge-burst', 'ReadingRateTooHigh', /--max-readings-per-second/],
      ['fast-burst', 'IntervalTooShort', /--min-interval/],
      ['over-the-cap', 'ReadingRateTooHigh', /550 readings per second.*--max-readings-per-second/],
    ];
    for (const [name, reason, message] of refused) {
      const ready = await agent.waitForCondition('Sensor', name, 'Ready', 'False', reason);
      assert.match(ready.message, message, name);
    }
    await agent.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    await agent.waitForCondition('Sensor', 'at-the-cap', 'Ready', 'True');

    // For two seconds: /healthz answers within 100 ms every time, and the steady Sensor keeps reading.
    const readingsOf = async (name: string) => nodeOf(await agent.resource('Sensor', name))!.readings as number;
    const before = await readingsOf('steady');
    const atCapBefore = await readingsOf('at-the-cap');
    const measuredFrom = performance.now();
    const slowest = { ms: 0 };
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      const started = performance.now();
      const response = await fetch(`http://${agent.adminAddr}/healthz`);
      slowest.ms = Math.max(slowest.ms, performance.now() - started);
      assert.equal(response.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(slowest.ms < 100, `/healthz took ${slowest.ms.toFixed(1)} ms`);
    const after = await readingsOf('steady');
    const atCap = (await readingsOf('at-the-cap')) - atCapBefore;
    const seconds = (performance.now() - measuredFrom) / 1000;
    assert.ok(after - before >= 15, `steady produced ${after - before} readings in 2 s`);
    const resources = await agent.resources();
    for (const [name] of refused) assert.equal(nodeOf(resources.find((r) => r.metadata.name === name))?.readings, undefined, `${name} produced nothing`);
    // The Sensor at the cap ran, and never above it (one read of slack for the sampling).
    assert.ok(atCap > 0 && atCap <= 500 * seconds + 10, `at-the-cap: ${atCap} readings in ${seconds.toFixed(2)} s`);

    // `sensorlet validate` flags the absurd values too, naming the field.
    const validate = await run(process.execPath, [CLI, 'validate', path.join(manifests, 'sensors.yaml')]).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout + error.stderr }),
    );
    assert.equal(validate.code, 1);
    assert.match(validate.stdout, /Sensor\/zero-interval: spec\.interval: must be greater than 0/);
    assert.match(validate.stdout, /Sensor\/zero-timeout: spec\.timeout: must be greater than 0/);
  } finally {
    await agent.kill();
    work.remove();
  }
});
