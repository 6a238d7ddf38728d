// Firmware under the operator's policy, through the real CLI in folder mode, as an attacker who can
// only write manifests would try it: a canary file that any program they get to run creates, and
// the artifact server's log, prove that nothing ran and nothing was downloaded for each refusal,
// and each refusal has its named reason. The legitimate path (an allowed program, a key from the
// trust store folder) installs alongside, and a refusal is not sticky: the same Firmware installs
// once the operator gives the flag.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { sign } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureFor, signatureYaml, signedArtifact, signingKey, trustKey, type Intent, type SignatureBlock } from '../../pkg/ota/testing/artifacts.js';

const SIZE = 64 * 1024;
const dir = mkdtempSync(path.join(tmpdir(), 'ota-trust-it-'));
const manifests = path.join(dir, 'manifests');
const stateDir = path.join(dir, 'state');
const trustDir = path.join(dir, 'trust');
const canary = path.join(dir, 'canary');
mkdirSync(manifests);

function program(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}
// The device's own programs, allowed by the operator in the tests that allow commands.
const install = program('install.sh', `cp "$1" "${dir}/installed"`);
const rollback = program('rollback.sh', `rm -f "${dir}/installed"`);
// Another program the operator allowed (a second device tool): what a replay would run instead.
const other = program('other-tool.sh', `touch "${canary}"`);
// A program nobody allowed.
const unlisted = program('unlisted.sh', `touch "${canary}"`);

const artifact = signedArtifact(SIZE);
trustKey(trustDir, 'release', artifact.key);
const attacker = signingKey();
const argv = (first: string, ...rest: string[]) => ({ command: [first, ...rest] as [string, ...string[]] });
const genuine: Intent = { version: '2.0.0', target: 'command', install: argv(install, '{file}'), rollback: argv(rollback) };

// What a download cut short leaves in the state dir: here, bytes the attacker chose (their public
// key). It must never serve as a key, through a manifest path or through the trust folder.
const partial = path.join(stateDir, 'ota', 'default.partial', 'artifact');
mkdirSync(path.dirname(partial), { recursive: true });
writeFileSync(partial, attacker.publicKeyPem);
symlinkSync(partial, path.join(trustDir, 'partial.pem'));

let server: ArtifactServer;
const agents: AgentProcess[] = [];

