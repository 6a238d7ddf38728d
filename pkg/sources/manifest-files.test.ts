import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listManifestFiles, readManifestFile } from './manifest-files.js';

function withFolder(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-files-'));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'a ConfigMap volume lists each file once, under its visible name; a dangling link is absent',
  withFolder(async (dir) => {
    mkdirSync(path.join(dir, '..2026_12_01_03_00_00.1'));
    writeFileSync(path.join(dir, '..2026_12_01_03_00_00.1', 'a.yaml'), 'kind: Sensor\n');
    symlinkSync('..2026_12_01_03_00_00.1', path.join(dir, '..data'));
    symlinkSync('..data/a.yaml', path.join(dir, 'a.yaml'));
    symlinkSync('..data/gone.yaml', path.join(dir, 'gone.yaml'));
    const listing = await listManifestFiles(dir);
    assert.deepEqual(listing.files.map((file) => path.relative(dir, file.file)), ['a.yaml']);
    assert.equal(path.basename(path.dirname(listing.files[0].real)), '..2026_12_01_03_00_00.1');
    assert.deepEqual(listing.problems, []);
  }),
);

test(
  'a file over the limit is refused from its size alone, and a file swapped for a FIFO after listing is never waited on',
  withFolder(async (dir) => {
    writeFileSync(path.join(dir, 'big.yaml'), 'x'.repeat(2000));
    writeFileSync(path.join(dir, 'swapped.yaml'), 'kind: Sensor\n');
    const listing = await listManifestFiles(dir);
    const big = listing.files.find((file) => file.file.endsWith('big.yaml'))!;
    const result = await readManifestFile(big, 1000);
    assert.ok('problem' in result && result.problem.code === 'ManifestTooLarge', JSON.stringify(result));
    assert.deepEqual(await readManifestFile(big, 2000), { text: 'x'.repeat(2000) });

    const swapped = listing.files.find((file) => file.file.endsWith('swapped.yaml'))!;
    unlinkSync(swapped.file);
    spawnSync('mkfifo', [swapped.file]);
    const started = Date.now();
    const fifo = await readManifestFile(swapped);
    assert.ok('problem' in fifo && fifo.problem.code === 'NotARegularFile', JSON.stringify(fifo));
    assert.ok(Date.now() - started < 1000);
  }),
);
