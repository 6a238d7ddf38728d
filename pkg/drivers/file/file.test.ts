import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { SensorletError } from '../../api/errors.js';
import { driverContext } from '../../../test/support/driver-context.js';
import { tempDir } from '../../../test/support/socat.js';
import { fileDriver } from './file.js';

const temp = tempDir('sensorlet-file-');
after(() => temp.remove());
/** The temp folder is where this agent's operator allows reads; the rest of the machine is not. */
const allowed = () => driverContext({ policy: { fileAllowPrefixes: [temp.dir] } });
const read = (config: { path: string; pattern?: string; scale?: number }, context = allowed()) => fileDriver.create(config, context).read!(AbortSignal.timeout(1000));

async function code(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => assert.fail('expected an error'), (error: unknown) => error);
  assert.ok(error instanceof SensorletError);
  return error.code;
}

test('reads a sysfs-style millidegree value with scale', async () => {
  const file = path.join(temp.dir, 'temp');
  writeFileSync(file, '48312\n');
  const driver = fileDriver.create({ path: file, scale: 0.001 }, allowed());
  assert.equal((await driver.read!(AbortSignal.timeout(1000)))[0].value, 48.312);
  writeFileSync(file, '-1500\n');
  assert.equal((await driver.read!(AbortSignal.timeout(1000)))[0].value, -1.5);
});

test('a pattern with several named groups gives values', async () => {
  const file = path.join(temp.dir, 'meminfo');
  writeFileSync(file, 'MemTotal:  8000 kB\nMemFree:  1234 kB\n');
  const driver = fileDriver.create({ path: file, pattern: 'MemTotal:\\s+(?<total>\\d+)[\\s\\S]*MemFree:\\s+(?<free>\\d+)' }, allowed());
  assert.deepEqual((await driver.read!(AbortSignal.timeout(1000)))[0].values, { total: 8000, free: 1234 });
});

test('the real thermal zone, when the machine has one', async (t) => {
  const zone = '/sys/class/thermal/thermal_zone0/temp';
  const driver = fileDriver.create({ path: zone, scale: 0.001 }, driverContext());
  try {
    const [sample] = await driver.read!(AbortSignal.timeout(1000));
    assert.ok(sample.value! > -50 && sample.value! < 150);
  } catch (error) {
    // Containers often have no thermal zone; then the error must still be coded.
    assert.ok(['FileNotFound', 'ReadFailed', 'PermissionDenied'].includes((error as SensorletError).code));
    t.diagnostic(`no thermal zone here: ${(error as Error).message}`);
  }
});

test('missing file, no match, not a number, bad regex', async () => {
  const missing = fileDriver.create({ path: path.join(temp.dir, 'nope') }, allowed());
  assert.equal(await code(missing.read!(AbortSignal.timeout(1000))), 'FileNotFound');
  const file = path.join(temp.dir, 'text');
  writeFileSync(file, 'offline\n');
  assert.equal(await code(fileDriver.create({ path: file, pattern: 'T=(?<value>\\d+)' }, allowed()).read!(AbortSignal.timeout(1000))), 'NoMatch');
  assert.equal(await code(fileDriver.create({ path: file }, allowed()).read!(AbortSignal.timeout(1000))), 'BadFrame');
  assert.deepEqual(fileDriver.validate!({ path: file, pattern: '(' }, 'spec.driver.file').map((e) => e.path), ['spec.driver.file.pattern']);
});

test('errors give sizes and at most a few harmless characters, never the content', async () => {
  const file = path.join(temp.dir, 'words');
  writeFileSync(file, 'offline: sensor-secret-XYZ\n');
  const noMatch = await read({ path: file, pattern: 'T=(?<value>\\d+)' }).catch((error: Error) => error.message);
  assert.match(String(noMatch), /27 bytes, starting "offline:"/);
  assert.doesNotMatch(String(noMatch), /secret/);
  const badFrame = await read({ path: file, pattern: 'sensor-(?<value>[a-z-]+)' }).catch((error: Error) => error.message);
  assert.equal(badFrame, 'value is not a number (7 bytes)');
});