after(async () => {
  for (const agent of agents) await agent.kill();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function firmware(name: string, intent: Intent, signature: string): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Firmware
metadata: { name: ${name} }
spec:
  version: "${intent.version}"
  target: ${intent.target}
  artifact:
    url: ${server.url(`${name}.bin`)}
    sha256: "${artifact.sha256}"
    size: ${SIZE}
    signature: ${signature}
${intent.install ? `  install: { command: ${JSON.stringify(intent.install.command)} }\n` : ''}${intent.rollback ? `  rollback: { command: ${JSON.stringify(intent.rollback.command)} }\n` : ''}  healthCheck: { timeout: 5s, require: [sensorsReady] }
  drain: { timeout: 1s }
`;
}

const signed = (intent: Intent, keyName = 'release', key = artifact.key): string => signatureYaml(signatureFor(intent, artifact, key, keyName));
const block = (intent: Intent): SignatureBlock => signatureFor(intent, artifact, artifact.key);

function apply(name: string, yaml: string): void {
  writeFileSync(path.join(manifests, `${name}.yaml`), yaml);
}

async function refused(agent: AgentProcess, name: string, reason: string, message?: RegExp): Promise<void> {
  const condition = await agent.waitForCondition('Firmware', name, 'Ready', 'False', reason);
  if (message) assert.match(condition.message, message, `${name}: ${condition.message}`);
  assert.equal(existsSync(path.join(stateDir, 'ota', `default.${name}`, 'artifact')), false, `${name}: nothing downloaded`);
}

const operatorFlags = ['--allow-firmware-commands', '--firmware-command-allowlist', install, rollback, other, '--firmware-trust-dir', trustDir];

test('no --allow-firmware-commands: a signed target: command Firmware is refused (InstallCommandNotAllowed), and so is the old publicKey.file pointing at a partial download', async () => {
  server = await ArtifactServer.start(artifact.body);
  apply('no-flag', firmware('no-flag', genuine, signed(genuine)));
  // The attack as it worked before keys came from a trust store: the manifest names the key file —
  // the attacker's own key, left in the state dir by a download cut short — and signs the bytes.
  const oldStyle = { ...genuine, install: argv(other, '{file}') };
  const bytesSignature = sign(null, artifact.body, attacker.privateKey).toString('base64');
  apply('old-style', firmware('old-style', oldStyle, `{ algorithm: ed25519, value: "${bytesSignature}", publicKey: { file: ${partial} } }`));
  const agent = await AgentProcess.start({ manifests, stateDir, extraArgs: ['--firmware-trust-dir', trustDir] });
  agents.push(agent);
  await refused(agent, 'no-flag', 'InstallCommandNotAllowed', /--allow-firmware-commands/);
  await refused(agent, 'old-style', 'InvalidSpec', /publicKey.*keyRef/);
  assert.equal(server.log.length, 0, 'nothing was downloaded');
  assert.equal(existsSync(canary), false, 'no program ran');
  assert.equal(existsSync(path.join(dir, 'installed')), false);
  assert.equal(await agent.stop(), 0);
});

test('the operator gives the flag: the same Firmware installs through the allowed program with the key from the trust store (a refusal is not sticky)', async () => {
  const agent = await AgentProcess.start({ manifests, stateDir, extraArgs: operatorFlags });
  agents.push(agent);
  await agent.waitForCondition('Firmware', 'no-flag', 'Ready', 'True', 'UpToDate', 20_000);
  assert.ok(readFileSync(path.join(dir, 'installed')).equals(artifact.body));
  await refused(agent, 'old-style', 'InvalidSpec');
  assert.equal(existsSync(canary), false);
  assert.equal(await agent.stop(), 0);
  rmSync(path.join(manifests, 'no-flag.yaml'));
  rmSync(path.join(manifests, 'old-style.yaml'));
});

test('with commands allowed: programs off the allowlist, keys outside the trust store and replayed signatures are each refused with their reason; nothing downloaded, nothing ran', async () => {
  const asAgent: Intent = { version: '2.0.0', target: 'agent' };
  const cases: { name: string; yaml: string; reason: string; message?: RegExp }[] = [
    {
      name: 'unlisted',
      yaml: firmware('unlisted', { ...genuine, install: argv(unlisted, '{file}') }, signed({ ...genuine, install: argv(unlisted, '{file}') })),
      reason: 'InstallCommandNotAllowed',
      message: /unlisted\.sh.*--firmware-command-allowlist/,
    },
    {
      name: 'argv-into-state',
      yaml: firmware('argv-into-state', { ...genuine, install: argv(install, partial) }, signed({ ...genuine, install: argv(install, partial) })),
      reason: 'InstallCommandNotAllowed',
      message: /state dir/,
    },
    {
      name: 'key-path',
      yaml: firmware('key-path', genuine, signatureYaml({ ...block(genuine), keyRef: { name: `../state/ota/default.partial/artifact` } })),
      reason: 'InvalidSpec',
      message: /keyRef\.name/,
    },
    { name: 'key-symlink', yaml: firmware('key-symlink', genuine, signed(genuine, 'partial', attacker)), reason: 'KeyRefNotAllowed', message: /out of the trust store/ },
    { name: 'key-unknown', yaml: firmware('key-unknown', genuine, signed(genuine, 'attacker', attacker)), reason: 'TrustKeyNotFound', message: /attacker\.pem/ },
    { name: 'key-attacker', yaml: firmware('key-attacker', genuine, signed(genuine, 'release', attacker)), reason: 'SignatureInvalid' },
    {
      name: 'replay-command',
      yaml: firmware('replay-command', { ...genuine, install: argv(other, '{file}') }, signed(genuine)),
      reason: 'SignatureScopeMismatch',
      message: /spec\.install\.command/,
    },
    { name: 'replay-rollback', yaml: firmware('replay-rollback', { ...genuine, rollback: argv(other) }, signed(genuine)), reason: 'SignatureScopeMismatch', message: /spec\.rollback\.command/ },
    { name: 'replay-version', yaml: firmware('replay-version', { ...genuine, version: '3.0.0' }, signed(genuine)), reason: 'SignatureScopeMismatch', message: /spec\.version/ },
    {
      // A genuine agent bundle's signature, replayed to have a device tool run it.
      name: 'replay-target',
      yaml: firmware('replay-target', { ...genuine, install: argv(other, '{file}'), rollback: undefined }, signed(asAgent)),
      reason: 'SignatureScopeMismatch',
      message: /spec\.target/,
    },
  ];
  for (const each of cases) apply(each.name, each.yaml);
  apply('modem', firmware('modem', genuine, signed(genuine)));
  const requestsBefore = server.log.length;
  const agent = await AgentProcess.start({ manifests, stateDir: stateDir, extraArgs: operatorFlags });
  agents.push(agent);
  // The legitimate Firmware beside them installs.
  await agent.waitForCondition('Firmware', 'modem', 'Ready', 'True', 'UpToDate', 20_000);
  for (const each of cases) await refused(agent, each.name, each.reason, each.message);
  await waitFor(async () => server.log.length - requestsBefore === 1, { timeoutMs: 2000, what: 'one download' });
  assert.equal(server.log.length - requestsBefore, 1, 'only the legitimate artifact was downloaded');
  assert.equal(existsSync(canary), false, 'no refused program ran');
  // Refusals name the reason in status only: the attacker's key file content is echoed nowhere.
  const everything = JSON.stringify(await agent.resources()) + agent.stdout + agent.stderr;
  assert.equal(everything.includes(attacker.publicKeyPem.split('\n')[1]), false, 'key material is not echoed');
  assert.equal(await agent.stop(), 0);
});

test('target: agent (--self-update): a signature issued for device firmware, or by a key outside the trust store, never replaces the agent', async () => {
  const asAgent: Intent = { version: '2.0.0', target: 'agent' };
  apply('agent-replay', firmware('agent-replay', asAgent, signed(genuine)));
  apply('agent-untrusted', firmware('agent-untrusted', asAgent, signed(asAgent, 'release', attacker)));
  const requestsBefore = server.log.length;
  const agent = await AgentProcess.start({ manifests, stateDir, extraArgs: ['--self-update', '--firmware-trust-dir', trustDir] });
  agents.push(agent);
  await refused(agent, 'agent-replay', 'SignatureScopeMismatch', /spec\.target/);
  await refused(agent, 'agent-untrusted', 'SignatureInvalid');
  assert.equal(server.log.length, requestsBefore, 'nothing was downloaded');
  assert.match(await agent.metrics(), /sensorlet_build_info\{version="[^"]+",slot="installed"\} 1/, 'the installed build still runs');
  assert.equal(existsSync(path.join(stateDir, 'ota', 'slots')), false, 'no slot was written');
  assert.equal(await agent.stop(), 0);
});

test('an older version the vendor once signed is refused against the installed one (DowngradeNotAllowed), until the operator gives --allow-firmware-downgrade', async () => {
  // `no-flag` installed 2.0.0 above (its record stays in the state dir); 1.9.0 is validly signed too.
  const older: Intent = { ...genuine, version: '1.9.0' };
  rmSync(path.join(dir, 'installed'), { force: true });
  apply('no-flag', firmware('no-flag', older, signed(older)));
  // The same under a new name, which has no record of its own: the device is the same, since the
  // install command (covered by the signature) is.
  apply('renamed', firmware('renamed', older, signed(older)));
  const requestsBefore = server.log.length;
  let agent = await AgentProcess.start({ manifests, stateDir, extraArgs: operatorFlags });
  agents.push(agent);
  const condition = await agent.waitForCondition('Firmware', 'no-flag', 'Ready', 'False', 'DowngradeNotAllowed');
  assert.match(condition.message, /spec\.version "1\.9\.0" is older than "2\.0\.0", installed on this node by (this Firmware|Firmware \S+ with the same install command).*--allow-firmware-downgrade/);
  const renamed = await agent.waitForCondition('Firmware', 'renamed', 'Ready', 'False', 'DowngradeNotAllowed');
  assert.match(renamed.message, /older than "2\.0\.0", installed on this node by Firmware \S+ with the same install command/);
  assert.equal(server.log.length, requestsBefore, 'nothing was downloaded');
  assert.equal(existsSync(path.join(dir, 'installed')), false, 'nothing was installed');
  assert.equal(await agent.stop(), 0);
  rmSync(path.join(manifests, 'renamed.yaml'));

  agent = await AgentProcess.start({ manifests, stateDir, extraArgs: [...operatorFlags, '--allow-firmware-downgrade'] });
  agents.push(agent);
  await agent.waitForCondition('Firmware', 'no-flag', 'Ready', 'True', 'UpToDate', 20_000);
  assert.equal((await agent.resource('Firmware', 'no-flag'))?.status.nodes[0]?.currentVersion, '1.9.0');
  assert.ok(readFileSync(path.join(dir, 'installed')).equals(artifact.body));
  assert.equal(server.log.length - requestsBefore, 1, 'the older artifact was downloaded once');
  assert.equal(await agent.stop(), 0);
});
