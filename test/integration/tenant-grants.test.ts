// Certificates are material under the operator's control, through the real CLI in folder mode with real
// mutual TLS (Mosquitto with require_certificate and per-tenant ACLs): a namespace presents only the
// tenants the operator granted it, key files are read only under --certificate-dir (symlinks and `..`
// cannot lead out), passwords and PINs come only from SENSORLET_SECRET_* variables, and a PKCS#11
// module (a library the agent would load) only from --pkcs11-module. What is refused is named with the
// flag that would allow it, and a refused secret's value appears in no output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestPki, standardFixtures } from '../support/pki.js';
import { useMtlsBroker, type MtlsBroker } from '../support/mtls-broker.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, CLI, policyArgs } from '../support/agent.js';
import { counterSensor, mtlsSink, pemCertificate, pkcs12Certificate } from '../support/mtls-manifests.js';

let pki: TestPki;
let fixtures: ReturnType<typeof standardFixtures>;
let mtls: MtlsBroker;

useMtlsBroker((env) => ({ pki, fixtures, mtls } = env));

/** Puts a manifest (from the mtls-manifests helpers) into a namespace. */
function inNamespace(namespace: string, manifest: string): string {
  return manifest.replace('metadata:\n', `metadata:\n  namespace: ${namespace}\n`);
}

function pkcs11Certificate(name: string, spec: Record<string, unknown>): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata:
  name: ${name}
spec:
  pkcs11: ${JSON.stringify(spec)}
`;
}

/** Connections Mosquitto accepted with this user name (use_identity_as_username: the certificate's CN). */
function connectionsAs(broker: MtlsBroker, user: string): number {
  return broker.broker.output.split('\n').filter((line) => line.includes('New client connected') && line.includes(`u'${user}'`)).length;
}

function temporaryDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

test("namespace team-x cannot present globex (granted to team-y only) with globex's own key files: TenantNotGranted, and no connection as globex reaches the broker", async () => {
  const dir = temporaryDir('sensorlet-grants-');
  const globexP12 = pki.pkcs12(fixtures.rsaDevice, { name: 'globex-borrowed', password: 'globex-secret' });
  writeFileSync(path.join(dir, 'team-x.yaml'), [
    // Both of globex's key forms, as a manifest author in team-x would point at them.
    pemCertificate('borrowed-pem', { certFile: fixtures.rsaDevice.certFile, keyFile: fixtures.rsaDevice.keyFile, caFile: pki.ca.certFile }, { use: 'borrowed' }),
    pkcs12Certificate('borrowed-p12', globexP12, 'SENSORLET_SECRET_GLOBEX_PASSWORD', { use: 'borrowed' }),
    counterSensor('x-borrowing', { labels: { via: 'borrowed' }, interval: '50ms' }),
    mtlsSink('x-borrowed', {
      url: mtls.tlsUrl,
      selector: '{ matchLabels: { via: borrowed } }',
      tls: `{ certificateSelector: { matchLabels: { use: borrowed } }, caFile: ${JSON.stringify(pki.ca.certFile)} }`,
    }),
    // team-x's own tenant works meanwhile: the agent is up and delivering while the other is refused.
    pemCertificate('own', { certFile: fixtures.ecDevice.certFile, keyFile: fixtures.ecDevice.keyFile, caFile: pki.ca.certFile }),
    counterSensor('x-own', { labels: { via: 'own' }, interval: '50ms' }),
    mtlsSink('x-own', { url: mtls.tlsUrl, selector: '{ matchLabels: { via: own } }', tls: `{ certificateRef: { name: own }, caFile: ${JSON.stringify(pki.ca.certFile)} }` }),
  ].map((manifest) => inNamespace('team-x', manifest)).join('---\n'));
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const globexBefore = connectionsAs(mtls, 'globex');
  const agent = await AgentProcess.start({
    manifests: dir,
    deviceId: 'gw-grants',
    env: { SENSORLET_SECRET_GLOBEX_PASSWORD: 'globex-secret' },
    extraArgs: policyArgs({ certificateDirs: [pki.dir], tenantGrants: { 'team-x': ['acme'], 'team-y': ['globex'] } }),
  });
  try {
    for (const name of ['borrowed-pem', 'borrowed-p12']) {
      const ready = await agent.waitForCondition('Certificate', name, 'Ready', 'False', 'TenantNotGranted');
      assert.match(ready.message, /tenant globex is not granted to namespace team-x/, name);
      assert.match(ready.message, /--tenant-grant team-x=globex/, `${name}: the message names the flag`);
    }
    await agent.waitForCondition('Certificate', 'own', 'Ready', 'True');
    await agent.waitForCondition('Sink', 'x-borrowed', 'Ready', 'False', 'CertificateNotReady');
    await observer.waitForReadings((readings) => readings.filter((reading) => reading.sensor === 'x-own').length >= 20, 15_000, "team-x's own readings");
    // The borrowing sensor keeps producing all along; give a wrong connection time to show up.
    await new Promise((resolve) => setTimeout(resolve, 1500));

    assert.equal(connectionsAs(mtls, 'globex') - globexBefore, 0, `no connection as globex: ${mtls.broker.output.slice(-1500)}`);
    assert.ok(connectionsAs(mtls, 'acme') > 0, 'the broker log shows connections (so the count above means something)');
    const leaked = observer.messages.filter((message) => message.topic.startsWith('sensorlet/globex/') || message.payload?.sensor === 'x-borrowing');
    assert.deepEqual(leaked.map((message) => message.topic), [], 'nothing went out as globex');
    assert.notEqual((await agent.condition('Sink', 'x-borrowed', 'Connected'))?.status, 'True');
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(agent.stateDir, { recursive: true, force: true });
  }
});

test('with no tenant granted at all, a Certificate is TenantNotGranted; a Sink without TLS is unaffected', async () => {
  const dir = temporaryDir('sensorlet-nogrants-');
  writeFileSync(path.join(dir, 'all.yaml'), [
    pemCertificate('ungranted', { certFile: fixtures.ecDevice.certFile, keyFile: fixtures.ecDevice.keyFile, caFile: pki.ca.certFile }),
    counterSensor('plain-sensor', { interval: '50ms' }),
    mtlsSink('plain', { url: `mqtt://127.0.0.1:${mtls.plainPort}`, selector: '{}' }).replace('topic: "sensorlet/{tenant}/{device}/{sensor}"', 'topic: "plain/{device}/{sensor}"'),
  ].join('---\n'));
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'gw-nogrants', extraArgs: policyArgs({ certificateDirs: [pki.dir] }) });
  try {
    const ready = await agent.waitForCondition('Certificate', 'ungranted', 'Ready', 'False', 'TenantNotGranted');
    assert.match(ready.message, /--tenant-grant default=acme/);
    await agent.waitForCondition('Sink', 'plain', 'Connected', 'True');
  } finally {
    await agent.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(agent.stateDir, { recursive: true, force: true });
  }
});

