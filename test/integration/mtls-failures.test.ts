// Issue 4, done means 2: every way a client certificate (or the server's) can be wrong yields its own
// condition reason, the agent keeps running, readings produced meanwhile wait in the outbox, and once
// the files are fixed (replaced in place, as a certificate manager does) delivery resumes by itself
// with no seq lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spiffeId, type TestPki, type standardFixtures } from '../support/pki.js';
import { replaceFile, startMtlsBroker, useMtlsBroker, type MtlsBroker } from '../support/mtls-broker.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { waitFor } from '../support/ports.js';
import { assertContiguous, counterSensor, isContiguous, mtlsSink, pemCertificate, pkcs12Certificate } from '../support/mtls-manifests.js';

let pki: TestPki;
let fixtures: ReturnType<typeof standardFixtures>;
let mtls: MtlsBroker;

useMtlsBroker((env) => ({ pki, fixtures, mtls } = env));

const P12_PASSWORD = 'the-right-password';

interface BrokenCase {
  /** Certificate, Sink and Sensor names derive from it; it is also the device in the SAN. */
  name: string;
  /** The Certificate's Ready=False reason. */
  reason: string;
  /** A second condition that must be True, when the kind has one. */
  flag?: string;
  /** Writes the broken files into `dir`; returns the Certificate manifest. */
  setUp(dir: string): string;
  /** Replaces the files in `dir` with good ones, in place. */
  fix(dir: string): void;
}

const good = (device: string) => pki.issue({ name: `good-${device}`, cn: 'acme', sans: [spiffeId('acme', device)] });

