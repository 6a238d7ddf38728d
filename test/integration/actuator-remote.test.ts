// Remote desired values over a Sink's own mutual-TLS connections, against a real Mosquitto whose
// ACL lets each tenant use only sensorlet/<tenant>/#. The agent holds one connection per tenant
// (certificateSelector) and listens for commands on each; a tenant's own client sets the Actuator
// of its tenant, another tenant's connection is refused, so are values outside bounds and
// Actuators that do not take remote values. Every command gets a reply and a counted reason, and an
// accepted value expires back to the manifest's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { useMtlsBroker, type MtlsBroker } from '../support/mtls-broker.js';
import { pemCertificate } from '../support/mtls-manifests.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import type { TestPki, standardFixtures } from '../support/pki.js';

let pki: TestPki;
let fixtures: ReturnType<typeof standardFixtures>;
let mtls: MtlsBroker;
useMtlsBroker((env) => ({ pki, fixtures, mtls } = env), { tenantsRead: true });

test('remote values: accepted from the tenant, refused for another tenant and out of bounds, replied and counted, expiring', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-actuator-remote-'));
  const manifests = path.join(dir, 'manifests');
  const sys = path.join(dir, 'sys');
  mkdirSync(manifests);
  mkdirSync(sys);
  const setpoint = path.join(sys, 'setpoint');
  const local = path.join(sys, 'local');
  writeFileSync(setpoint, '0\n');
  writeFileSync(local, '0\n');
  const boiler = ({ max, remote = true }: { max: number; remote?: boolean }) => `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: boiler }
spec:
  driver: { file: { path: ${setpoint} } }
  desired: 20
  bounds: { min: 5, max: ${max} }
  tenant: acme
  remote: ${remote}
  remoteMaxDuration: 1m
  minWriteInterval: 10ms
`;
  // What a manifest author may not do, and a connection without a tenant (no client certificate).
  writeFileSync(
    path.join(manifests, 'refused.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: every-tenant }
spec:
  selector: { matchLabels: { none: none } }
  mqtt: { url: ${mtls.plainUrl}, protocolVersion: 5, commands: { topic: "cmd/{actuator}" } }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: anonymous }
spec:
  selector: { matchLabels: { none: none } }
  mqtt: { url: ${mtls.plainUrl}, protocolVersion: 5, commands: {} }
---
apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: unbounded }
spec:
  driver: { file: { path: ${local} } }
  desired: 1
  tenant: acme
  remote: true
`,
  );
  const manifest = (boilerDoc: string) => [

      pemCertificate('acme-id', { certFile: fixtures.ecDevice.certFile, keyFile: fixtures.ecDevice.keyFile, caFile: pki.ca.certFile }, { sink: 'plant' }),
      pemCertificate('globex-id', { certFile: fixtures.rsaDevice.certFile, keyFile: fixtures.rsaDevice.keyFile, caFile: pki.ca.certFile }, { sink: 'plant' }),
      `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: plant }
spec:
  selector: {}
  mqtt: { url: ${mtls.tlsUrl}, protocolVersion: 5, commands: {} }
  tls: { certificateSelector: { matchLabels: { sink: plant } }, caFile: ${JSON.stringify(pki.ca.certFile)} }
`,
      boilerDoc,
      `apiVersion: sensorlet.io/v1alpha1
kind: Actuator
metadata: { name: local-only }
spec:
  driver: { file: { path: ${local} } }
  desired: 1
  tenant: acme
