// Issue 4, done means 1: two tenants on one agent over mutual TLS, each with its own Certificate (one
// PEM, one PKCS#12), one Sink with certificateSelector; a third tenant is refused. Asserted on the
// broker side by an anonymous subscriber that sees every topic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spiffeId, type TestPki, type standardFixtures } from '../support/pki.js';
import { useMtlsBroker, type MtlsBroker } from '../support/mtls-broker.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { assertContiguous, counterSensor, mtlsSink, pemCertificate, pkcs12Certificate } from '../support/mtls-manifests.js';

let pki: TestPki;
let fixtures: ReturnType<typeof standardFixtures>;
let mtls: MtlsBroker;

useMtlsBroker((env) => ({ pki, fixtures, mtls } = env));

test('two tenants, one Sink with certificateSelector: each tenant under its own prefix only; a third tenant is TenantMismatch and never sent', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-mtls-'));
  // acme: PEM (EC). globex: PKCS#12 (RSA, OpenSSL 3 defaults) with the password from the environment.
  const globexP12 = pki.pkcs12(fixtures.rsaDevice, { name: 'globex', password: 'globex-secret' });
  writeFileSync(path.join(dir, 'certs.yaml'), [
    pemCertificate('acme-id', { certFile: fixtures.ecDevice.certFile, keyFile: fixtures.ecDevice.keyFile, caFile: pki.ca.certFile }, { sink: 'tenants' }),
    pkcs12Certificate('globex-id', globexP12, 'SENSORLET_SECRET_GLOBEX_P12_PASSWORD', { sink: 'tenants' }),
  ].join('---\n'));
  writeFileSync(path.join(dir, 'sensors.yaml'), [
    counterSensor('acme-a', { tenant: 'acme', interval: '50ms' }),
    counterSensor('acme-b', { tenant: 'acme', interval: '50ms' }),
    counterSensor('globex-a', { tenant: 'globex', interval: '50ms' }),
    counterSensor('initech-a', { tenant: 'initech', interval: '50ms' }),
  ].join('---\n'));
  writeFileSync(path.join(dir, 'sink.yaml'), mtlsSink('tenants', {
    url: mtls.tlsUrl,
    tls: `{ certificateSelector: { matchLabels: { sink: tenants } }, caFile: ${JSON.stringify(pki.ca.certFile)} }`,
  }));
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const agent = await AgentProcess.start({
    manifests: dir,
    deviceId: 'gw-1',
    env: { SENSORLET_SECRET_GLOBEX_P12_PASSWORD: 'globex-secret' },
    // The operator keeps the keys in the test PKI and lets this namespace speak for both tenants.
    extraArgs: policyArgs({ certificateDirs: [pki.dir], tenantGrants: { default: ['acme', 'globex'] } }),
  });
  try {
    await agent.waitForCondition('Certificate', 'acme-id', 'Ready', 'True');
    await agent.waitForCondition('Certificate', 'globex-id', 'Ready', 'True');
    const globexStatus = (await agent.resource('Certificate', 'globex-id'))!.status.nodes[0];
    assert.equal(globexStatus.tenant, 'globex');
    assert.equal(globexStatus.device, 'dev2');
    await agent.waitForCondition('Sink', 'tenants', 'Connected', 'True');

    const mismatch = await agent.waitForCondition('Sensor', 'initech-a', 'Routed', 'False', 'TenantMismatch');
    assert.match(mismatch.message, /\btenants\b/, 'the TenantMismatch message names the Sink');
    assert.match(mismatch.message, /initech/);
    await agent.waitForCondition('Sensor', 'acme-a', 'Routed', 'True');
    await agent.waitForCondition('Sensor', 'globex-a', 'Routed', 'True');

    await observer.waitForReadings(
      (readings) => ['acme-a', 'acme-b', 'globex-a'].every((sensor) => readings.filter((reading) => reading.sensor === sensor).length >= 30),
      15_000,
      '30 readings from every routable sensor',
    );
    // The initech Sensor keeps producing all along; give its readings time to (wrongly) show up.
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const expectations: Record<string, { tenant: string; device: string }> = {
      'acme-a': { tenant: 'acme', device: 'dev1' },
      'acme-b': { tenant: 'acme', device: 'dev1' },
      'globex-a': { tenant: 'globex', device: 'dev2' },
    };
    let crossTenant = 0;
    for (const message of observer.messages) {
      const reading = message.payload;
      const expected = expectations[reading?.sensor];
      assert.ok(expected, `unexpected message on ${message.topic}: ${JSON.stringify(reading)}`);
      // {tenant} and {device} come from the certificate identity of the connection it went over.
      if (message.topic !== `sensorlet/${expected.tenant}/${expected.device}/${reading.sensor}` || reading.tenant !== expected.tenant) crossTenant++;
    }
    assert.equal(crossTenant, 0, 'readings that crossed tenants');
    assert.equal(observer.messages.filter((message) => message.topic.startsWith('sensorlet/initech/') || message.payload?.sensor === 'initech-a').length, 0, 'initech readings left the agent');
    for (const sensor of Object.keys(expectations)) assertContiguous(observer.readingsOf(sensor), sensor);
    const sink = (await agent.resource('Sink', 'tenants'))!.status.nodes[0];
    assert.ok(sink.unroutable > 0, `the Sink counts the initech readings it refused (unroutable=${sink.unroutable})`);
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
