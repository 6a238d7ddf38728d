// Bundle format, A/B slot install/activate/commit, and the launcher's fallbacks (crash loop, hang)
// with real child processes standing in for builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { BUNDLE_MAGIC, decodeBundle, encodeBundle, packAgentBundle } from './bundle.js';
import { entryPointOf, readActive, RUNNING_ROOT, SlotUpdater, writeActive, type Slot } from './slots.js';
import { runLauncher } from './launcher.js';

const pkg = (version: string) => ({ path: 'package.json', mode: 0o644, data: Buffer.from(JSON.stringify({ version })) });
const main = (code: string) => ({ path: 'dist/cmd/sensorlet/main.js', mode: 0o644, data: Buffer.from(code) });

test('bundle: round trip; refused paths, truncation, missing entries', () => {
  const entries = [pkg('1.2.3'), main('1'), { path: 'schemas/a.json', mode: 0o644, data: Buffer.from('{}') }];
  assert.deepEqual(decodeBundle(encodeBundle(entries)).map((entry) => [entry.path, entry.data.toString()]), entries.map((entry) => [entry.path, entry.data.toString()]));
  for (const bad of ['../x', 'dist/../../etc/passwd', '/etc/passwd', 'node_modules/x.js', 'dist//x', 'dist/./x']) {
    assert.throws(() => encodeBundle([{ path: bad, mode: 0o644, data: Buffer.alloc(0) }]), { code: 'SlotInvalid' }, bad);
    const raw = Buffer.concat([Buffer.from(BUNDLE_MAGIC), Buffer.from(`${JSON.stringify({ path: bad, size: 0 })}\n${JSON.stringify({ end: true, files: 1 })}\n`)]);
    assert.throws(() => decodeBundle(gzipSync(raw)), { code: 'SlotInvalid' }, bad);
  }
  const whole = Buffer.from(encodeBundle(entries));
  assert.throws(() => decodeBundle(whole.subarray(0, whole.length - 10)), { code: 'SlotInvalid' });
  assert.throws(() => decodeBundle(encodeBundle([pkg('1')])), { code: 'SlotInvalid', message: /main\.js is missing/ });
  assert.throws(() => decodeBundle(Buffer.from('not gzip')), { code: 'SlotInvalid' });
});

test('packAgentBundle: the build at a root with its precompiled validators and console, stamped with a version, without tests and source maps', () => {
  const entries = decodeBundle(packAgentBundle(RUNNING_ROOT, { version: '7.7.7' }));
  assert.equal(JSON.parse(entries.find((entry) => entry.path === 'package.json')!.data.toString()).version, '7.7.7');
  assert.ok(entries.some((entry) => entry.path === 'dist/pkg/agent/agent.js'));
  assert.ok(entries.some((entry) => entry.path.startsWith('schemas/')));
  for (const built of ['dist/schemas/validators.cjs', 'dist/console/index.html', 'dist/console/console.js', 'dist/console/console.css']) {
    assert.ok(entries.some((entry) => entry.path === built), `the bundle holds ${built}`);
  }
  assert.ok(!entries.some((entry) => entry.path.endsWith('.test.js') || entry.path.endsWith('.map') || entry.path.startsWith('dist/test/')));
});

test('SlotUpdater: installs into the inactive slot, refuses a version mismatch, trial → commit, rollback to the installed build', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'ota-slots-'));
  const artifact = path.join(stateDir, 'artifact');
  writeFileSync(artifact, encodeBundle([pkg('2.0.0'), main('1')]));
  const updater = new SlotUpdater({ stateDir, restart: async () => {} });
  await assert.rejects(updater.install(artifact, '3.0.0'), { code: 'SlotInvalid', message: /holds version 2\.0\.0/ });
  const { slot, previous } = await updater.install(artifact, '2.0.0');
  assert.equal(slot, 'a');
  assert.equal(previous, undefined);
  assert.ok(existsSync(entryPointOf(stateDir, 'a')));
  assert.ok(existsSync(path.join(stateDir, 'ota', 'slots', 'a', 'node_modules', 'mqtt')), 'node_modules is the installed copy\'s');
  updater.activate('a', { trialTimeoutMs: 1000 });
  assert.deepEqual({ ...readActive(stateDir), trialStartedAt: undefined }, { slot: 'a', state: 'trial', previous: null, boots: 0, trialTimeoutMs: 1000, trialStartedAt: undefined });
  updater.commit('a');
  assert.equal(readActive(stateDir)!.state, 'good');
  updater.activate(undefined);
  assert.equal(readActive(stateDir)!.slot, null);
});

/** A fake build in a slot: a CommonJS script (no package.json above it) that does what `code` says. */
function fakeBuild(stateDir: string, slot: Slot, code: string): void {
  const entry = entryPointOf(stateDir, slot);
  mkdirSync(path.dirname(entry), { recursive: true });
  writeFileSync(entry, code);
}

// The installed build is the real CLI; `validate` of a missing path exits 1 at once, which lets the
// launcher's fallback be observed end to end.
const INSTALLED_ARGV = ['validate', '/nonexistent/sensorlet-manifest.yaml'];

test('launcher: a trial build that keeps exiting is started MAX_TRIAL_BOOTS times, then the previous build runs', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'ota-launcher-'));
  const starts = path.join(stateDir, 'starts');
  fakeBuild(stateDir, 'b', `require('node:fs').appendFileSync(${JSON.stringify(starts)}, 'x'); process.exit(3);`);
  writeActive(stateDir, { slot: 'b', state: 'trial', previous: null, boots: 0, trialTimeoutMs: 60_000 });
  const logs: string[] = [];
  const code = await runLauncher({ stateDir, argv: INSTALLED_ARGV, log: (message) => logs.push(message) });
  assert.equal(readFileSync(starts, 'utf8'), 'xxx');
  assert.equal(code, 1, 'then the installed build ran (validate → exit 1)');
  const active = readActive(stateDir)!;
  assert.equal(active.slot, null);
  assert.equal(active.fellBack?.from, 'b');
  assert.match(active.fellBack!.reason, /did not stay up: 3 starts/);
});

test('launcher: a trial build that hangs is stopped at trialTimeoutMs and the previous build runs; a restart request starts what active names', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'ota-launcher-'));
  fakeBuild(stateDir, 'a', 'setInterval(() => {}, 1000);');
  writeActive(stateDir, { slot: 'a', state: 'trial', previous: null, boots: 0, trialTimeoutMs: 300 });
  const started = Date.now();
  const code = await runLauncher({ stateDir, argv: INSTALLED_ARGV, log: () => {} });
  assert.equal(code, 1);
  assert.ok(Date.now() - started < 8000, 'SIGTERM stopped the hung build (no wait for SIGKILL)');
  assert.match(readActive(stateDir)!.fellBack!.reason, /not healthy within 300 ms/);

  // A good build that asks for a restart (exit 75) after switching active to the installed build.
  const activeJson = path.join(stateDir, 'ota', 'active');
  fakeBuild(stateDir, 'b', `require('node:fs').writeFileSync(${JSON.stringify(activeJson)}, JSON.stringify({ slot: null, state: 'good', previous: null, boots: 0 })); process.exit(75);`);
  writeActive(stateDir, { slot: 'b', state: 'good', previous: null, boots: 0 });
  assert.equal(await runLauncher({ stateDir, argv: INSTALLED_ARGV, log: () => {} }), 1);
  assert.equal(readActive(stateDir)!.slot, null);
});
