import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SensorletError } from '../../api/errors.js';
import { driverContext } from '../../../test/support/driver-context.js';
import { tempDir } from '../../../test/support/socat.js';
import { commandDriver } from './command.js';

const temp = tempDir('sensorlet-command-');
after(() => temp.remove());

// A harmless probe: records the argv it received and prints a reading.
const probe = path.join(temp.dir, 'probe.cjs');
const argvFile = path.join(temp.dir, 'argv.json');
writeFileSync(probe, `require('fs').writeFileSync(${JSON.stringify(argvFile)}, JSON.stringify(process.argv.slice(2))); console.log('load=0.75 procs=12');\n`);
const allowed = { allowCommandDriver: true, commandAllowlist: [] };

async function code(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => assert.fail('expected an error'), (error: unknown) => error);
  assert.ok(error instanceof SensorletError, String(error));
  return error.code;
}

test('a manifest alone cannot run a command: refused without the agent flag, nothing runs', async () => {
  const canary = path.join(temp.dir, 'ran');
  let error: SensorletError | undefined;
  try {
    commandDriver.create({ argv: ['/usr/bin/touch', canary] }, driverContext());
  } catch (thrown) {
    error = thrown as SensorletError;
  }
  assert.equal(error?.code, 'CommandNotAllowed');
  assert.equal(error.terminal, true);
  assert.equal(existsSync(canary), false);
});

test('with the flag, an allowlist is enforced by exact path', async () => {
  const policy = { allowCommandDriver: true, commandAllowlist: ['/bin/echo'] };
  assert.throws(() => commandDriver.create({ argv: ['/usr/bin/touch', path.join(temp.dir, 'x')] }, driverContext({ policy })), { code: 'CommandNotAllowed' });
  const echo = commandDriver.create({ argv: ['/bin/echo', '42'] }, driverContext({ policy }));
  assert.equal((await echo.read!(AbortSignal.timeout(1000)))[0].value, 42);
});

test('never a shell: "; rm -rf /" and $(...) are passed literally', async () => {
  const canary = path.join(temp.dir, 'injected');
  const hostile = ['; rm -rf /', `$(touch ${canary})`, `\`touch ${canary}\``, '&& echo 1 | tee x', "'quoted' \"twice\""];
  const driver = commandDriver.create(
    { argv: [process.execPath, probe, ...hostile], pattern: 'load=(?<load>[0-9.]+) procs=(?<procs>\\d+)' },
    driverContext({ policy: allowed }),
  );
  const [sample] = await driver.read!(AbortSignal.timeout(5000));
  assert.deepEqual(sample.values, { load: 0.75, procs: 12 });
  assert.deepEqual(JSON.parse(readFileSync(argvFile, 'utf8')), hostile);
  assert.equal(existsSync(canary), false);
});

test('exit status, missing executable and a hung command are coded errors', async () => {
  const context = () => driverContext({ policy: allowed, timeoutMs: 300 });
  assert.equal(await code(commandDriver.create({ argv: ['/bin/false'] }, context()).read!(AbortSignal.timeout(1000))), 'CommandFailed');
  assert.equal(await code(commandDriver.create({ argv: [path.join(temp.dir, 'missing')] }, context()).read!(AbortSignal.timeout(1000))), 'CommandFailed');
  const started = Date.now();
  assert.equal(await code(commandDriver.create({ argv: ['/bin/sleep', '10'] }, context()).read!(AbortSignal.timeout(5000))), 'Timeout');
  // The runner's abort is honoured as well.
  assert.equal(await code(commandDriver.create({ argv: ['/bin/sleep', '10'] }, driverContext({ policy: allowed, timeoutMs: 10_000 })).read!(AbortSignal.timeout(200))), 'Timeout');
  assert.ok(Date.now() - started < 3000);
  assert.equal(await code(commandDriver.create({ argv: ['/bin/echo', 'n/a'] }, context()).read!(AbortSignal.timeout(1000))), 'BadFrame');
});
