#!/usr/bin/env node
// Runs every compiled test file with Node's test runner. Node 20 takes no globs, so the files are
// listed here. `node test/run-tests.mjs unit|integration [filter]` narrows the set.
// Tests that measure timing under load (production rate, interval jitter, pty hang-up detection,
// SIGTERM-to-exit, /healthz latency on a full disk, a browser's 2 s deadline) run first and alone,
// and so do the release artifacts, whose compression and package checks take both cores for a minute
// and would starve whatever timed test ran beside them; everything else runs two files at a time.
import { readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'dist');
const [scope = 'all', filter = ''] = process.argv.slice(2);
const TIMING_SENSITIVE = ['admin-responsiveness.test.js', 'durability-crash.test.js', 'driver-isolation.test.js', 'serial.test.js', 'shutdown.test.js', 'storage-faults.test.js', 'hostile-corpus.test.js', 'hostile-corpus-cluster.test.js', 'web-console.test.js', 'release-artifacts.test.js'];

function findTests(dir) {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) return findTests(full);
    return entry.endsWith('.test.js') ? [full] : [];
  });
}

const files = findTests(root)
  .filter((file) => {
    const integration = file.includes(`${path.sep}test${path.sep}`) && !file.includes(`${path.sep}pkg${path.sep}`);
    if (scope === 'unit') return !integration;
    if (scope === 'integration') return integration;
    return true;
  })
  .filter((file) => file.includes(filter))
  .sort();

if (files.length === 0) {
  console.error(`no test files found under ${root} for scope=${scope} filter=${filter}`);
  process.exit(1);
}

// Bounds, so that a hang fails the run instead of holding CI: any one test 10 minutes, a group 25
// (a test file whose child process outlives its tests keeps the runner waiting otherwise).
const TEST_TIMEOUT_MS = 10 * 60_000;
const GROUP_TIMEOUT_MS = 25 * 60_000;

function run(group, concurrency) {
  if (group.length === 0) return 0;
  const args = ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...group];
  const result = spawnSync(process.execPath, args, { stdio: 'inherit', timeout: GROUP_TIMEOUT_MS });
  if (result.error || result.signal) console.error(`test group did not finish in ${GROUP_TIMEOUT_MS / 60_000} min (${result.error?.message ?? result.signal}): ${group.map((file) => path.basename(file)).join(' ')}`);
  return result.status ?? 1;
}

const alone = files.filter((file) => TIMING_SENSITIVE.includes(path.basename(file)));
const together = files.filter((file) => !alone.includes(file));
const aloneStatus = run(alone, 1);
const togetherStatus = run(together, process.env.TEST_CONCURRENCY ?? '2');
process.exit(aloneStatus || togetherStatus);
