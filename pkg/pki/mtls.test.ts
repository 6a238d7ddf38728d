// Mutual TLS against a real Mosquitto: client identities from every KeySlot kind publish under their
// own tenant prefix; a client certificate from another CA is refused. Also PKCS#11 (SoftHSM 2).
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { Mosquitto } from '../../test/support/mosquitto.js';
import { standardFixtures, TestPki, spiffeId } from '../../test/support/pki.js';
import { SoftHsm, SOFTHSM_MODULE, type TokenKey } from '../../test/support/softhsm.js';
import type { CertificateSpec } from '../api/resource.js';
import { classifyTlsError, loadCertificate, type TlsClientOptions } from './index.js';
import { UNRESTRICTED_ACCESS } from './secrets.js';

/** These tests load what they wrote themselves: no manifest policy applies. */
const OPEN = { access: UNRESTRICTED_ACCESS };

const PASSWORD = 'p12-secret-pass';
let pki: TestPki;
let fx: ReturnType<typeof standardFixtures>;
let broker: Mosquitto;
let hsm: SoftHsm;
let tokenKey: TokenKey;

before(async () => {
  pki = TestPki.create();
  fx = standardFixtures(pki);
  hsm = SoftHsm.create();
  tokenKey = hsm.issueTokenKey(pki, { object: 'initech-key', cn: 'initech', sans: [spiffeId('initech', 'hsm1')] });
  broker = await Mosquitto.start({
    config: (port, dir) => {
      const aclFile = `${dir}/acl`;
      // use_identity_as_username takes the subject CN: each CN is its tenant.
      const acl = ['acme', 'globex', 'initech'].map((tenant) => `user ${tenant}\ntopic write sensorlet/${tenant}/#\n`).join('\n');
      writeFileSync(aclFile, acl);
      return [
        'user root',
        `listener ${port} 127.0.0.1`,
        `cafile ${pki.ca.certFile}`,
        `certfile ${fx.server.certFile}`,
        `keyfile ${fx.server.keyFile}`,
        'require_certificate true',
        'use_identity_as_username true',
        `acl_file ${aclFile}`,
      ].join('\n');
    },
  });
});

after(async () => {
  await broker?.stop();
  pki?.remove();
  hsm?.remove();
});

