// Issue 4, done means 4: rotation under load. The certificate files are replaced in place (write a
// temp file, rename over) while a counter streams at ≥ 200 readings/s; the agent reloads them,
// reconnects with the new certificate, and no seq is lost (duplicates are allowed: at-least-once).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, copyFileSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spiffeId, type TestPki, type standardFixtures } from '../support/pki.js';
import { replaceFile, useMtlsBroker, type MtlsBroker } from '../support/mtls-broker.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { assertContiguous, counterSensor, isContiguous, mtlsSink, pemCertificate, seqsOf } from '../support/mtls-manifests.js';

/** The Sensor here offers 3000 readings per second, above the default per-Sensor cap: the operator raises it. */
const HIGH_RATE = ['--max-readings-per-second', '20000'];

let pki: TestPki;
let fixtures: ReturnType<typeof standardFixtures>;
let mtls: MtlsBroker;

useMtlsBroker((env) => ({ pki, fixtures, mtls } = env));

const hex = (fingerprint: string) => fingerprint.replace(/[^0-9a-f]/gi, '').toLowerCase();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('rotation under load: files renamed over while 3000 readings/s stream; reconnect with the new certificate, no seq lost', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-mtls-rotate-'));
  const certFile = path.join(dir, 'tls.crt');
  const keyFile = path.join(dir, 'tls.key');
  copyFileSync(fixtures.ecDevice.certFile, certFile);
  copyFileSync(fixtures.ecDevice.keyFile, keyFile);
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'all.yaml'), [
    pemCertificate('device', { certFile, keyFile, caFile: pki.ca.certFile }),
    counterSensor('fast', { interval: '20ms', samplesPerRead: 60 }),
    mtlsSink('rotating', { url: mtls.tlsUrl, maxReadings: 200, maxDelay: '20ms', tls: `{ certificateRef: { name: device }, caFile: ${JSON.stringify(pki.ca.certFile)} }` }),
  ].join('---\n'));
  const connections = () => mtls.broker.output.split('\n').filter((line) => line.includes('New client connected') && line.includes("u'acme'")).length;
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const agent = await AgentProcess.start({ manifests, deviceId: 'gw-rot', extraArgs: [...policyArgs({ certificateDirs: [dir, pki.dir], tenantGrants: { default: ['acme'] } }), ...HIGH_RATE] });
  try {
    await agent.waitForCondition('Sink', 'rotating', 'Connected', 'True');
    await observer.waitForReadings((readings) => readings.length >= 3000, 10_000, 'the stream is flowing');
    const before = (await agent.resource('Certificate', 'device'))!.status.nodes[0].fingerprint as string;
    assert.equal(hex(before), hex(new X509Certificate(readFileSync(fixtures.ecDevice.certFile)).fingerprint256));
    const connectionsBefore = connections();
    assert.ok(connectionsBefore >= 1, `the broker logged the agent's connection: ${mtls.broker.output.slice(-500)}`);

    // Same identity, new key pair and certificate, swapped by rename while readings stream.
    const renewed = pki.issue({ name: 'renewed', cn: 'acme', sans: [spiffeId('acme', 'dev1')] });
    const receivedBefore = observer.readings().length;
    replaceFile(keyFile, renewed.keyFile);
    replaceFile(certFile, renewed.certFile);
    const expected = hex(new X509Certificate(readFileSync(renewed.certFile)).fingerprint256);
    await waitFor(async () => hex((await agent.resource('Certificate', 'device'))?.status.nodes[0].fingerprint ?? '') === expected, {
      timeoutMs: 15_000,
      what: 'the Certificate status shows the new fingerprint',
    });
    await agent.waitForCondition('Certificate', 'device', 'Ready', 'True');
    // One info line says so, with the old and the new fingerprint.
    const rotations = agent.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string; oldFingerprint?: string; newFingerprint?: string })
      .filter((entry) => entry.oldFingerprint !== undefined);
    assert.equal(rotations.length, 1, JSON.stringify(rotations));
    assert.equal(rotations[0].level, 30);
    assert.match(rotations[0].msg, /^certificate default\/device rotated/);
    assert.equal(hex(rotations[0].oldFingerprint!), hex(before));
    assert.equal(hex(rotations[0].newFingerprint!), expected);
    await waitFor(() => connections() > connectionsBefore, { timeoutMs: 15_000, what: 'the Sink reconnected to the broker' });
    await agent.waitForCondition('Sink', 'rotating', 'Connected', 'True', undefined, 15_000);

    // Keep streaming after the swap, then everything up to what was read must have arrived.
    await sleep(1500);
    assert.ok(observer.readings().length > receivedBefore + 300, 'readings flow on the new connection');
    const seqs = seqsOf(observer.readingsOf('fast'));
    const target = seqs[seqs.length - 1];
    await observer.waitForReadings((readings) => isContiguous(readings) && seqsOf(readings).at(-1)! >= target, 15_000, `every seq up to ${target}`);
    assertContiguous(observer.readingsOf('fast'), 'fast');

    // The stream really was ≥ 200 readings/s, measured on the readings' own timestamps.
    const readings = observer.readingsOf('fast');
    const first = readings.find((reading) => reading.seq === 1)!;
    const last = readings.reduce((a, b) => (a.seq > b.seq ? a : b));
    const rate = (last.seq - first.seq) / ((Date.parse(last.time) - Date.parse(first.time)) / 1000);
    assert.ok(rate >= 1000, `stream rate ${rate.toFixed(0)} readings/s`);
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
