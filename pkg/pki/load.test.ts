import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { standardFixtures, TestPki } from '../../test/support/pki.js';
import type { CertificateSpec } from '../api/resource.js';
import { SensorletError } from '../api/errors.js';
import { loadCertificate, loadUsableCertificate, inspectCertificateFile, certificateStatusFacts, type LoadedCertificate } from './index.js';
import { manifestSecretAccess, UNRESTRICTED_ACCESS } from './secrets.js';

/** These tests load what they wrote themselves: no manifest policy applies. */
const OPEN = { access: UNRESTRICTED_ACCESS };

const PASSWORD = 'correct-horse-battery-staple';
const WRONG_PASSWORD = 'wrong-password-123';
let pki: TestPki;
let fx: ReturnType<typeof standardFixtures>;
const p12: Record<string, string> = {};
const env = { P12_PASSWORD: PASSWORD, WRONG_P12_PASSWORD: WRONG_PASSWORD };

before(() => {
  pki = TestPki.create();
  fx = standardFixtures(pki);
  p12.ecDefault = pki.pkcs12(fx.ecDevice, { name: 'ec-default', password: PASSWORD });
  p12.ecLegacy = pki.pkcs12(fx.ecDevice, { name: 'ec-legacy', password: PASSWORD, legacy: true });
  p12.rsaDefault = pki.pkcs12(fx.rsaDevice, { name: 'rsa-default', password: PASSWORD });
  p12.rsaLegacy = pki.pkcs12(fx.rsaDevice, { name: 'rsa-legacy', password: PASSWORD, legacy: true });
});
after(() => pki.remove());

function pem(issued: { certFile: string; keyFile: string }, extra: Partial<CertificateSpec> = {}): CertificateSpec {
  return { pem: { certFile: issued.certFile, keyFile: issued.keyFile, caFile: pki.ca.certFile }, ...extra };
}

function codes(loaded: LoadedCertificate): string[] {
  return loaded.problems.map((p) => p.code);
}

/** Nothing secret may leave the loader: not in problems, facts, or anything JSON-visible but the TLS key. */
function assertNoSecrets(loaded: LoadedCertificate, secrets: string[]): void {
  const { tls: _tls, slot: _slot, ...visible } = loaded;
  const text = JSON.stringify(visible) + JSON.stringify(loaded.slot?.description ?? '');
  for (const secret of secrets) assert.ok(!text.includes(secret), `secret leaked into ${text}`);
}

