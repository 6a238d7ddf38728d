import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { addPolicyOptions, PolicyFlagError, policyFromOptions } from './policy-flags.js';
import { DEFAULT_CERTIFICATE_DIRECTORY, tenantGranted } from '../../pkg/policy/policy.js';

function parse(args: string[]) {
  const command = addPolicyOptions(new Command('run').exitOverride());
  command.parse(args, { from: 'user' });
  return policyFromOptions(command.opts());
}

test('no flags: no tenant granted, the default certificate folder, no PKCS#11 module, Secrets in the agent namespace', () => {
  const policy = parse([]).certificates;
  assert.equal(policy.tenantGrants.size, 0);
  assert.equal(tenantGranted(policy, 'default', 'acme'), false);
  assert.deepEqual(policy.directories, [DEFAULT_CERTIFICATE_DIRECTORY]);
  assert.deepEqual(policy.pkcs11Modules, []);
  assert.equal(policy.secretNamespaces, undefined);
});

test('grants from repeated --tenant-grant and a YAML file add up, per namespace', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-grants-'));
  try {
    const file = path.join(dir, 'grants.yaml');
    writeFileSync(file, 'plant-a: [initech]\nplant-c:\n  - umbrella\n');
    const policy = parse(['--tenant-grant', 'plant-a=acme,globex', '--tenant-grant=plant-b=acme', '--tenant-grants-file', file, '--certificate-dir', '/etc/a', '/etc/b']).certificates;
    assert.deepEqual([...policy.tenantGrants.get('plant-a')!].sort(), ['acme', 'globex', 'initech']);
    assert.ok(tenantGranted(policy, 'plant-b', 'acme'));
    assert.ok(!tenantGranted(policy, 'plant-b', 'globex'));
    assert.ok(tenantGranted(policy, 'plant-c', 'umbrella'));
    assert.deepEqual(policy.directories, ['/etc/a', '/etc/b']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed grants stop the agent with a message naming the flag', () => {
  assert.throws(() => parse(['--tenant-grant', 'acme']), (error: Error) => error instanceof PolicyFlagError && /--tenant-grant "acme": expected NAMESPACE=TENANT/.test(error.message));
  assert.throws(() => parse(['--tenant-grant', 'plant-a=Not_A_Label']), /--tenant-grant: "Not_A_Label" is not a valid tenant/);
  assert.throws(() => parse(['--tenant-grants-file', '/nonexistent/grants.yaml']), /--tenant-grants-file \/nonexistent\/grants.yaml: no such file$/);
  assert.throws(() => parse(['--secret-namespaces', 'UPPER']), /--secret-namespaces: "UPPER" is not a valid namespace/);
});

test('--allow-actuator-drivers: no actuator writes by default; comma-separated or repeated; only driver names', () => {
  assert.deepEqual(parse([]).drivers.actuatorDrivers, []);
  assert.deepEqual(parse(['--allow-actuator-drivers', 'modbus,serial']).drivers.actuatorDrivers, ['modbus', 'serial']);
  assert.deepEqual(parse(['--allow-actuator-drivers', 'modbus', '--allow-actuator-drivers', 'file', 'modbus']).drivers.actuatorDrivers, ['modbus', 'file']);
  assert.throws(() => parse(['--allow-actuator-drivers', 'modbus,gpio']), /--allow-actuator-drivers "gpio" is not an actuator driver/);
});

test('--file-write-allow-prefix: nothing writable by default, absolute paths only, never from --file-allow-prefix', () => {
  assert.deepEqual(parse([]).drivers.fileWritePrefixes, []);
  assert.deepEqual(parse(['--file-allow-prefix', '/sys/']).drivers.fileWritePrefixes, []);
  assert.deepEqual(parse(['--file-write-allow-prefix', '/sys/class/gpio/', '/sys/class/pwm/']).drivers.fileWritePrefixes, ['/sys/class/gpio/', '/sys/class/pwm/']);
  assert.throws(() => parse(['--file-write-allow-prefix', 'sys/class']), /--file-write-allow-prefix "sys\/class" must be an absolute path/);
});
