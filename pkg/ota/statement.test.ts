import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import yaml from 'js-yaml';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FirmwareSpec } from '../api/resource.js';
import { PACKAGE_ROOT } from '../api/schemas.js';
import { canonicalJson, encodeStatement, parseStatement, statementOf, verifyIntent } from './statement.js';
import { signedArtifact, signingKey, signSpec } from './testing/artifacts.js';

const artifact = signedArtifact(4096);

function spec(change: Partial<FirmwareSpec> = {}): FirmwareSpec {
  return signSpec(
    {
      version: '2.0.0',
      target: 'command',
      artifact: { url: 'http://127.0.0.1/a.bin', sha256: artifact.sha256, size: artifact.size, signature: { keyRef: { name: 'release' }, algorithm: 'ed25519', statement: '', value: '' } },
      install: { command: ['/usr/sbin/flash', '--image', '{file}'] },
      rollback: { command: ['/usr/sbin/flash', '--restore'] },
      ...change,
    },
    artifact.key,
  );
}

test('the statement is RFC 8785 canonical JSON: sorted keys, no whitespace, null for an absent command', () => {
  const bytes = encodeStatement(statementOf({ version: '1.0', target: 'agent' }, { sha256: 'AB'.repeat(32), size: 7 }));
  assert.equal(
    bytes.toString(),
    `{"artifact":{"sha256":"${'ab'.repeat(32)}","size":7},"install":null,"rollback":null,"target":"agent","type":"sensorlet.io/firmware-statement/v1","version":"1.0"}`,
  );
  assert.equal(canonicalJson({ b: ['x', 'é\n"'], a: 1 }), '{"a":1,"b":["x","é\\n\\""]}');
});

test('parseStatement refuses what is not one canonical statement (StatementInvalid)', () => {
  const good = encodeStatement(statementOf(spec(), artifact));
  assert.deepEqual(parseStatement(good).install, ['/usr/sbin/flash', '--image', '{file}']);
  const variants = [
    Buffer.from(JSON.stringify(JSON.parse(good.toString()), null, 2)), // whitespace
    Buffer.from(good.toString().replace('{"artifact"', '{"version":"9.9.9","artifact"')), // a duplicate key: JSON.parse keeps the last
    Buffer.from(good.toString().replace('"type":"sensorlet.io/firmware-statement/v1"', '"type":"other"')),
    Buffer.from(good.toString().replace('}', ',"extra":1}')),
    Buffer.from('not json'),
  ];
  for (const bytes of variants) assert.throws(() => parseStatement(bytes), { code: 'StatementInvalid' }, bytes.toString());
});

test('verifyIntent: a genuine statement passes; a replay names the field it changes (SignatureScopeMismatch)', () => {
  const good = spec();
  assert.equal(verifyIntent(good, artifact.key.publicKey).version, '2.0.0');
  const replays: [Partial<FirmwareSpec>, RegExp][] = [
    [{ version: '2.0.1' }, /spec\.version/],
    [{ target: 'agent' }, /spec\.target/],
    [{ install: { command: ['/usr/sbin/flash', '--force', '{file}'] } }, /spec\.install\.command/],
    [{ rollback: undefined }, /spec\.rollback\.command/],
    [{ artifact: { ...good.artifact, sha256: 'cd'.repeat(32) } }, /spec\.artifact\.sha256/],
    [{ artifact: { ...good.artifact, size: 1 } }, /spec\.artifact\.size/],
  ];
  for (const [change, field] of replays) {
    assert.throws(() => verifyIntent({ ...good, ...change }, artifact.key.publicKey), { code: 'SignatureScopeMismatch', message: field });
  }
  assert.throws(() => verifyIntent(good, signingKey().publicKey), { code: 'SignatureInvalid' });
  assert.throws(() => verifyIntent(good, signingKey('ecdsa-p256-sha256').publicKey), { code: 'SignatureInvalid', message: /not ed25519/ });
});

test('the documented OpenSSL recipe signs statements the agent accepts (Ed25519 and ECDSA P-256)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-openssl-'));
  try {
    for (const algorithm of ['ed25519', 'ecdsa-p256-sha256'] as const) {
      const key = path.join(dir, `${algorithm}.key`);
      execFileSync('openssl', algorithm === 'ed25519' ? ['genpkey', '-algorithm', 'ed25519', '-out', key] : ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
      const publicKeyPem = execFileSync('openssl', ['pkey', '-in', key, '-pubout']).toString();
      const unsigned = spec();
      const statementFile = path.join(dir, 'statement.json');
      writeFileSync(statementFile, encodeStatement(statementOf(unsigned, unsigned.artifact)));
      const value = (
        algorithm === 'ed25519'
          ? execFileSync('openssl', ['pkeyutl', '-sign', '-rawin', '-inkey', key, '-in', statementFile])
          : execFileSync('openssl', ['dgst', '-sha256', '-sign', key, statementFile])
      ).toString('base64');
      const signed: FirmwareSpec = {
        ...unsigned,
        artifact: { ...unsigned.artifact, signature: { keyRef: { name: 'release' }, algorithm, statement: readFileSync(statementFile).toString('base64'), value } },
      };
      assert.equal(verifyIntent(signed, createPublicKey(publicKeyPem)).target, 'command', algorithm);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sensorlet firmware sign (the CLI) fills in sha256, size and a signature the agent accepts', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-sign-'));
  try {
    const key = path.join(dir, 'release.key');
    writeFileSync(key, artifact.key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const file = path.join(dir, 'modem.bin');
    writeFileSync(file, artifact.body);
    const manifest = path.join(dir, 'firmware.yaml');
    writeFileSync(
      manifest,
      'apiVersion: sensorlet.io/v1alpha1\nkind: Firmware\nmetadata: { name: modem }\nspec:\n  version: "2.0.0"\n  target: command\n  artifact: { url: "http://127.0.0.1/a.bin" }\n  install: { command: ["/usr/sbin/flash", "--image", "{file}"] }\n  rollback: { command: ["/usr/sbin/flash", "--restore"] }\n',
    );
    const cli = path.join(PACKAGE_ROOT, 'dist', 'cmd', 'sensorlet', 'main.js');
    const out = execFileSync(process.execPath, [cli, 'firmware', 'sign', '--key', key, '--key-name', 'release', '--artifact', file, manifest]).toString();
    const signedFile = path.join(dir, 'signed.yaml');
    writeFileSync(signedFile, out);
    // What it prints is a valid manifest, and the agent's check passes with the matching public key.
    execFileSync(process.execPath, [cli, 'validate', signedFile]);
    const signed = (yaml.load(out) as { spec: FirmwareSpec }).spec;
    assert.equal(signed.artifact.sha256, artifact.sha256);
    assert.equal(signed.artifact.size, artifact.size);
    assert.equal(verifyIntent(signed, artifact.key.publicKey).version, '2.0.0');
    const statement = execFileSync(process.execPath, [cli, 'firmware', 'statement', '--artifact', file, manifest]);
    assert.equal(statement.toString('base64'), signed.artifact.signature.statement);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
