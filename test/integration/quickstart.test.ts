// The README's first command, run as a new user runs it on a machine with nothing else installed:
// it prints readings, and the log says nothing alarming (no warning, no error). The command is
// read from the README itself, so the test follows the documentation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { AGENT_NODE_FLAGS, CLI } from '../support/agent.js';
import { freePort, waitFor } from '../support/ports.js';

/** The `npm start -- ARGS` arguments of the README's first shell block. */
function quickStartArgs(): string[] {
  const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const start = /npm start -- (.*)$/m.exec(block);
  assert.ok(start, `the README's first command runs the agent with npm start: ${block}`);
  return start[1].trim().split(/\s+/);
}

test("README's quick start prints readings and no warnings", { timeout: 60_000 }, async () => {
  const args = quickStartArgs();
  const manifests = args[args.indexOf('--manifests') + 1];
  assert.ok(manifests, 'the quick start names its manifests folder');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'sensorlet-quickstart-'));
  // As the README says, but with a state dir and an admin port of the test's own.
  const run = args.map((arg, index) => (args[index - 1] === '--state-dir' ? stateDir : arg));
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', ...run, '--admin-addr', `127.0.0.1:${await freePort()}`], {
    cwd: PACKAGE_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  try {
    const sensorsOf = () => new Set(stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => (JSON.parse(line) as { sensor: string }).sensor));
    // Every Sensor of the quick start, a few readings each (the slowest reads every 2 s).
    await waitFor(() => sensorsOf().size >= 3 && stdout.split('\n').length > 8, { timeoutMs: 15_000, what: `readings on stdout (stderr: ${stderr})` });
    assert.deepEqual([...sensorsOf()].sort(), ['boiler-temp', 'hall-humidity', 'line-counter']);
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  rmSync(stateDir, { recursive: true, force: true });
  assert.equal(code, 0);
  const logs = stderr.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number; msg: string });
  assert.ok(logs.some((entry) => entry.msg === 'sensorlet started'), stderr);
  const alarming = logs.filter((entry) => entry.level >= 40);
  assert.deepEqual(alarming, [], 'no warning or error on a first run');
});
