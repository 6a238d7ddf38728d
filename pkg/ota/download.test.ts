import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { downloadArtifact, type DownloadOptions } from './download.js';
import { OtaError } from './errors.js';
import { ArtifactServer } from './testing/artifact-server.js';

const SIZE = 512 * 1024;
const fast = { backoff: { initialMs: 10, maxMs: 50 }, idleTimeoutMs: 5000 };

async function withServer(body: Buffer, run: (server: ArtifactServer, file: string) => Promise<void>): Promise<void> {
  const server = await ArtifactServer.start(body);
  try {
    await run(server, path.join(mkdtempSync(path.join(tmpdir(), 'ota-dl-')), 'artifact'));
  } finally {
    await server.close();
  }
}

function options(server: ArtifactServer, file: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return { url: server.url(), file, size: SIZE, ...fast, ...extra };
}

test('a download completes in one request and fetches each byte once', async () => {
  const body = randomBytes(SIZE);
  await withServer(body, async (server, file) => {
    const result = await downloadArtifact(options(server, file));
    assert.deepEqual(result, { bytes: SIZE, requests: 1, restarts: 0 });
    assert.ok(readFileSync(file).equals(body));
    assert.equal(server.bytesServed(), SIZE);
  });
});

for (const cuts of [[0.3], [0.6], [0.9], [0.3, 0.6, 0.9]]) {
  test(`connection cut at ${cuts.map((cut) => `${cut * 100}%`).join(', ')}: resumes with Range + If-Range and fetches only the missing bytes`, async () => {
    const body = randomBytes(SIZE);
    await withServer(body, async (server, file) => {
      server.faults.cutAt = [...cuts];
      const progress: number[] = [];
      const result = await downloadArtifact(options(server, file, { onProgress: (bytes) => progress.push(bytes) }));
      assert.ok(readFileSync(file).equals(body));
      assert.equal(result.requests, cuts.length + 1);
      assert.equal(server.log.length, cuts.length + 1);
      // Each resume starts exactly where the previous response was cut, validated by the ETag.
      cuts.forEach((cut, index) => {
        const resumed = server.log[index + 1];
        assert.equal(resumed.status, 206);
        assert.equal(resumed.range, `bytes=${Math.floor(SIZE * cut)}-`);
        assert.match(resumed.ifRange ?? '', /^"[0-9a-f]{16}"$/);
      });
      assert.equal(server.bytesServed(), SIZE, 'no byte fetched twice');
      assert.equal(progress.at(-1), SIZE);
    });
  });
}

test('a restarted agent resumes the bytes already on disk (new process, same file)', async () => {
  const body = randomBytes(SIZE);
  await withServer(body, async (server, file) => {
    server.faults.cutAt = [0.6];
    // The first "process" gives up after the cut (one attempt), as if it had been killed.
    await assert.rejects(downloadArtifact(options(server, file, { maxAttempts: 1 })), (error: OtaError) => error.code === 'DownloadFailed');
    const kept = readFileSync(file).length;
    assert.equal(kept, Math.floor(SIZE * 0.6));
    const result = await downloadArtifact(options(server, file));
    assert.equal(result.requests, 1);
    assert.equal(server.log[1].range, `bytes=${kept}-`);
    assert.equal(server.log[1].bytesSent, SIZE - kept);
    assert.equal(server.bytesServed(), SIZE);
    assert.ok(readFileSync(file).equals(body));
  });
});

test('a server that ignores Range answers 200: the download restarts cleanly from zero', async () => {
  const body = randomBytes(SIZE);
  await withServer(body, async (server, file) => {
    server.faults.cutAt = [0.3];
    server.faults.ignoreRange = true;
    const result = await downloadArtifact(options(server, file));
    assert.equal(result.restarts, 1);
    assert.equal(server.log[1].range, `bytes=${Math.floor(SIZE * 0.3)}-`);
    assert.equal(server.log[1].status, 200);
    assert.ok(readFileSync(file).equals(body), 'no splice of the old prefix with the full body');
  });
});

test('the artifact changed between attempts (If-Range fails): the new one is taken whole, never spliced', async () => {
  const first = randomBytes(SIZE);
  const second = randomBytes(SIZE);
  await withServer(first, async (server, file) => {
    server.faults.cutAt = [0.5];
    await assert.rejects(downloadArtifact(options(server, file, { maxAttempts: 1 })));
    server.setBody(second);
    const result = await downloadArtifact(options(server, file));
    assert.equal(server.log[1].status, 200);
    assert.equal(result.restarts, 1);
    assert.ok(readFileSync(file).equals(second));
  });
});

