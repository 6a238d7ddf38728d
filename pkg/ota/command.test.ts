import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { installCommandRefusal } from './command.js';

const stateDir = '/var/lib/sensorlet-test-state';
const allowed = { allowCommands: true, commandAllowlist: ['/usr/sbin/flash'] };

test('install commands: off without the flag; exact allowlist match; no argument into the state dir', () => {
  assert.match(installCommandRefusal(['/usr/sbin/flash', '{file}'], 'spec.install.command', { allowCommands: false, commandAllowlist: [] }, stateDir)!, /--allow-firmware-commands/);
  assert.equal(installCommandRefusal(['/usr/sbin/flash', '{file}'], 'spec.install.command', allowed, stateDir), undefined);
  // A basename match would let a program of the attacker's choosing pass for the allowed one.
  assert.match(installCommandRefusal(['/tmp/x/flash', '{file}'], 'spec.install.command', allowed, stateDir)!, /spec\.install\.command\[0\].*--firmware-command-allowlist/);
  assert.match(installCommandRefusal(['flash'], 'spec.rollback.command', allowed, stateDir)!, /spec\.rollback\.command\[0\]/);
  // Empty allowlist: any program (the operator allowed commands without naming them).
  assert.equal(installCommandRefusal(['/bin/true'], 'spec.install.command', { allowCommands: true, commandAllowlist: [] }, stateDir), undefined);
  for (const arg of [`${stateDir}/ota/default.x/artifact`, `--image=${stateDir}/ota/default.x/artifact`, path.relative(process.cwd(), `${stateDir}/ota/x`)]) {
    assert.match(installCommandRefusal(['/usr/sbin/flash', arg], 'spec.install.command', allowed, stateDir)!, /spec\.install\.command\[1\] names a path in the agent's state dir/, arg);
  }
});
