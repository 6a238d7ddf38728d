import assert from 'node:assert/strict';
import { copyFileSync, renameSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { standardFixtures, TestPki } from '../../test/support/pki.js';
import { loadCertificate, watchCertificateFiles } from './index.js';
import { UNRESTRICTED_ACCESS } from './secrets.js';

/** These tests load what they wrote themselves: no manifest policy applies. */
const OPEN = { access: UNRESTRICTED_ACCESS };

let pki: TestPki;
let fx: ReturnType<typeof standardFixtures>;
before(() => {
  pki = TestPki.create();
  fx = standardFixtures(pki);
});
after(() => pki.remove());

it('reports one debounced change when certificate and key are replaced by rename, and the reload sees the new certificate', async () => {
  const certFile = pki.file('live.crt');
  const keyFile = pki.file('live.key');
  copyFileSync(fx.ecDevice.certFile, certFile);
  copyFileSync(fx.ecDevice.keyFile, keyFile);
  const spec = { pem: { certFile, keyFile, caFile: pki.ca.certFile } };
  const first = await loadCertificate(spec, OPEN);
  assert.equal(first.identity?.device, 'dev1');

  const changes: string[][] = [];
  const watcher = watchCertificateFiles(spec, (files) => changes.push(files), { debounceMs: 100 });
  try {
    // The way cert-manager and `install` replace files: write aside, then rename over.
    copyFileSync(fx.expiringSoon.certFile, `${certFile}.tmp`);
    copyFileSync(fx.expiringSoon.keyFile, `${keyFile}.tmp`);
    renameSync(`${certFile}.tmp`, certFile);
    renameSync(`${keyFile}.tmp`, keyFile);
    const deadline = Date.now() + 3000;
    while (changes.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(changes.length, 1, JSON.stringify(changes));
    assert.deepEqual([...changes[0]].sort(), [certFile, keyFile].sort());
    const reloaded = await loadCertificate(spec, OPEN);
    assert.equal(reloaded.identity?.device, 'soon');
  } finally {
    watcher.close();
  }
});