describe('loadCertificate: PEM', () => {
  for (const [label, pick] of [
    ['EC P-256, PKCS#8 key', () => fx.ecDevice],
    ['EC P-256, SEC1 key', () => ({ certFile: fx.ecDevice.certFile, keyFile: fx.ecDevice.traditionalKeyFile })],
    ['RSA 2048, PKCS#8 key', () => fx.rsaDevice],
    ['RSA 2048, PKCS#1 key', () => ({ certFile: fx.rsaDevice.certFile, keyFile: fx.rsaDevice.traditionalKeyFile })],
  ] as const) {
    it(`${label} is usable and yields identity and facts`, async () => {
      const loaded = await loadCertificate(pem(pick()), OPEN);
      assert.deepEqual(codes(loaded), []);
      assert.equal(loaded.usable, true);
      assert.equal(loaded.source, 'pem');
      assert.ok(loaded.tls?.cert.includes('BEGIN CERTIFICATE'));
      assert.ok(loaded.tls?.key?.includes('BEGIN PRIVATE KEY'));
      assert.ok(loaded.tls?.ca);
      assert.equal(loaded.chain?.trusted, true);
      const issued = pick();
      const expectedTenant = issued.certFile.includes('acme') ? 'acme' : 'globex';
      assert.equal(loaded.identity?.tenant, expectedTenant);
      assert.match(loaded.identity?.device ?? '', /^dev[12]$/);
      const opensslFingerprint = execFileSync('openssl', ['x509', '-in', issued.certFile, '-noout', '-fingerprint', '-sha256']).toString().trim().split('=')[1];
      assert.equal(loaded.facts?.fingerprint, opensslFingerprint);
      assert.equal(loaded.facts?.issuer, 'CN=Sensorlet Test CA');
      assert.equal(loaded.facts?.subject, `CN=${expectedTenant}`);
      assert.deepEqual(loaded.facts?.sans.uris, [`spiffe://test/tenant/${expectedTenant}/device/${loaded.identity?.device}`]);
      const status = certificateStatusFacts(loaded);
      assert.equal(status.tenant, expectedTenant);
      assert.equal(typeof status.notAfter, 'string');
    });
  }

  it('yields each problem code for bad material', async () => {
    const cases: Array<[string, CertificateSpec, string[]]> = [
      ['expired', pem(fx.expired), ['Expired']],
      ['not yet valid', pem(fx.notYetValid), ['NotYetValid']],
      ['signed by another CA', pem(fx.otherCa), ['UntrustedChain']],
      ['no SAN', pem(fx.noSan), ['InvalidIdentity']],
      ['tenant not a DNS label', pem(fx.badTenant), ['InvalidIdentity']],
      ['key of another certificate', { pem: { certFile: fx.ecDevice.certFile, keyFile: fx.rsaDevice.keyFile, caFile: pki.ca.certFile } }, ['KeyMismatch']],
      ['missing certificate file', { pem: { certFile: pki.file('nope.crt'), keyFile: fx.ecDevice.keyFile } }, ['FileNotFound']],
      ['missing CA file', { pem: { certFile: fx.ecDevice.certFile, keyFile: fx.ecDevice.keyFile, caFile: pki.file('nope-ca.crt') } }, ['FileNotFound']],
      ['garbage certificate', { pem: { certFile: garbage('garbage.crt', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), keyFile: fx.ecDevice.keyFile } }, ['InvalidCertificate']],
      ['garbage key', { pem: { certFile: fx.ecDevice.certFile, keyFile: garbage('garbage.key', 'not a key') } }, ['InvalidCertificate']],
    ];
    for (const [label, spec, expected] of cases) {
      const loaded = await loadCertificate(spec, OPEN);
      assert.deepEqual(codes(loaded), expected, label);
      assert.equal(loaded.usable, false, label);
      assert.equal(loaded.tls, undefined, label);
      await assert.rejects(loadUsableCertificate(spec, OPEN), (error: unknown) => error instanceof SensorletError && error.code === expected[0], label);
    }
  });

  it('ExpiringSoon is a warning: still usable', async () => {
    const loaded = await loadCertificate(pem(fx.expiringSoon, { renewBefore: '72h' }), OPEN);
    assert.deepEqual(codes(loaded), ['ExpiringSoon']);
    assert.equal(loaded.problems[0].severity, 'warning');
    assert.equal(loaded.usable, true);
    assert.ok(loaded.tls);
    const relaxed = await loadCertificate(pem(fx.expiringSoon, { renewBefore: '24h' }), OPEN);
    assert.deepEqual(codes(relaxed), []);
    assert.ok(relaxed.renewAt && relaxed.renewAt > new Date());
  });

  it('the injected clock decides validity', async () => {
    const past = await loadCertificate(pem(fx.ecDevice), { now: new Date(Date.now() - 2 * 86400_000), ...OPEN });
    assert.deepEqual(codes(past), ['NotYetValid']);
    const future = await loadCertificate(pem(fx.ecDevice), { now: new Date(Date.now() + 400 * 86400_000), ...OPEN });
    assert.deepEqual(codes(future), ['Expired']);
  });

  it('without caFile the chain is not checked', async () => {
    const loaded = await loadCertificate({ pem: { certFile: fx.otherCa.certFile, keyFile: fx.otherCa.keyFile } }, OPEN);
    assert.equal(loaded.chain, undefined);
    assert.equal(loaded.usable, true);
  });
});