test('only real paths under an allowed prefix are read: direct paths, symlinks, .. and hard links are judged by what they are', async () => {
  const outside = tempDir('sensorlet-file-outside-');
  try {
    const secret = path.join(outside.dir, 'shadow');
    writeFileSync(secret, '42\n');
    assert.equal(await code(read({ path: secret })), 'PathNotAllowed');
    symlinkSync(secret, path.join(temp.dir, 'link-to-secret'));
    assert.equal(await code(read({ path: path.join(temp.dir, 'link-to-secret') })), 'PathNotAllowed');
    mkdirSync(path.join(temp.dir, 'sub'));
    assert.equal(await code(read({ path: path.join(temp.dir, 'sub', '..', '..', path.basename(outside.dir), 'shadow') })), 'PathNotAllowed');
    // A folder along the way that is a symlink out of the allowed folder.
    symlinkSync(outside.dir, path.join(temp.dir, 'dir-link'));
    assert.equal(await code(read({ path: path.join(temp.dir, 'dir-link', 'shadow') })), 'PathNotAllowed');
    // A hard link has no real path of its own to judge.
    linkSync(secret, path.join(temp.dir, 'hard-link'));
    assert.equal(await code(read({ path: path.join(temp.dir, 'hard-link') })), 'PathNotAllowed');
    // Missing files outside the policy are refused too: "does not exist" would answer questions.
    assert.equal(await code(read({ path: path.join(outside.dir, 'missing') })), 'PathNotAllowed');
    // A prefix never matches part of a name.
    assert.equal(await code(read({ path: secret }, driverContext({ policy: { fileAllowPrefixes: [outside.dir.slice(0, -2)] } }))), 'PathNotAllowed');
  } finally {
    outside.remove();
  }
});

test('secrets stay refused even under a prefix the operator allowed', async () => {
  const everything = driverContext({ policy: { fileAllowPrefixes: ['/'] } });
  for (const denied of ['/proc/self/environ', `/proc/${process.pid}/cmdline`, '/proc/self/root/etc/shadow', '/proc/1/environ', '/proc/thread-self/environ', '/etc/shadow']) {
    assert.equal(await code(read({ path: denied }, everything)), 'PathNotAllowed', denied);
  }
  const keys = tempDir('sensorlet-file-keys-');
  try {
    writeFileSync(path.join(keys.dir, 'device.key'), '1\n');
    assert.equal(await code(read({ path: path.join(keys.dir, 'device.key') }, everything)), 'PathNotAllowed');
    const deny = driverContext({ policy: { fileAllowPrefixes: ['/'], fileDenyPrefixes: [keys.dir] } });
    writeFileSync(path.join(keys.dir, 'plain'), '1\n');
    assert.equal(await code(read({ path: path.join(keys.dir, 'plain') }, deny)), 'PathNotAllowed');
  } finally {
    keys.remove();
  }
});

test('the default policy reads sysfs and /proc statistics', async () => {
  const [mtu] = await read({ path: '/sys/class/net/lo/mtu' }, driverContext());
  assert.ok(mtu.value! > 0);
  const [load] = await read({ path: '/proc/loadavg', pattern: '^(?<value>[0-9.]+) ' }, driverContext());
  assert.ok(load.value! >= 0);
});

test('only regular files: a FIFO or a device under an allowed prefix is refused without being opened', async () => {
  const fifo = path.join(temp.dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  assert.equal(await code(read({ path: fifo })), 'PathNotAllowed');
  assert.equal(await code(read({ path: '/dev/null' }, driverContext({ policy: { fileAllowPrefixes: ['/dev/'] } }))), 'PathNotAllowed');
});

test('a folder swapped for a symlink while reading is caught by the check of what was opened', async () => {
  const outside = tempDir('sensorlet-file-race-');
  const race = path.join(temp.dir, 'race');
  mkdirSync(path.join(race, 'sub'), { recursive: true });
  writeFileSync(path.join(race, 'sub', 'value'), '1\n');
  writeFileSync(path.join(outside.dir, 'value'), '2\n');
  // Another process swaps race/sub between the real folder and a symlink to the outside one, as
  // fast as it can, for a bounded time.
  const swapper = spawn(process.execPath, ['-e', `
    const fs = require('fs'); const sub = ${JSON.stringify(path.join(race, 'sub'))};
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      try { fs.renameSync(sub, sub + '-real'); fs.symlinkSync(${JSON.stringify(outside.dir)}, sub); fs.unlinkSync(sub); fs.renameSync(sub + '-real', sub); } catch {}
    }
    try { fs.unlinkSync(sub); } catch {} try { fs.renameSync(sub + '-real', sub); } catch {}
  `], { stdio: 'ignore' });
  const exited = new Promise((resolve) => swapper.once('exit', resolve));
  const counts = { one: 0, two: 0, refused: 0, other: 0 };
  try {
    const driver = fileDriver.create({ path: path.join(race, 'sub', 'value') }, allowed());
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      try {
        const [sample] = await driver.read!(AbortSignal.timeout(1000));
        if (sample.value === 1) counts.one++;
        else counts.two++;
      } catch (error) {
        if ((error as SensorletError).code === 'PathNotAllowed') counts.refused++;
        else counts.other++;
      }
    }
  } finally {
    swapper.kill('SIGKILL');
    await exited;
    outside.remove();
  }
  assert.equal(counts.two, 0, `the outside file was read: ${JSON.stringify(counts)}`);
  assert.ok(counts.one > 0 && counts.refused > 0, `both sides of the race were seen: ${JSON.stringify(counts)}`);
});
