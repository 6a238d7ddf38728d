// The agent's validators come from the build (dist/schemas/validators.cjs). When that file is
// missing (a tsc-only build) or a schema changed after the build, the agent still validates every
// manifest against the schema it reads, compiling at run time, and warns once that it did: that
// costs start-up time and memory. Run on copies of the built tree, as an installed agent is laid out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { manifestsDir } from '../bench/harness.js';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

const SENSOR = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter }
spec:
  interval: 1s
  driver: { simulated: { waveform: counter } }
`;
const SINK = `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out }
spec:
  selector: {}
  stdout: {}
  batch: { maxReadings: 10, maxDelay: 100ms }
`;
const TYPO = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: typo }
spec:
  intervall: 1s
  driver: { simulated: {} }
`;

/** The built tree as a release lays it out: the bundle, package.json, schemas/, node_modules. */
function builtTreeCopy(options: { validators: boolean }): string {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-tree-'));
  mkdirSync(path.join(root, 'dist/cmd/sensorlet'), { recursive: true });
  cpSync(path.join(PACKAGE_ROOT, 'dist/cmd/sensorlet/main.js'), path.join(root, 'dist/cmd/sensorlet/main.js'));
  if (options.validators) cpSync(path.join(PACKAGE_ROOT, 'dist/schemas'), path.join(root, 'dist/schemas'), { recursive: true });
  cpSync(path.join(PACKAGE_ROOT, 'schemas'), path.join(root, 'schemas'), { recursive: true });
  cpSync(path.join(PACKAGE_ROOT, 'package.json'), path.join(root, 'package.json'));
  symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(root, 'node_modules'));
  return root;
}

async function runAgent(root: string, files: Record<string, string>, check: (agent: AgentProcess) => Promise<void>): Promise<void> {
  const manifests = manifestsDir(files);
  const agent = await AgentProcess.start({ manifests, cli: path.join(root, 'dist/cmd/sensorlet/main.js') });
  try {
    await check(agent);
  } finally {
    await agent.kill();
    rmSync(manifests, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
}

const warnings = (agent: AgentProcess) =>
  agent.stderr
    .split('\n')
    .filter((line) => line.includes('ValidatorsCompiledAtRunTime'))
    .map((line) => JSON.parse(line) as { kinds: string[]; msg: string });

test('without the precompiled validators the agent compiles them, validates as before and warns once', { timeout: 60_000 }, async () => {
  await runAgent(builtTreeCopy({ validators: false }), { 'sensor.yaml': SENSOR, 'sink.yaml': SINK, 'typo.yaml': TYPO }, async (agent) => {
    await agent.waitForCondition('Sensor', 'counter', 'Ready', 'True');
    const typo = await agent.condition('Sensor', 'typo', 'Ready');
    assert.equal(typo?.status, 'False');
    assert.match(typo?.message ?? '', /spec\.intervall: unknown field "intervall"/);
    await waitFor(() => agent.stdout.includes('"sensor":"counter"'), { timeoutMs: 5000, what: 'a reading' });
    const warned = warnings(agent);
    assert.equal(warned.length, 1, agent.stderr);
    assert.deepEqual(warned[0].kinds, ['Sensor', 'Sink', 'Certificate', 'Firmware', 'Actuator']);
    assert.match(warned[0].msg, /dist\/schemas\/validators\.cjs is missing/);
  });
});

test('a schema edited after the build is the one the agent checks: that kind alone is compiled at run time', { timeout: 60_000 }, async () => {
  const root = builtTreeCopy({ validators: true });
  const schemaFile = path.join(root, 'schemas/sensor.schema.json');
  const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as { properties: { spec: { properties: Record<string, unknown> } } };
  schema.properties.spec.properties.note = { type: 'string' };
  writeFileSync(schemaFile, JSON.stringify(schema));
  const noted = SENSOR.replace('metadata: { name: counter }', 'metadata: { name: noted }').replace('spec:\n', 'spec:\n  note: added after the build\n');
  await runAgent(root, { 'sensor.yaml': SENSOR, 'noted.yaml': noted, 'sink.yaml': SINK, 'typo.yaml': TYPO }, async (agent) => {
    await agent.waitForCondition('Sensor', 'counter', 'Ready', 'True');
    await agent.waitForCondition('Sensor', 'noted', 'Ready', 'True');
    assert.match((await agent.condition('Sensor', 'typo', 'Ready'))?.message ?? '', /spec\.intervall: unknown field "intervall"/);
    const warned = warnings(agent);
    assert.equal(warned.length, 1, agent.stderr);
    assert.deepEqual(warned[0].kinds, ['Sensor']);
    assert.match(warned[0].msg, /the build compiled it from another schema/);
  });
});

test('the built tree uses its precompiled validators and does not warn', { timeout: 60_000 }, async () => {
  await runAgent(builtTreeCopy({ validators: true }), { 'sensor.yaml': SENSOR, 'sink.yaml': SINK, 'typo.yaml': TYPO }, async (agent) => {
    await agent.waitForCondition('Sensor', 'counter', 'Ready', 'True');
    assert.match((await agent.condition('Sensor', 'typo', 'Ready'))?.message ?? '', /spec\.intervall: unknown field "intervall"/);
    assert.deepEqual(warnings(agent), []);
  });
});
