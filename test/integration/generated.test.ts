// Drift check (DESIGN.md, Layout): everything `npm run generate` writes from schemas/ — the
// TypeScript types, the CRDs in manifests/crds and helm/sensorlet/crds, and the CRD kustomization —
// must equal the committed files byte for byte. On failure: `npm run generate` and commit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { renderGenerated } from '../../pkg/api/generated-files.js';

test('generated files equal the committed ones (run `npm run generate` after changing schemas/)', async () => {
  const files = await renderGenerated();
  assert.ok(Object.keys(files).length >= 4);
  for (const [relative, content] of Object.entries(files)) {
    const target = path.join(PACKAGE_ROOT, relative);
    assert.ok(existsSync(target), `${relative} is missing: run npm run generate`);
    const committed = readFileSync(target, 'utf8');
    assert.ok(committed === content, `${relative} differs from the generator output: run npm run generate`);
  }
});

test('no stale CRD files: every YAML in the CRD folders is one the generator writes', async () => {
  const files = await renderGenerated();
  for (const dir of ['manifests/crds', 'helm/sensorlet/crds']) {
    for (const name of readdirSync(path.join(PACKAGE_ROOT, dir)).filter((entry) => /\.ya?ml$/.test(entry))) {
      assert.ok(`${dir}/${name}` in files, `${dir}/${name} is not generated (left over from a removed kind?)`);
    }
  }
});
