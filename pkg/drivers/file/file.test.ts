import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { SensorletError } from '../../api/errors.js';
import { driverContext } from '../../../test/support/driver-context.js';
import { tempDir } from '../../../test/support/socat.js';
import { fileDriver } from './file.js';

const temp = tempDir('sensorlet-file-');
after(() => temp.remove());

async function code(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => assert.fail('expected an error'), (error: unknown) => error);
  assert.ok(error instanceof SensorletError);
  return error.code;
}

test('reads a sysfs-style millidegree value with scale', async () => {
  const file = path.join(temp.dir, 'temp');
  writeFileSync(file, '48312\n');
  const driver = fileDriver.create({ path: file, scale: 0.001 }, driverContext());
  assert.equal((await driver.read!(AbortSignal.timeout(1000)))[0].value, 48.312);
  writeFileSync(file, '-1500\n');
  assert.equal((await driver.read!(AbortSignal.timeout(1000)))[0].value, -1.5);
});

test('a pattern with several named groups gives values', async () => {
  const file = path.join(temp.dir, 'meminfo');
  writeFileSync(file, 'MemTotal:  8000 kB\nMemFree:  1234 kB\n');
  const driver = fileDriver.create({ path: file, pattern: 'MemTotal:\\s+(?<total>\\d+)[\\s\\S]*MemFree:\\s+(?<free>\\d+)' }, driverContext());
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
  const missing = fileDriver.create({ path: path.join(temp.dir, 'nope') }, driverContext());
  assert.equal(await code(missing.read!(AbortSignal.timeout(1000))), 'FileNotFound');
  const file = path.join(temp.dir, 'text');
  writeFileSync(file, 'offline\n');
  assert.equal(await code(fileDriver.create({ path: file, pattern: 'T=(?<value>\\d+)' }, driverContext()).read!(AbortSignal.timeout(1000))), 'NoMatch');
  assert.equal(await code(fileDriver.create({ path: file }, driverContext()).read!(AbortSignal.timeout(1000))), 'BadFrame');
  assert.deepEqual(fileDriver.validate!({ path: file, pattern: '(' }, 'spec.driver.file').map((e) => e.path), ['spec.driver.file.pattern']);
});