describe('identity', () => {
  it('dnsPattern reads tenant and device from a DNS SAN', async () => {
    const issued = pki.issue({ name: 'dns-id', sans: ['DNS:gw-7.initech.devices.example'] });
    const loaded = await loadCertificate(pem(issued, { identity: { dnsPattern: '^(?<device>[^.]+)\\.(?<tenant>[^.]+)\\.devices\\.example$' } }), OPEN);
    assert.deepEqual(codes(loaded), []);
    assert.deepEqual({ tenant: loaded.identity?.tenant, device: loaded.identity?.device }, { tenant: 'initech', device: 'gw-7' });
    assert.equal(loaded.identity?.san, 'DNS:gw-7.initech.devices.example');
  });

  it('a custom uriPattern without the named groups is InvalidIdentity', async () => {
    const loaded = await loadCertificate(pem(fx.ecDevice, { identity: { uriPattern: '^spiffe://(.*)$' } }), OPEN);
    assert.deepEqual(codes(loaded), ['InvalidIdentity']);
  });

  it('an invalid regex is InvalidIdentity, naming the field', async () => {
    const loaded = await loadCertificate(pem(fx.ecDevice, { identity: { uriPattern: '(' } }), OPEN);
    assert.deepEqual(codes(loaded), ['InvalidIdentity']);
    assert.match(loaded.problems[0].message, /spec\.identity\.uriPattern/);
  });

  it('runs identity patterns in linear time: a backtracking bomb against a real SAN returns at once', async () => {
    const started = performance.now();
    const loaded = await loadCertificate(pem(fx.ecDevice, { identity: { uriPattern: '^(.*)*(.*)*(.*)*x$' } }), OPEN);
    assert.deepEqual(codes(loaded), ['InvalidIdentity']);
    assert.ok(performance.now() - started < 2000, 'no catastrophic backtracking');
  });
});

describe('loadCertificate: PKCS#12', () => {
  for (const variant of ['ecDefault', 'ecLegacy', 'rsaDefault', 'rsaLegacy']) {
    it(`${variant} opens, with the same certificate as the PEM`, async () => {
      const loaded = await loadCertificate({ pkcs12: { path: p12[variant], passwordFrom: { env: 'P12_PASSWORD' }, caFile: pki.ca.certFile } }, { env, ...OPEN });
      assert.deepEqual(codes(loaded), []);
      assert.equal(loaded.source, 'pkcs12');
      const pemLoaded = await loadCertificate(pem(variant.startsWith('ec') ? fx.ecDevice : fx.rsaDevice), OPEN);
      assert.equal(loaded.facts?.fingerprint, pemLoaded.facts?.fingerprint);
      assert.equal(loaded.identity?.tenant, variant.startsWith('ec') ? 'acme' : 'globex');
      assert.ok(loaded.tls?.key?.includes('BEGIN PRIVATE KEY'));
      // The container's CA is not sent as part of the client chain.
      assert.equal(loaded.tls?.cert.match(/BEGIN CERTIFICATE/g)?.length, 1);
      assertNoSecrets(loaded, [PASSWORD]);
    });

    it(`${variant} with a wrong password is BadPassword, and the password appears nowhere`, async () => {
      const loaded = await loadCertificate({ pkcs12: { path: p12[variant], passwordFrom: { env: 'WRONG_P12_PASSWORD' } } }, { env, ...OPEN });
      assert.deepEqual(codes(loaded), ['BadPassword']);
      assertNoSecrets(loaded, [PASSWORD, WRONG_PASSWORD]);
      await assert.rejects(loadUsableCertificate({ pkcs12: { path: p12[variant], passwordFrom: { env: 'WRONG_P12_PASSWORD' } } }, { env, ...OPEN }), (error: Error) => {
        assert.ok(!error.message.includes(WRONG_PASSWORD) && !String(error.stack).includes(WRONG_PASSWORD));
        return (error as SensorletError).code === 'BadPassword';
      });
    });
  }

  it('reads the password from a file (trailing newline ignored)', async () => {
    const passwordFile = garbage('p12.pass', `${PASSWORD}\n`);
    const loaded = await loadCertificate({ pkcs12: { path: p12.ecDefault, passwordFrom: { file: passwordFile } } }, OPEN);
    assert.deepEqual(codes(loaded), []);
  });

  it('a missing password env var is reported without a value', async () => {
    const loaded = await loadCertificate({ pkcs12: { path: p12.ecDefault, passwordFrom: { env: 'NOT_SET_ANYWHERE' } } }, { env: {}, ...OPEN });
    assert.deepEqual(codes(loaded), ['FileNotFound']);
    assert.match(loaded.problems[0].message, /NOT_SET_ANYWHERE/);
  });

  it('a PEM file given as PKCS#12 is InvalidCertificate', async () => {
    const loaded = await loadCertificate({ pkcs12: { path: fx.ecDevice.certFile, passwordFrom: { env: 'P12_PASSWORD' } } }, { env, ...OPEN });
    assert.deepEqual(codes(loaded), ['InvalidCertificate']);
  });
});