test('passwords and PINs only from SENSORLET_SECRET_* variables and files under --certificate-dir: others are refused by name, and their value appears in no output', async () => {
  const canary = 'canary-Zq81-agent-only-value';
  const dir = temporaryDir('sensorlet-secret-env-');
  const outside = temporaryDir('sensorlet-secret-outside-');
  const passwordFile = path.join(outside, 'password');
  writeFileSync(passwordFile, `${canary}\n`);
  // The container really is encrypted with the canary: had the agent read the variable, it would load.
  const p12 = pki.pkcs12(fixtures.ecDevice, { name: 'canary-p12', password: canary });
  writeFileSync(path.join(dir, 'all.yaml'), [
    pkcs12Certificate('env-not-exposed', p12, 'AGENT_DATABASE_PASSWORD'),
    pkcs11Certificate('pin-not-exposed', { uri: 'pkcs11:token=any;object=any', pinFrom: { env: 'AGENT_DATABASE_PASSWORD' }, certFile: fixtures.ecDevice.certFile }),
    `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata: { name: password-file-outside }
spec:
  pkcs12: { path: ${JSON.stringify(p12)}, passwordFrom: { file: ${JSON.stringify(passwordFile)} } }
`,
    counterSensor('secret-sensor', { interval: '50ms' }),
    mtlsSink('secret-sink', { url: mtls.tlsUrl, tls: `{ certificateRef: { name: env-not-exposed }, caFile: ${JSON.stringify(pki.ca.certFile)} }` }),
  ].join('---\n'));
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const agent = await AgentProcess.start({
    manifests: dir,
    deviceId: 'gw-secrets',
    env: { AGENT_DATABASE_PASSWORD: canary },
    extraArgs: [...policyArgs({ certificateDirs: [pki.dir], tenantGrants: { default: ['acme'] } }), '--log-level', 'debug'],
  });
  try {
    for (const name of ['env-not-exposed', 'pin-not-exposed']) {
      const ready = await agent.waitForCondition('Certificate', name, 'Ready', 'False', 'SecretNotAllowed');
      assert.match(ready.message, /AGENT_DATABASE_PASSWORD/, 'the variable is named');
      assert.match(ready.message, /SENSORLET_SECRET_/, 'the message says how the operator exposes one');
    }
    const fileRefused = await agent.waitForCondition('Certificate', 'password-file-outside', 'Ready', 'False', 'FileNotAllowed');
    assert.match(fileRefused.message, /--certificate-dir/);
    await agent.waitForCondition('Sink', 'secret-sink', 'Ready', 'False', 'CertificateNotReady');
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const { stdout: getYaml } = await promisify(execFile)(process.execPath, [CLI, 'get', 'certificate', '-o', 'yaml', '--admin-addr', agent.adminAddr]);
    assert.match(getYaml, /SecretNotAllowed/, '`sensorlet get` shows the refusal');
    const channels: Record<string, string> = {
      '/api/v1/resources': JSON.stringify(await agent.resources()),
      '/metrics': await agent.metrics(),
      'sensorlet get -o yaml': getYaml,
      logs: agent.stdout + agent.stderr,
      broker: JSON.stringify(observer.messages) + mtls.broker.output,
    };
    for (const [channel, text] of Object.entries(channels)) assert.ok(!text.includes(canary), `the secret's value appeared in ${channel}`);
    assert.equal(observer.messages.filter((message) => message.payload?.sensor === 'secret-sensor').length, 0);
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
    rmSync(agent.stateDir, { recursive: true, force: true });
  }
});