test('without a validator a partial file is never resumed blindly', async () => {
  const body = randomBytes(SIZE);
  await withServer(body, async (server, file) => {
    server.faults.validators = 'none';
    server.faults.cutAt = [0.5];
    await downloadArtifact(options(server, file));
    assert.equal(server.log[1].range, undefined);
    assert.ok(readFileSync(file).equals(body));
  });
});

test('slow link: completes, progress is monotonic; a bandwidth limit paces the client', async () => {
  const size = 64 * 1024;
  const body = randomBytes(size);
  await withServer(body, async (server, file) => {
    server.faults.bytesPerSecond = 128 * 1024; // ~0.5 s
    const progress: number[] = [];
    await downloadArtifact({ ...options(server, file), size, onProgress: (bytes) => progress.push(bytes) });
    assert.ok(readFileSync(file).equals(body));
    assert.ok(progress.length > 5);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1]);
  });
  await withServer(body, async (server, file) => {
    const began = Date.now();
    await downloadArtifact({ ...options(server, file), size, bandwidthLimit: 64 * 1024 });
    const elapsed = Date.now() - began;
    assert.ok(elapsed >= 900, `64 KiB at 64 KiB/s took ${elapsed} ms`);
    assert.ok(readFileSync(file).equals(body));
  });
});

test('a stalled link is abandoned after the idle timeout and resumed', async () => {
  const size = 64 * 1024;
  const body = randomBytes(size);
  await withServer(body, async (server, file) => {
    // The first response goes silent after 16 KiB without closing; the client must notice.
    server.faults.stallOnceAfterBytes = 16 * 1024;
    await downloadArtifact({ ...options(server, file), size, idleTimeoutMs: 300, maxAttempts: 2 });
    assert.equal(server.log.length, 2);
    assert.ok(server.log[0].bytesSent >= 16 * 1024 && server.log[0].bytesSent < size);
    assert.equal(server.log[1].status, 206, 'resumed with Range');
    assert.equal(server.log[1].start, server.log[0].bytesSent, 'from where the stall left it');
    assert.ok(readFileSync(file).equals(body));
  });
});

test('HTTP 404 fails at once with DownloadFailed; 503 is retried up to the budget', async () => {
  await withServer(randomBytes(16), async (server, file) => {
    server.faults.status = 404;
    await assert.rejects(downloadArtifact(options(server, file)), (error: OtaError) => error.code === 'DownloadFailed' && /404/.test(error.message));
    assert.equal(server.log.length, 1);
    server.faults.status = 503;
    await assert.rejects(downloadArtifact(options(server, file, { maxAttempts: 3 })), (error: OtaError) => error.code === 'DownloadFailed');
    assert.equal(server.log.length, 4);
  });
});

test('a server whose artifact has another size fails with SizeMismatch and keeps nothing', async () => {
  await withServer(randomBytes(SIZE + 10), async (server, file) => {
    await assert.rejects(downloadArtifact(options(server, file)), (error: OtaError) => error.code === 'SizeMismatch');
  });
});

test('retries leave no abort listeners behind on the signal (one per attempt, removed when it ends)', async () => {
  // The coordinator passes one signal for the whole download; a listener per attempt that stays
  // would pile up on a flaky link (and trip MaxListenersExceededWarning after ten retries).
  const controller = new AbortController();
  await withServer(randomBytes(16), async (server, file) => {
    server.faults.status = 503;
    await assert.rejects(downloadArtifact(options(server, file, { maxAttempts: 12, signal: controller.signal })), (error: OtaError) => error.code === 'DownloadFailed');
    assert.equal(server.log.length, 12);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });
  const body = randomBytes(SIZE);
  await withServer(body, async (server, file) => {
    server.faults.cutAt = [0.3, 0.6, 0.9];
    await downloadArtifact(options(server, file, { signal: controller.signal }));
    assert.ok(readFileSync(file).equals(body));
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });
});

test('aborting the signal stops a download in progress with Aborted and keeps the bytes for a resume', async () => {
  const size = 256 * 1024;
  const body = randomBytes(size);
  await withServer(body, async (server, file) => {
    server.faults.bytesPerSecond = 128 * 1024; // ~2 s
    const controller = new AbortController();
    const download = downloadArtifact({
      ...options(server, file),
      size,
      signal: controller.signal,
      onProgress: (bytes) => bytes >= 32 * 1024 && controller.abort(),
    });
    await assert.rejects(download, (error: OtaError) => error.code === 'Aborted');
    const kept = readFileSync(file).length;
    assert.ok(kept >= 32 * 1024 && kept < size, `kept ${kept} bytes`);
    assert.equal(server.log.length, 1, 'no retry after the abort');
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });
});