describe('loadCertificate: the operator policy for manifests', () => {
  const inside = () => manifestSecretAccess([pki.dir]);
  const p12Env = { SENSORLET_SECRET_P12: PASSWORD, P12_PASSWORD: PASSWORD };

  it('loads from a certificate folder with a SENSORLET_SECRET_ variable', async () => {
    const loaded = await loadCertificate({ pkcs12: { path: p12.ecDefault, passwordFrom: { env: 'SENSORLET_SECRET_P12' } } }, { env: p12Env, access: inside() });
    assert.deepEqual(codes(loaded), []);
  });

  it('refuses other variables by name, without their value', async () => {
    const loaded = await loadCertificate({ pkcs12: { path: p12.ecDefault, passwordFrom: { env: 'P12_PASSWORD' } } }, { env: p12Env, access: inside() });
    assert.deepEqual(codes(loaded), ['SecretNotAllowed']);
    assert.match(loaded.problems[0].message, /P12_PASSWORD .*SENSORLET_SECRET_/);
    assertNoSecrets(loaded, [PASSWORD]);
  });

  it('refuses files outside the folders: a sibling with the same prefix, `..`, and a symlink leading out', async () => {
    const outside = mkdtempSync(`${pki.dir}-sibling`);
    try {
      copyFileSync(fx.ecDevice.keyFile, path.join(outside, 'key.pem'));
      symlinkSync(path.join(outside, 'key.pem'), pki.file('linked-out.key'));
      for (const keyFile of [path.join(outside, 'key.pem'), `${pki.dir}/../${path.basename(outside)}/key.pem`, pki.file('linked-out.key')]) {
        const loaded = await loadCertificate({ pem: { certFile: fx.ecDevice.certFile, keyFile } }, { access: inside() });
        assert.deepEqual(codes(loaded), ['FileNotAllowed'], keyFile);
        assert.match(loaded.problems[0].message, /--certificate-dir/);
      }
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('refuses a PKCS#11 module that is not on the list, and a module named in the URI', async () => {
    const spec = (extra: object) => ({ pkcs11: { uri: 'pkcs11:token=t;object=o', certFile: fx.ecDevice.certFile, ...extra } });
    const listed = await loadCertificate(spec({ module: garbage('libother.so', 'x') }), { access: inside(), pkcs11Modules: [garbage('liballowed.so', 'x')] });
    assert.deepEqual(codes(listed), ['Pkcs11ModuleNotAllowed']);
    const inUri = await loadCertificate({ pkcs11: { uri: 'pkcs11:token=t;object=o;module-path=/tmp/x.so', certFile: fx.ecDevice.certFile } }, { access: inside(), pkcs11Modules: [] });
    assert.deepEqual(codes(inUri), ['Pkcs11ModuleNotAllowed']);
  });
});

describe('inspectCertificateFile', () => {
  it('prints subject, SANs, tenant, device, validity and chain for a PEM certificate', async () => {
    const report = await inspectCertificateFile(fx.ecDevice.certFile, { caFile: pki.ca.certFile });
    const text = report.lines.join('\n');
    assert.equal(report.ok, true);
    for (const expected of ['CN=acme', 'URI:spiffe://test/tenant/acme/device/dev1', 'Tenant:      acme', 'Device:      dev1', 'Not after:', 'trusted by', 'Status:      OK']) {
      assert.ok(text.includes(expected), `${expected} missing in\n${text}`);
    }
  });

  it('opens a PKCS#12 with a password and reports problems by code', async () => {
    const good = await inspectCertificateFile(p12.ecLegacy, { password: PASSWORD });
    assert.equal(good.ok, true, good.lines.join('\n'));
    const bad = await inspectCertificateFile(p12.ecDefault, { password: WRONG_PASSWORD });
    assert.equal(bad.ok, false);
    assert.match(bad.lines.join('\n'), /BadPassword/);
    assert.ok(!bad.lines.join('\n').includes(WRONG_PASSWORD));
    const untrusted = await inspectCertificateFile(fx.otherCa.certFile, { caFile: pki.ca.certFile });
    assert.match(untrusted.lines.join('\n'), /UntrustedChain/);
  });
});

function garbage(name: string, content: string): string {
  const file = pki.file(name);
  writeFileSync(file, content);
  return file;
}