test('key files outside --certificate-dir (directly, through `..` or a symlink), a Sink caFile outside it and a PKCS#11 module not on --pkcs11-module are refused, naming the flag', async () => {
  const dir = temporaryDir('sensorlet-paths-');
  const allowed = temporaryDir('sensorlet-pki-allowed-');
  const outside = temporaryDir('sensorlet-pki-outside-');
  copyFileSync(fixtures.ecDevice.certFile, path.join(outside, 'tls.crt'));
  copyFileSync(fixtures.ecDevice.keyFile, path.join(outside, 'tls.key'));
  copyFileSync(pki.ca.certFile, path.join(outside, 'ca.crt'));
  copyFileSync(fixtures.ecDevice.certFile, path.join(allowed, 'tls.crt'));
  copyFileSync(pki.ca.certFile, path.join(allowed, 'ca.crt'));
  symlinkSync(path.join(outside, 'tls.key'), path.join(allowed, 'linked.key'));
  mkdirSync(path.join(allowed, 'sub'));
  writeFileSync(path.join(allowed, 'libnot-allowed.so'), 'not a library');
  writeFileSync(path.join(dir, 'all.yaml'), [
    pemCertificate('outside', { certFile: path.join(outside, 'tls.crt'), keyFile: path.join(outside, 'tls.key') }),
    pemCertificate('dot-dot', { certFile: path.join(allowed, 'tls.crt'), keyFile: `${allowed}/sub/../../${path.basename(outside)}/tls.key` }),
    pemCertificate('symlinked', { certFile: path.join(allowed, 'tls.crt'), keyFile: path.join(allowed, 'linked.key') }),
    pkcs11Certificate('module-not-allowed', { uri: 'pkcs11:token=any;object=any', certFile: path.join(allowed, 'tls.crt'), module: path.join(allowed, 'libnot-allowed.so') }),
    pkcs11Certificate('module-in-uri', { uri: `pkcs11:token=any;object=any?module-path=${path.join(allowed, 'libnot-allowed.so')}`, certFile: path.join(allowed, 'tls.crt') }),
    pemCertificate('inside', { certFile: fixtures.ecDevice.certFile, keyFile: fixtures.ecDevice.keyFile }),
    mtlsSink('ca-outside', { url: mtls.tlsUrl, tls: `{ certificateRef: { name: inside }, caFile: ${JSON.stringify(path.join(outside, 'ca.crt'))} }` }),
  ].join('---\n'));
  const agent = await AgentProcess.start({
    manifests: dir,
    deviceId: 'gw-paths',
    extraArgs: policyArgs({ certificateDirs: [pki.dir, allowed], tenantGrants: { default: ['acme'] } }),
  });
  try {
    for (const name of ['outside', 'dot-dot', 'symlinked']) {
      const ready = await agent.waitForCondition('Certificate', name, 'Ready', 'False', 'FileNotAllowed');
      assert.match(ready.message, /--certificate-dir/, `${name}: the message names the flag`);
    }
    assert.match((await agent.condition('Certificate', 'symlinked', 'Ready'))!.message, /symlink/);
    for (const name of ['module-not-allowed', 'module-in-uri']) {
      const ready = await agent.waitForCondition('Certificate', name, 'Ready', 'False', 'Pkcs11ModuleNotAllowed');
      assert.match(ready.message, /--pkcs11-module/, `${name}: the message names the flag`);
    }
    // The same certificate from inside the folder loads: only the location was refused.
    await agent.waitForCondition('Certificate', 'inside', 'Ready', 'True');
    const sink = await agent.waitForCondition('Sink', 'ca-outside', 'Ready', 'False', 'FileNotAllowed');
    assert.match(sink.message, /spec\.tls\.caFile .*--certificate-dir/);
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    for (const folder of [dir, allowed, outside, agent.stateDir]) rmSync(folder, { recursive: true, force: true });
  }
});
