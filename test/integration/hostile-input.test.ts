// Hostile manifests and device input against the real agent: patterns that would backtrack
// catastrophically (serial frames on a real pty, a file, a certificate SAN), the longest scan of a
// pattern that runs on V8's engine and files over their
// parsing budget (a YAML alias bomb, JSON nested 4,000 deep) added to a running agent. Throughout,
// /healthz answers within 100 ms and a healthy Sensor keeps producing; `validate` reports each file
// in one line and exits 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { AgentProcess, CLI, policyArgs } from '../support/agent.js';
import { TestPki } from '../support/pki.js';
import { waitFor } from '../support/ports.js';
import { PTY_SERIAL_ARGS, startPtyPair, tempDir } from '../support/socat.js';

const CATASTROPHIC = '^(a+)+(?<value>[0-9])$';
/** 40 characters that the pattern above almost matches: 2^40 paths for a backtracking engine. */
const NEAR_MISS = `${'a'.repeat(40)}!`;
/** A pattern whose syntax proves V8's engine linear on it, so it runs there, and its longest scan. */
const RUNS_ON_V8 = 'T=(?<temperature>-?[0-9.]+) H=(?<humidity>[0-9.]+)';
const V8_LONGEST_SCAN = `T=${'1.'.repeat(30_000)} H`;
const HEALTHY_INTERVAL_MS = 200;

const STEADY_SENSOR = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: steady }
spec:
  driver: { simulated: { waveform: counter } }
  interval: ${HEALTHY_INTERVAL_MS}ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: {}
  stdout: {}
  batch: { maxReadings: 50, maxDelay: 20ms }
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls /healthz every 50 ms for `durationMs` (bounded) and returns each answer's latency (Infinity: none within 2 s). */
async function healthLatencies(agent: AgentProcess, durationMs: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    const started = performance.now();
    try {
      const response = await fetch(`http://${agent.adminAddr}/healthz`, { signal: AbortSignal.timeout(2000) });
      await response.text();
      latencies.push(response.ok ? performance.now() - started : Infinity);
    } catch {
      latencies.push(Infinity);
    }
    await sleep(50);
  }
  return latencies;
}

function assertResponsive(latencies: number[], what: string): void {
  const worst = Math.max(...latencies);
  assert.ok(latencies.length >= 10, `${what}: only ${latencies.length} health checks`);
  assert.ok(worst < 100, `${what}: /healthz took ${worst} ms at worst (${latencies.filter((ms) => ms >= 100).length} of ${latencies.length} over 100 ms)`);
}

/** Readings of the healthy Sensor since `since`: they keep coming at their interval. */
function assertSteady(agent: AgentProcess, since: number, until: number, what: string): void {
  const times = agent.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { sensor: string; time: string })
    .filter((reading) => reading.sensor === 'steady')
    .map((reading) => Date.parse(reading.time))
    .filter((time) => time >= since && time <= until);
  const expected = (until - since) / HEALTHY_INTERVAL_MS;
  assert.ok(times.length >= expected * 0.8, `${what}: ${times.length} readings of the healthy Sensor, expected about ${expected}`);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] < HEALTHY_INTERVAL_MS * 2.5, `${what}: the healthy Sensor paused ${times[i] - times[i - 1]} ms`);
}

/** A state folder inside the test's own temp folder, so that removing it removes everything. */
function stateDir(dir: string): string {
  const state = path.join(dir, 'state');
  mkdirSync(state, { recursive: true });
  return state;
}

function validate(...files: string[]): { status: number | null; stdout: string; stderr: string; ms: number } {
  const started = performance.now();
  const result = spawnSync(process.execPath, [CLI, 'validate', ...files], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, ms: performance.now() - started };
}

