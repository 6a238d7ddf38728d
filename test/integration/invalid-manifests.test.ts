// The broken-manifest corpus: each file documents, in its header, the exact `validate` lines it
// yields, the condition each broken resource gets in `run`, and the valid Sensors that keep running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { AgentProcess, CLI } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

const CORPUS = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'invalid');
const files = readdirSync(CORPUS).filter((file) => /\.(ya?ml|json)$/.test(file)).sort();

function expectations(prefix: string): string[] {
  return files.flatMap((file) =>
    readFileSync(path.join(CORPUS, file), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith(`# ${prefix}: `))
      .map((line) => line.slice(`# ${prefix}: `.length).trim()),
  );
}

test('the corpus has at least 20 broken manifests, each with documented expectations', () => {
  assert.ok(files.length >= 20, `only ${files.length} fixtures`);
  for (const file of files) {
    const text = readFileSync(path.join(CORPUS, file), 'utf8');
    assert.match(text, /# expect-validate: /, `${file} documents no validate line`);
    assert.match(text, /# expect-running: /, `${file} has no valid Sensor beside the broken one`);
  }
});

test('`sensorlet validate` prints exactly the documented lines and exits 1', () => {
  const result = spawnSync(process.execPath, [CLI, 'validate', path.relative(PACKAGE_ROOT, CORPUS)], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
  assert.equal(result.status, 1, result.stderr);
  const printed = result.stdout.split('\n').filter(Boolean).sort();
  assert.deepEqual(printed, expectations('expect-validate').sort());
});

test('`sensorlet validate` exits 0 on the bundled examples', () => {
  const result = spawnSync(process.execPath, [CLI, 'validate', 'manifests/examples', 'test/fixtures/valid'], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
  assert.equal(result.stdout, '');
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test('in `run`, each broken resource gets its condition and every valid Sensor beside it keeps running', async () => {
  const agent = await AgentProcess.start({ manifests: CORPUS });
  try {
    for (const expectation of expectations('expect-condition')) {
      const match = /^(\w+)\/(\S+) Ready=False (\w+)$/.exec(expectation);
      assert.ok(match, `malformed expect-condition: ${expectation}`);
      const condition = await agent.waitForCondition(match[1], match[2], 'Ready', 'False', match[3], 5000);
      assert.ok(condition.message.length > 0, `${expectation}: the message must say what is wrong`);
    }
    for (const name of expectations('expect-running')) {
      await waitFor(async () => ((await agent.resource('Sensor', name))?.status.nodes[0]?.readings ?? 0) >= 2, { timeoutMs: 5000, what: `Sensor/${name} producing readings` });
      await agent.waitForCondition('Sensor', name, 'Ready', 'True', 'Reading', 2000);
    }
    assert.equal(agent.child.exitCode, null, 'the agent keeps running');
  } finally {
    await agent.kill();
  }
});
