import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OtaStateFile, type OtaRecord } from './state.js';
import { conditionsOfRecord, progressRatio } from '../controller/reconcilers/firmware.js';
import type { FirmwareSpec } from '../api/resource.js';

test('a stalled download is described in status, never persisted, and forgotten at the next phase', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-state-'));
  try {
    mkdirSync(dir, { recursive: true });
    const state = new OtaStateFile(dir);
    state.transition('Downloading', { targetVersion: '2.0.0', progress: { bytes: 1024, total: 4096 } });
    const stalled = { since: '2026-01-01T00:00:00.000Z', attempts: 3, message: 'connect ECONNREFUSED 127.0.0.1:1' };
    (state.record as OtaRecord).stalled = stalled;
    state.patch({ progress: { bytes: 1024, total: 4096 } });
    assert.deepEqual(state.record.stalled, stalled, 'kept in memory');
    assert.equal(JSON.parse(readFileSync(state.file, 'utf8')).stalled, undefined, 'not on disk');

    const spec = { version: '2.0.0' } as FirmwareSpec;
    const [ready] = conditionsOfRecord(state.record, spec);
    assert.equal(ready.reason, 'DownloadStalled');
    assert.equal(ready.message, 'download of 2.0.0 stalled at 25% (1024 of 4096 bytes) since 2026-01-01T00:00:00.000Z: connect ECONNREFUSED 127.0.0.1:1; retrying (3 attempt(s) without progress)');

    state.transition('Verifying');
    assert.equal(state.record.stalled, undefined);
    assert.equal(conditionsOfRecord(state.record, spec)[0].reason, 'Verifying');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('download progress as a ratio', () => {
  assert.equal(progressRatio(undefined), 0);
  assert.equal(progressRatio({ bytes: 0, total: 0 }), 0);
  assert.equal(progressRatio({ bytes: 512, total: 2048 }), 0.25);
  assert.equal(progressRatio({ bytes: 4096, total: 2048 }), 1);
});