test('patterns that would backtrack catastrophically run in linear time: serial frames and a file', async () => {
  const work = tempDir('sensorlet-hostile-pattern-');
  const pty = await startPtyPair(work.dir);
  const textFile = path.join(work.dir, 'value.txt');
  const manifests = path.join(work.dir, 'manifests');
  const sensors = `${STEADY_SENSOR}---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: serial-backtracker }
spec:
  driver:
    serial: { port: ${pty.a}, baudRate: 9600, frame: { delimiter: "\\n", pattern: "${CATASTROPHIC}" } }
  interval: 200ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: serial-v8 }
spec:
  driver:
    serial: { port: ${pty.a}, baudRate: 9600, frame: { delimiter: "\\n", pattern: "${RUNS_ON_V8}" } }
  interval: 200ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: lookahead }
spec:
  driver:
    file: { path: ${textFile}, pattern: "(?<value>[0-9]+)(?=C)" }
  interval: 1s
`;
  const fileSensor = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: file-backtracker }
spec:
  driver:
    file: { path: ${textFile}, pattern: "${CATASTROPHIC}" }
  interval: 200ms
`;
  let agent: AgentProcess | undefined;
  let tty: number | undefined;
  try {
    writeFileSync(textFile, NEAR_MISS);
    mkdirSync(manifests);
    writeFileSync(path.join(manifests, 'sensors.yaml'), sensors);

    // The catastrophic pattern is valid RE2; the lookahead is not, and says so with its field path.
    const checked = validate(path.join(manifests, 'sensors.yaml'));
    assert.equal(checked.status, 1);
    assert.match(checked.stdout, /sensors\.yaml:\d+: Sensor\/lookahead: spec\.driver\.file\.pattern: invalid regular expression .*linear-time \(RE2\) syntax is required/);
    assert.equal(checked.stdout.trim().split('\n').length, 1, checked.stdout);

    const running = await AgentProcess.start({ manifests, stateDir: stateDir(work.dir), extraArgs: ['--log-level', 'warn', ...PTY_SERIAL_ARGS, '--file-allow-prefix', work.dir] });
    agent = running;
    // Non-blocking: an agent that stopped reading must fail the test, not block it in writeSync.
    const device = openSync(pty.b, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    tty = device;
    const send = (text: string) => {
      try {
        writeSync(device, text);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      }
    };
    await running.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    const since = Date.now();
    let writes = 0;
    const feeding = (async () => {
      // The device sends near misses (and over-long lines) for three seconds, and a file Sensor with
      // the same pattern reads a near miss: no reading, no freeze.
      for (const end = Date.now() + 3000; Date.now() < end; writes++) {
        if (writes === 3) writeFileSync(path.join(manifests, 'file-sensor.yaml'), fileSensor);
        send(`${writes % 5 === 0 ? 'a'.repeat(20_000) : writes % 5 === 1 ? V8_LONGEST_SCAN : NEAR_MISS}\n`);
        await sleep(100);
      }
    })();
    const latencies = await healthLatencies(running, 3500);
    await feeding;
    assertResponsive(latencies, 'near-miss frames and file content');
    assertSteady(running, since + 500, Date.now() - 500, 'near-miss frames and file content');
    assert.ok(writes >= 20);
    await running.waitForCondition('Sensor', 'file-backtracker', 'Degraded', 'True', 'NoMatch');
    await running.waitForCondition('Sensor', 'lookahead', 'Ready', 'False', 'InvalidSpec');
    assert.match((await running.condition('Sensor', 'lookahead', 'Ready'))!.message, /linear-time \(RE2\) syntax is required/);

    // The same pattern still reads what it should.
    send('aaaa7\n');
    await waitFor(() => running.stdout.includes('"sensor":"serial-backtracker"'), { timeoutMs: 5000, what: 'a reading from the serial Sensor' });
    const reading = running.stdout.split('\n').find((line) => line.includes('"sensor":"serial-backtracker"'))!;
    assert.equal(JSON.parse(reading).value, 7);
    send('T=-21.5 H=40\n');
    await waitFor(() => running.stdout.includes('"sensor":"serial-v8"'), { timeoutMs: 5000, what: 'a reading from the Sensor whose pattern runs on V8' });
    const v8Reading = running.stdout.split('\n').find((line) => line.includes('"sensor":"serial-v8"'))!;
    assert.deepEqual(JSON.parse(v8Reading).values, { temperature: -21.5, humidity: 40 });
  } finally {
    if (tty !== undefined) closeSync(tty);
    await agent?.kill();
    await pty.socat.stop();
    work.remove();
  }
});

/** Twenty lines that expand to 9^9 strings in anything that walks the parsed document. */
function aliasBomb(name: string): string {
  const lines = ['apiVersion: sensorlet.io/v1alpha1', 'kind: Sensor', `metadata: { name: ${name} }`, 'spec:', '  driver: { simulated: {} }'];
  lines.push('  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]');
  for (let i = 1; i <= 9; i++) lines.push(`  a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

const DEEP_JSON = `{"apiVersion":"sensorlet.io/v1alpha1","kind":"Sensor","metadata":{"name":"deep"},"spec":${'['.repeat(4000)}${']'.repeat(4000)}}`;

test('an alias bomb and JSON nested 4,000 deep: one clear error each, in validate and in a running agent', async () => {
  const work = tempDir('sensorlet-hostile-parse-');
  let started: AgentProcess | undefined;
  try {
    const bombFile = path.join(work.dir, 'bomb.yaml');
    const deepFile = path.join(work.dir, 'deep.json');
    const loopFile = path.join(work.dir, 'loop.yaml');
    writeFileSync(bombFile, aliasBomb('bomb'));
    writeFileSync(deepFile, DEEP_JSON);
    writeFileSync(loopFile, 'apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: { name: loop }\nspec: &self { driver: { simulated: {} }, again: *self }\n');

    const checked = validate(bombFile, deepFile, loopFile);
    assert.equal(checked.status, 1, checked.stderr);
    assert.doesNotMatch(checked.stderr, /\n\s+at /, 'no stack trace');
    assert.deepEqual(checked.stdout.trim().split('\n'), [
      `${bombFile}:10: Sensor/bomb: spec.a4[0][2][0][1]: the document expands to more than 10000 values (a YAML alias counts each time it is used); not loaded`,
      `${deepFile}:1: Sensor/deep: the document nests deeper than 64 levels; not loaded`,
      `${loopFile}:4: Sensor/loop: spec.again: the document contains itself through a YAML alias; not loaded`,
    ]);
    assert.ok(checked.ms < 5000, `validate took ${checked.ms} ms`);

    const manifests = path.join(work.dir, 'manifests');
    mkdirSync(manifests);
    writeFileSync(path.join(manifests, 'steady.yaml'), STEADY_SENSOR);
    const agent = await AgentProcess.start({ manifests, stateDir: stateDir(work.dir), extraArgs: ['--log-level', 'warn'] });
    started = agent;
    await agent.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    const since = Date.now();
    const latencies = healthLatencies(agent, 3000);
    await sleep(300);
    writeFileSync(path.join(manifests, 'bomb.yaml'), aliasBomb('bomb'));
    writeFileSync(path.join(manifests, 'deep.json'), DEEP_JSON);
    writeFileSync(path.join(manifests, 'loop.yaml'), 'apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: { name: loop }\nspec: &self { again: *self }\n');
    assertResponsive(await latencies, 'hostile files added');
    assertSteady(agent, since + 500, Date.now() - 500, 'hostile files added');
    const bomb = await agent.waitForCondition('Sensor', 'bomb', 'Ready', 'False', 'InvalidSpec', 5000);
    assert.match(bomb.message, /expands to more than 10000 values/);
    const deep = await agent.waitForCondition('Sensor', 'deep', 'Ready', 'False', 'InvalidSpec', 5000);
    assert.match(deep.message, /nests deeper than 64 levels/);
    await agent.waitForCondition('Sensor', 'loop', 'Ready', 'False', 'InvalidSpec', 5000);
    const listed = await agent.resources();
    assert.ok(JSON.stringify(listed).length < 100_000, 'the API shows the errors, not the expansion');

    // A file too broken to name a resource still shows, as a file error.
    writeFileSync(path.join(manifests, 'anonymous.json'), `${'['.repeat(4000)}${']'.repeat(4000)}`);
    await waitFor(
      async () => {
        const response = (await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).json()) as { errors: { origin: { file: string }; errors: { message: string }[] }[] };
        return response.errors.find((entry) => entry.origin.file.endsWith('anonymous.json') && /nests deeper than 64 levels/.test(entry.errors[0].message));
      },
      { timeoutMs: 5000, what: 'the file error of anonymous.json in /api/v1/resources' },
    );
    assert.equal(agent.child.exitCode, null);
  } finally {
    await started?.kill();
    work.remove();
  }
});