/** PEM cases: the broken cert/key pair is copied in, and the fix renames a good pair over it. */
function pemCase(name: string, reason: string, broken: () => { certFile: string; keyFile: string }, flag?: string): BrokenCase {
  return {
    name,
    reason,
    flag,
    setUp(dir) {
      const files = broken();
      copyFileSync(files.certFile, path.join(dir, 'tls.crt'));
      copyFileSync(files.keyFile, path.join(dir, 'tls.key'));
      return pemCertificate(`cert-${name}`, { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key'), caFile: pki.ca.certFile });
    },
    fix(dir) {
      const fixed = good(name);
      replaceFile(path.join(dir, 'tls.key'), fixed.keyFile);
      replaceFile(path.join(dir, 'tls.crt'), fixed.certFile);
    },
  };
}

const day = 86400_000;
const cases: BrokenCase[] = [
  pemCase('expired', 'Expired', () => pki.issue({ name: 'case-expired', cn: 'acme', sans: [spiffeId('acme', 'expired')], notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) }), 'Expired'),
  pemCase('future', 'NotYetValid', () => pki.issue({ name: 'case-future', cn: 'acme', sans: [spiffeId('acme', 'future')], notBefore: new Date(Date.now() + 10 * day) })),
  pemCase('rogue', 'UntrustedChain', () => pki.issue({ name: 'case-rogue', cn: 'acme', sans: [spiffeId('acme', 'rogue')], issuer: 'other' })),
  pemCase('nosan', 'InvalidIdentity', () => pki.issue({ name: 'case-nosan', cn: 'acme' }), 'InvalidIdentity'),
  pemCase('mismatch', 'KeyMismatch', () => {
    const cert = pki.issue({ name: 'case-mismatch', cn: 'acme', sans: [spiffeId('acme', 'mismatch')] });
    const other = pki.issue({ name: 'case-mismatch-other', cn: 'acme', sans: [spiffeId('acme', 'other')] });
    return { certFile: cert.certFile, keyFile: other.keyFile };
  }),
  {
    name: 'p12',
    reason: 'BadPassword',
    setUp(dir) {
      const issued = pki.issue({ name: 'case-p12', cn: 'acme', sans: [spiffeId('acme', 'p12')] });
      copyFileSync(pki.pkcs12(issued, { name: 'case-p12-wrong', password: 'not-the-password' }), path.join(dir, 'device.p12'));
      return pkcs12Certificate('cert-p12', path.join(dir, 'device.p12'), 'SENSORLET_SECRET_P12_PASSWORD');
    },
    fix(dir) {
      replaceFile(path.join(dir, 'device.p12'), pki.pkcs12(good('p12'), { name: 'case-p12-right', password: P12_PASSWORD }));
    },
  },
];

async function queued(agent: AgentProcess, sink: string): Promise<number> {
  return (await agent.resource('Sink', sink))?.status.nodes[0]?.queued ?? 0;
}

test('each broken client certificate has its own reason; readings wait in the outbox and all arrive, contiguous, once the files are fixed', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-mtls-broken-'));
  const manifests = path.join(dir, 'manifests');
  const documents: string[] = [];
  for (const item of cases) {
    const caseDir = path.join(dir, item.name);
    mkdirSync(caseDir, { recursive: true });
    documents.push(item.setUp(caseDir));
    documents.push(counterSensor(`sensor-${item.name}`, { labels: { case: item.name }, interval: '100ms' }));
    documents.push(mtlsSink(`sink-${item.name}`, {
      url: mtls.tlsUrl,
      selector: `{ matchLabels: { case: ${item.name} } }`,
      tls: `{ certificateRef: { name: cert-${item.name} }, caFile: ${JSON.stringify(pki.ca.certFile)} }`,
    }));
  }
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'all.yaml'), documents.join('---\n'));
  const observer = await Subscriber.connect(mtls.plainUrl, '#');
  const agent = await AgentProcess.start({
    manifests,
    deviceId: 'gw-2',
    env: { SENSORLET_SECRET_P12_PASSWORD: P12_PASSWORD },
    extraArgs: policyArgs({ certificateDirs: [dir, pki.dir], tenantGrants: { default: ['acme'] } }),
  });
  try {
    for (const item of cases) {
      const ready = await agent.waitForCondition('Certificate', `cert-${item.name}`, 'Ready', 'False', item.reason);
      assert.doesNotMatch(ready.message, new RegExp(P12_PASSWORD), 'no password in conditions');
      if (item.flag) await agent.waitForCondition('Certificate', `cert-${item.name}`, item.flag, 'True', item.flag);
      await agent.waitForCondition('Sink', `sink-${item.name}`, 'Ready', 'False', 'CertificateNotReady');
      await agent.waitForCondition('Sink', `sink-${item.name}`, 'Connected', 'False', 'CertificateNotReady');
    }
    // Readings pile up in every Sink's outbox; none reaches the broker.
    await waitFor(async () => {
      for (const item of cases) if ((await queued(agent, `sink-${item.name}`)) < 10) return false;
      return true;
    }, { timeoutMs: 10_000, what: 'at least 10 readings queued in every Sink' });
    assert.equal(observer.messages.length, 0, 'nothing may be sent with a broken certificate');
    assert.equal(agent.child.exitCode, null, 'the agent keeps running');
    assert.ok((await fetch(`http://${agent.adminAddr}/healthz`)).ok);
    assert.doesNotMatch(agent.stdout + agent.stderr, new RegExp(P12_PASSWORD), 'no password in logs');

    for (const item of cases) item.fix(path.join(dir, item.name));
    for (const item of cases) {
      await agent.waitForCondition('Certificate', `cert-${item.name}`, 'Ready', 'True', undefined, 15_000);
      if (item.flag) await agent.waitForCondition('Certificate', `cert-${item.name}`, item.flag, 'False');
    }
    for (const item of cases) await agent.waitForCondition('Sink', `sink-${item.name}`, 'Connected', 'True', undefined, 15_000);
    // Everything produced while broken is delivered: seq from 1, no gap, and the stream goes on.
    await observer.waitForReadings(
      () => cases.every((item) => observer.readingsOf(`sensor-${item.name}`).length >= 40 && isContiguous(observer.readingsOf(`sensor-${item.name}`))),
      20_000,
      'every sensor contiguous from seq 1 past 40 readings',
    );
    for (const item of cases) {
      const readings = observer.readingsOf(`sensor-${item.name}`);
      assertContiguous(readings, item.name);
      for (const message of observer.messages.filter((m) => m.payload.sensor === `sensor-${item.name}`)) {
        assert.equal(message.topic, `sensorlet/acme/${item.name}/sensor-${item.name}`);
      }
    }
    assert.equal(agent.child.exitCode, null);
  } finally {
    await agent.kill();
    await observer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a server certificate for another host name: Connected=False ServerNameMismatch, readings queue, and all arrive once the broker has the right certificate', async () => {
  const wrongHost = await startMtlsBroker(pki, fixtures.wrongHostServer);
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-mtls-host-'));
  writeFileSync(path.join(dir, 'all.yaml'), [
    pemCertificate('device', { certFile: fixtures.ecDevice.certFile, keyFile: fixtures.ecDevice.keyFile, caFile: pki.ca.certFile }),
    counterSensor('host-sensor', { interval: '100ms' }),
    mtlsSink('host-sink', { url: wrongHost.tlsUrl, tls: `{ certificateRef: { name: device }, caFile: ${JSON.stringify(pki.ca.certFile)} }` }),
  ].join('---\n'));
  const observer = await Subscriber.connect(wrongHost.plainUrl, '#');
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'gw-3', extraArgs: policyArgs({ certificateDirs: [pki.dir], tenantGrants: { default: ['acme'] } }) });
  try {
    await agent.waitForCondition('Certificate', 'device', 'Ready', 'True');
    const connected = await agent.waitForCondition('Sink', 'host-sink', 'Connected', 'False', 'ServerNameMismatch');
    assert.match(connected.message, /localhost|broker\.example/);
    await waitFor(async () => (await queued(agent, 'host-sink')) >= 10, { timeoutMs: 10_000, what: 'readings queued while the server name is wrong' });
    assert.equal(observer.messages.length, 0);
    assert.equal(agent.child.exitCode, null);

    // Fix the broker's files (in place) and restart it on the same port; the agent reconnects by itself.
    replaceFile(wrongHost.serverKeyFile, fixtures.server.keyFile);
    replaceFile(wrongHost.serverCertFile, fixtures.server.certFile);
    await wrongHost.broker.stop();
    await wrongHost.broker.restart();
    await observer.close();
    const after = await Subscriber.connect(wrongHost.plainUrl, '#');
    try {
      await agent.waitForCondition('Sink', 'host-sink', 'Connected', 'True', undefined, 40_000);
      await after.waitForReadings((readings) => readings.length >= 30 && isContiguous(readings), 20_000, 'contiguous from seq 1');
      assertContiguous(after.readingsOf('host-sensor'), 'host-sensor');
      for (const message of after.messages) assert.equal(message.topic, 'sensorlet/acme/dev1/host-sensor');
    } finally {
      await after.close();
    }
  } finally {
    await agent.kill();
    await observer.close().catch(() => undefined);
    await wrongHost.broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