`,
    ].join('---\n');
  writeFileSync(path.join(manifests, 'all.yaml'), manifest(boiler({ max: 30 })));
  const observer = await Subscriber.connect(mtls.plainUrl, 'sensorlet/+/+/actuators/+/set/reply');
  const agent = await AgentProcess.start({
    manifests,
    extraArgs: [...policyArgs({ certificateDirs: [pki.dir], tenantGrants: { default: ['acme', 'globex'] }, actuatorDrivers: ['file'] }), '--file-write-allow-prefix', sys],
  });
  const client = (device: { certFile: string; keyFile: string }) =>
    mqtt.connectAsync(mtls.tlsUrl, { cert: readFileSync(device.certFile), key: readFileSync(device.keyFile), ca: readFileSync(pki.ca.certFile), protocolVersion: 5, reconnectPeriod: 0 });
  const acme = await client(fixtures.ecDevice);
  const globex = await client(fixtures.rsaDevice);
  const replyTo = async (topic: string) =>
    (await waitFor(() => observer.messages.find((message) => message.topic === `${topic}/reply`), { timeoutMs: 5_000, what: `a reply on ${topic}/reply` })).payload;
  try {
    await agent.waitForCondition('Actuator', 'boiler', 'InSync', 'True', 'Written');
    await agent.waitForCondition('Sink', 'plant', 'Connected', 'True');
    await waitFor(() => /"filter":"sensorlet\/acme\/dev1\/actuators\/\+\/set".*listening for commands|listening for commands.*sensorlet\/acme\/dev1/.test(agent.stdout + agent.stderr) && /sensorlet\/globex\/dev2\/actuators/.test(agent.stdout + agent.stderr), {
      timeoutMs: 10_000,
      what: 'both connections listening for commands',
    });
    assert.equal(readFileSync(setpoint, 'utf8'), '20\n');

    // Another tenant's connection: refused, nothing written.
    const foreign = 'sensorlet/globex/dev2/actuators/boiler/set';
    await globex.publishAsync(foreign, JSON.stringify({ value: 22 }), { qos: 1 });
    assert.deepEqual(await replyTo(foreign), { accepted: false, reason: 'TenantMismatch', message: "the connection's tenant is not this Actuator's (spec.tenant)" });
    // Out of bounds, from the right tenant: refused.
    const own = 'sensorlet/acme/dev1/actuators/boiler/set';
    await acme.publishAsync(own, '99', { qos: 1 });
    const outside = await replyTo(own);
    assert.equal(outside.reason, 'OutOfBounds');
    assert.equal(outside.accepted, false);
    // An Actuator without spec.remote: refused.
    const notRemote = 'sensorlet/acme/dev1/actuators/local-only/set';
    await acme.publishAsync(notRemote, '0', { qos: 1 });
    assert.equal((await replyTo(notRemote)).reason, 'RemoteNotAllowed');
    assert.equal(readFileSync(setpoint, 'utf8'), '20\n');
    assert.equal(readFileSync(local, 'utf8'), '1\n');

    // Accepted from the Actuator's tenant: an override status shows, with source and expiry.
    observer.messages.length = 0;
    await acme.publishAsync(own, JSON.stringify({ value: 25, for: '3s' }), { qos: 1 });
    const accepted = await replyTo(own);
    assert.equal(accepted.accepted, true, JSON.stringify(accepted));
    assert.equal(accepted.reason, 'Accepted');
    await waitFor(() => readFileSync(setpoint, 'utf8') === '25\n', { timeoutMs: 3_000, what: 'the remote value written' });
    const node = (await agent.resource('Actuator', 'boiler'))!.status.nodes[0];
    assert.equal(node.override.value, 25);
    assert.equal(node.override.source, 'Sink default/plant, tenant acme');
    assert.equal(node.override.expires, accepted.expires);
    assert.equal(node.desired, 20);
    // It expires back to the manifest's value.
    await waitFor(() => readFileSync(setpoint, 'utf8') === '20\n', { timeoutMs: 8_000, what: 'the manifest value after expiry' });
    await waitFor(async () => (await agent.resource('Actuator', 'boiler'))!.status.nodes[0].override === undefined, { timeoutMs: 2_000, what: 'the override gone from status' });
    assert.equal((await agent.resource('Actuator', 'boiler'))!.status.nodes[0].driftCorrections, 0, 'a remote value is not drift');

    const metrics = await agent.metrics();
    for (const [actuator, result, reason] of [
      ['boiler', 'refused', 'TenantMismatch'],
      ['boiler', 'refused', 'OutOfBounds'],
      ['local-only', 'refused', 'RemoteNotAllowed'],
      ['boiler', 'accepted', 'Accepted'],
    ]) {
      assert.match(metrics, new RegExp(`sensorlet_actuator_remote_commands_total\\{namespace="default",actuator="${actuator}",result="${result}",reason="${reason}"\\} 1\\b`), `${actuator} ${reason}`);
    }
    assert.match(agent.stderr, /remote value refused.*TenantMismatch|TenantMismatch.*remote value refused/);

    // Refused by validation, with the field path: a command topic every tenant's connection would
    // share, and remote values without bounds.
    const everyTenant = (await agent.waitForCondition('Sink', 'every-tenant', 'Ready', 'False')) as { message: string };
    assert.match(everyTenant.message, /spec\.mqtt\.commands\.topic.*must contain \{tenant\}/);
    const unbounded = (await agent.waitForCondition('Actuator', 'unbounded', 'Ready', 'False')) as { message: string };
    assert.match(unbounded.message, /spec\.bounds.*spec\.remote: true needs spec\.bounds/);
    // A connection without a tenant does not even subscribe: its commands would all be refused.
    await waitFor(() => /not listening for commands: this connection has no tenant/.test(agent.stdout + agent.stderr), { timeoutMs: 5_000, what: 'the anonymous Sink not listening' });
    assert.doesNotMatch(agent.stdout + agent.stderr, /"filter":"sensorlet\/default\/[^"]*".*listening for commands/);

    // Too large for a command, yet within the connection's packet size: refused, replied, counted.
    observer.messages.length = 0;
    await acme.publishAsync(own, JSON.stringify({ value: 21, pad: 'x'.repeat(2_000) }), { qos: 1 });
    assert.equal((await replyTo(own)).reason, 'TooLarge');
    // Larger than the packet size the agent announced (MQTT 5 Maximum Packet Size): the broker never
    // delivers it, so it never reaches the agent's memory; the connection stays up and still works.
    observer.messages.length = 0;
    await acme.publishAsync(own, Buffer.alloc(1024 * 1024, 0x20), { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(observer.messages.find((message) => message.topic === `${own}/reply`), undefined, 'no reply: the agent never received the 1 MiB command');

    // An accepted value survives a spec change that still allows it...
    await acme.publishAsync(own, JSON.stringify({ value: 24, for: '1m' }), { qos: 1 });
    assert.equal((await replyTo(own)).accepted, true);
    await waitFor(() => readFileSync(setpoint, 'utf8') === '24\n', { timeoutMs: 3_000, what: 'the remote value 24 written' });
    const generation = (await agent.resource('Actuator', 'boiler'))!.metadata.generation;
    writeFileSync(path.join(manifests, 'all.yaml'), manifest(boiler({ max: 28 })));
    await waitFor(async () => (await agent.resource('Actuator', 'boiler'))!.status.nodes[0].observedGeneration! > generation, { timeoutMs: 5_000, what: 'the new generation running' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(readFileSync(setpoint, 'utf8'), '24\n', 'the override is kept within the new bounds');
    assert.equal((await agent.resource('Actuator', 'boiler'))!.status.nodes[0].override?.value, 24);
    // ...and is dropped, logged and counted, by one that no longer allows it.
    writeFileSync(path.join(manifests, 'all.yaml'), manifest(boiler({ max: 22 })));
    await waitFor(() => readFileSync(setpoint, 'utf8') === '20\n', { timeoutMs: 5_000, what: 'spec.desired once the override no longer fits' });
    assert.equal((await agent.resource('Actuator', 'boiler'))!.status.nodes[0].override, undefined);
    assert.match(agent.stderr, /remote value does not fit the changed spec/);
    assert.match(await agent.metrics(), /sensorlet_actuator_remote_commands_total\{namespace="default",actuator="boiler",result="dropped",reason="OutOfBounds"\} 1\b/);

    // A flood: past the per-connection burst, commands are refused as RateLimited, counted, and
    // logged at a reduced rate (not once each).
    observer.messages.length = 0;
    const flood = 40;
    await Promise.all(Array.from({ length: flood }, () => acme.publishAsync(own, '21', { qos: 0 })));
    await waitFor(() => observer.messages.filter((message) => message.topic === `${own}/reply`).length >= flood, { timeoutMs: 10_000, what: 'a reply to each command of the flood' });
    const limited = observer.messages.filter((message) => message.topic === `${own}/reply` && message.payload.reason === 'RateLimited').length;
    assert.ok(limited >= flood - 25, `${limited} of ${flood} commands rate limited`);
    const counted = Number(/sensorlet_actuator_remote_commands_total\{namespace="default",actuator="boiler",result="refused",reason="RateLimited"\} (\d+)/.exec(await agent.metrics())?.[1]);
    assert.equal(counted, limited);
    const logged = (agent.stderr.match(/"reason":"RateLimited"[^\n]*remote value refused|remote value refused[^\n]*"reason":"RateLimited"/g) ?? []).length;
    assert.ok(logged >= 1 && logged <= 2, `rate-limited refusals logged ${logged} times`);
  } finally {
    await acme.endAsync(true);
    await globex.endAsync(true);
    await observer.close();
    assert.equal(await agent.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});