/** Connects, publishes QoS 1 (PUBACK proves the broker accepted it), and reports what happened. */
async function publish(tls: TlsClientOptions, topic: string): Promise<{ connected: boolean; error?: Error }> {
  const client = mqtt.connect(`mqtts://127.0.0.1:${broker.port}`, {
    ...tls,
    ca: readFileSync(pki.ca.certFile, 'utf8'),
    servername: 'localhost',
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 5,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    const reasonCode = await new Promise<number>((resolve, reject) => {
      client.publish(topic, 'hello', { qos: 1 }, (error, packet) => (error ? reject(error) : resolve((packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0)));
    });
    // MQTT 5: 0x87 Not authorized is how Mosquitto answers an ACL denial on QoS 1.
    if (reasonCode !== 0) return { connected: true, error: new Error(`PUBACK reason ${reasonCode}`) };
    return { connected: true };
  } catch (error) {
    return { connected: false, error: error as Error };
  } finally {
    client.end(true);
  }
}

async function usableTls(spec: CertificateSpec, env: Record<string, string> = {}): Promise<TlsClientOptions> {
  const loaded = await loadCertificate(spec, { env, ...OPEN });
  assert.deepEqual(loaded.problems.map((p) => p.code), [], JSON.stringify(loaded.problems));
  return loaded.tls!;
}

describe('mutual TLS against Mosquitto', () => {
  it('a PEM EC identity publishes under its tenant prefix only', async () => {
    const tls = await usableTls({ pem: { certFile: fx.ecDevice.certFile, keyFile: fx.ecDevice.traditionalKeyFile, caFile: pki.ca.certFile } });
    assert.deepEqual(await publish(tls, 'sensorlet/acme/dev1/temp'), { connected: true });
    const denied = await publish(tls, 'sensorlet/globex/dev1/temp');
    assert.match(String(denied.error), /PUBACK reason 135|Not authorized/);
  });

  it('PKCS#12 identities (OpenSSL 3 defaults and -legacy) publish', async () => {
    for (const legacy of [false, true]) {
      const file = pki.pkcs12(fx.rsaDevice, { name: `mtls-rsa-${legacy}`, password: PASSWORD, legacy });
      const tls = await usableTls({ pkcs12: { path: file, passwordFrom: { env: 'PW' }, caFile: pki.ca.certFile } }, { PW: PASSWORD });
      assert.deepEqual(await publish(tls, 'sensorlet/globex/dev2/temp'), { connected: true }, `legacy=${legacy}`);
    }
    const ecFile = pki.pkcs12(fx.ecDevice, { name: 'mtls-ec', password: PASSWORD });
    const tls = await usableTls({ pkcs12: { path: ecFile, passwordFrom: { env: 'PW' }, caFile: pki.ca.certFile } }, { PW: PASSWORD });
    assert.deepEqual(await publish(tls, 'sensorlet/acme/dev1/temp'), { connected: true });
  });

  it('a client certificate from another CA is refused by the broker', async () => {
    // No caFile: the loader cannot know, so only the broker refuses it.
    const tls = await usableTls({ pem: { certFile: fx.otherCa.certFile, keyFile: fx.otherCa.keyFile } });
    const result = await publish(tls, 'sensorlet/acme/rogue/temp');
    assert.equal(result.connected, false);
    assert.equal(classifyTlsError(result.error), 'ClientCertificateRejected', String(result.error));
  });

  it('a server certificate for another host name is refused by the client', async () => {
    const tls = await usableTls({ pem: { certFile: fx.ecDevice.certFile, keyFile: fx.ecDevice.keyFile } });
    const client = mqtt.connect(`mqtts://127.0.0.1:${broker.port}`, { ...tls, ca: readFileSync(pki.ca.certFile, 'utf8'), servername: 'broker.example', reconnectPeriod: 0, connectTimeout: 5000 });
    const error = await new Promise<Error>((resolve) => client.once('error', resolve));
    client.end(true);
    assert.equal(classifyTlsError(error), 'ServerNameMismatch', String(error));
  });

  it('a PKCS#11 key in SoftHSM 2 publishes, the PIN file is gone before connecting, and a wrong PIN is BadPin', async () => {
    const pinFile = pki.file('token.pin');
    writeFileSync(pinFile, `${hsm.pin}\n`);
    const spec: CertificateSpec = { pkcs11: { uri: tokenKey.uri, pinFrom: { file: pinFile }, certFile: tokenKey.certFile, caFile: pki.ca.certFile, module: SOFTHSM_MODULE } };
    // The wrong PIN first: once this process has logged in to the token, libp11 treats the token
    // as logged in and a later wrong PIN is not noticed until the agent restarts.
    const wrongPin = '999999';
    const bad = await loadCertificate({ pkcs11: { ...spec.pkcs11!, pinFrom: { env: 'PIN' } } }, { env: { PIN: wrongPin }, ...OPEN });
    assert.deepEqual(bad.problems.map((p) => p.code), ['BadPin']);
    assert.equal(bad.usable, false);
    assert.ok(!JSON.stringify(bad.problems).includes(wrongPin));
    assert.ok(!JSON.stringify(bad.problems).includes(hsm.pin));

    const loaded = await loadCertificate(spec, OPEN);
    assert.deepEqual(loaded.problems.map((p) => p.code), []);
    assert.equal(loaded.identity?.tenant, 'initech');
    assert.equal(loaded.tls?.privateKeyEngine, 'pkcs11');
    assert.ok(loaded.tls?.secureContext);
    assert.equal(loaded.tls?.key, undefined, 'the key never leaves the token');
    rmSync(pinFile);
    assert.deepEqual(await publish(loaded.tls!, 'sensorlet/initech/hsm1/temp'), { connected: true });

  });

  it('a PKCS#11 key paired with another certificate is KeyMismatch; an unknown object is FileNotFound', async () => {
    const mismatch = await loadCertificate({ pkcs11: { uri: tokenKey.uri, pinFrom: { env: 'PIN' }, certFile: fx.ecDevice.certFile, module: SOFTHSM_MODULE } }, { env: { PIN: hsm.pin }, ...OPEN });
    assert.deepEqual(mismatch.problems.map((p) => p.code), ['KeyMismatch']);
    const missing = await loadCertificate({ pkcs11: { uri: `pkcs11:token=${hsm.tokenLabel};object=nope`, pinFrom: { env: 'PIN' }, certFile: tokenKey.certFile, module: SOFTHSM_MODULE } }, { env: { PIN: hsm.pin }, ...OPEN });
    assert.deepEqual(missing.problems.map((p) => p.code), ['FileNotFound']);
  });
});
