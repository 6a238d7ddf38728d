import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { directoryTrustStore, noTrustStore, secretTrustStore } from './trust.js';
import { signingKey, trustKey } from './testing/artifacts.js';

function folders() {
  const root = mkdtempSync(path.join(tmpdir(), 'ota-trust-'));
  const trust = path.join(root, 'trust');
  const state = path.join(root, 'state');
  mkdirSync(trust);
  mkdirSync(state);
  return { root, trust, state, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('folder: a key by name; names with a path, unknown names, links out of the folder, non-keys are refused with their reason', () => {
  const f = folders();
  try {
    const key = signingKey();
    trustKey(f.trust, 'release-2026', key);
    const store = directoryTrustStore(f.trust, f.state);
    assert.ok(store.key('release-2026').equals(key.publicKey));
    for (const name of ['../state/x', '/etc/passwd', 'a/b', '..', '.hidden', '']) assert.throws(() => store.key(name), { code: 'KeyRefNotAllowed' }, name);
    assert.throws(() => store.key('missing'), { code: 'TrustKeyNotFound', message: /missing\.pem/ });
    // A partial download in the state dir, linked into the trust folder: never a key.
    writeFileSync(path.join(f.state, 'artifact'), signingKey().publicKeyPem);
    symlinkSync(path.join(f.state, 'artifact'), path.join(f.trust, 'partial.pem'));
    assert.throws(() => store.key('partial'), { code: 'KeyRefNotAllowed', message: /out of the trust store/ });
    mkdirSync(path.join(f.trust, 'dir.pem'));
    assert.throws(() => store.key('dir'), { code: 'KeyRefNotAllowed', message: /not a regular file/ });
    writeFileSync(path.join(f.trust, 'private.pem'), key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(path.join(f.trust, 'big.pem'), Buffer.alloc(128 * 1024, 0x41));
    // Not a public key (a private key is refused, and its bytes are never quoted).
    assert.throws(() => store.key('private'), (error: Error & { code?: string }) => error.code === 'PublicKeyUnavailable' && !error.message.includes('PRIVATE'));
    assert.throws(() => store.key('big'), { code: 'PublicKeyUnavailable', message: /131072 bytes/ });
  } finally {
    f.done();
  }
});

test('folder: a trust folder that overlaps the state dir is refused at start', () => {
  const f = folders();
  try {
    assert.throws(() => directoryTrustStore(f.state, f.state), /overlaps the state dir/);
    mkdirSync(path.join(f.state, 'keys'));
    assert.throws(() => directoryTrustStore(path.join(f.state, 'keys'), f.state), /overlaps/);
    assert.throws(() => directoryTrustStore(f.root, f.state), /overlaps/);
    assert.throws(() => directoryTrustStore(path.join(f.root, 'absent'), f.state), /--firmware-trust-dir .*absent: no such folder/);
  } finally {
    f.done();
  }
});

test('Secret: keys are its <name>.pem entries; none configured names the flag', () => {
  const key = signingKey('ecdsa-p256-sha256');
  let data: Record<string, Buffer> | undefined;
  const store = secretTrustStore('sensorlet-system', 'trust', () => data);
  assert.throws(() => store.key('release'), { code: 'TrustKeyNotFound', message: /does not exist/ });
  data = { 'release.pem': Buffer.from(key.publicKeyPem) };
  assert.ok(store.key('release').equals(key.publicKey));
  assert.throws(() => store.key('other'), { code: 'TrustKeyNotFound' });
  assert.throws(() => store.key('../release'), { code: 'KeyRefNotAllowed' });
  assert.throws(() => noTrustStore(false).key('release'), { code: 'TrustStoreNotConfigured', message: /--firmware-trust-dir/ });
  assert.throws(() => noTrustStore(true).key('release'), { code: 'TrustStoreNotConfigured', message: /--firmware-trust-secret/ });
});