test('a catastrophic identity.uriPattern against a near-miss SAN fails alone, at once', async () => {
  const pki = TestPki.create();
  const work = tempDir('sensorlet-hostile-identity-');
  try {
    const issued = pki.issue({ name: 'near-miss', sans: [`URI:spiffe://test/${NEAR_MISS}`] });
    const certificate = (uriPattern: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata: { name: backtracker }
spec:
  pem: { certFile: ${issued.certFile}, keyFile: ${issued.keyFile} }
  identity: { uriPattern: "${uriPattern}" }
`;
    const certificateFile = path.join(work.dir, 'certificate.yaml');
    writeFileSync(path.join(work.dir, 'steady.yaml'), STEADY_SENSOR);
    // First with a harmless pattern, so that what is measured below is the pattern alone, not the
    // one-time cost of loading the certificate machinery.
    writeFileSync(certificateFile, certificate('^spiffe://test/tenant/(?<tenant>[^/]+)/device/(?<device>[^/]+)$'));
    const agent = await AgentProcess.start({ manifests: work.dir, stateDir: stateDir(pki.dir), extraArgs: ['--log-level', 'warn', '--allow-identity-patterns', ...policyArgs({ certificateDirs: [pki.dir] })] });
    try {
      await agent.waitForCondition('Sensor', 'steady', 'Ready', 'True');
      await agent.waitForCondition('Certificate', 'backtracker', 'Ready', 'False', 'InvalidIdentity');
      const since = Date.now();
      const latencies = healthLatencies(agent, 3000);
      await sleep(300);
      writeFileSync(certificateFile, certificate('^spiffe://test/(a+)+(?<tenant>[0-9])(?<device>[0-9])$'));
      assertResponsive(await latencies, 'catastrophic identity pattern');
      assertSteady(agent, since + 500, Date.now() - 500, 'catastrophic identity pattern');
      await waitFor(
        async () => {
          const ready = await agent.condition('Certificate', 'backtracker', 'Ready');
          return ready?.reason === 'InvalidIdentity' && ready.message.includes('(a+)+') && /no SAN matches/.test(ready.message);
        },
        { timeoutMs: 5000, what: 'Certificate/backtracker InvalidIdentity with the new pattern' },
      );
    } finally {
      await agent.kill();
    }
  } finally {
    pki.remove();
    rmSync(work.dir, { recursive: true, force: true });
  }
});
