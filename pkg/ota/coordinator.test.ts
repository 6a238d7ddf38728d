import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, sign } from 'node:crypto';
import type { FirmwareSpec } from '../api/resource.js';
import { OtaCoordinator, type DataPath } from './coordinator.js';
import { OtaStateFile, writeFileDurable } from './state.js';
import { verifyArtifact } from './verify.js';
import { ArtifactServer } from './testing/artifact-server.js';
import { signedArtifact, signingKey, signSpec, type SignedArtifact } from './testing/artifacts.js';

const SIZE = 200 * 1024;

/**
 * The device side: install copies the artifact to `installed` and appends to `events`; rollback
 * restores `installed.previous`. Real programs run through argv, as in production.
 */
function device(dir: string) {
  const events = path.join(dir, 'events');
  const install = path.join(dir, 'install.sh');
  const rollback = path.join(dir, 'rollback.sh');
  writeFileSync(install, `#!/bin/sh\nset -e\necho "install $1" >> "${events}"\n[ -f "${dir}/installed" ] && cp "${dir}/installed" "${dir}/installed.previous"\ncp "$1" "${dir}/installed"\nexit \${INSTALL_EXIT:-0}\n`);
  writeFileSync(rollback, `#!/bin/sh\necho rollback >> "${events}"\nif [ -f "${dir}/installed.previous" ]; then cp "${dir}/installed.previous" "${dir}/installed"; else rm -f "${dir}/installed"; fi\n`);
  chmodSync(install, 0o755);
  chmodSync(rollback, 0o755);
  return {
    install,
    rollback,
    events: () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n') : []),
    installed: () => (existsSync(path.join(dir, 'installed')) ? readFileSync(path.join(dir, 'installed')) : undefined),
    log: (line: string) => writeFileSync(events, `${line}\n`, { flag: 'a' }),
  };
}

/** The spec, signed by the artifact's key for exactly what it says (after `change`). */
function specFor(artifact: SignedArtifact, server: ArtifactServer, dev: ReturnType<typeof device>, change: Partial<FirmwareSpec> = {}): FirmwareSpec {
  const spec: FirmwareSpec = {
    version: '2.0.0',
    target: 'command',
    artifact: {
      url: server.url(),
      sha256: artifact.sha256,
      size: artifact.body.length,
      signature: { keyRef: { name: 'release' }, algorithm: artifact.algorithm, statement: '', value: '' },
    },
    install: { command: [dev.install, '{file}'] },
    rollback: { command: [dev.rollback] },
    healthCheck: { timeout: '1s', require: ['sinksConnected', 'sensorsReady'] },
    drain: { timeout: '1s' },
    ...change,
  };
  return signSpec(spec, artifact.key);
}

interface Fixture {
  dir: string;
  server: ArtifactServer;
  artifact: SignedArtifact;
  dev: ReturnType<typeof device>;
  healthy: { value: boolean };
  /** The key the trust store holds now (a test may rotate it). */
  trusted: { key: SignedArtifact['key'] };
  coordinator(onChange?: (record: { phase: string }) => void): OtaCoordinator;
}

async function fixture(run: (f: Fixture) => Promise<void>, algorithm: 'ed25519' | 'ecdsa-p256-sha256' = 'ed25519'): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-co-'));
  const artifact = signedArtifact(SIZE, algorithm);
  const server = await ArtifactServer.start(artifact.body);
  const trusted = { key: artifact.key };
  const dev = device(dir);
  const healthy = { value: true };
  const dataPath: DataPath = {
    async drain() {
      dev.log('drain');
      return { queued: 0 };
    },
    health: () => ({ healthy: healthy.value, problems: healthy.value ? [] : ['Sink/default/s not Connected'] }),
  };
  const coordinator = (onChange?: (record: { phase: string }) => void) =>
    new OtaCoordinator({
      onChange,
      dir: path.join(dir, 'ota'),
      trustedKey: () => trusted.key.publicKey,
      dataPath,
      download: { backoff: { initialMs: 10, maxMs: 20 } },
      healthPollMs: 20,
    });
  try {
    await run({ dir, server, artifact, dev, healthy, trusted, coordinator });
  } finally {
    await server.close();
  }
}

for (const algorithm of ['ed25519', 'ecdsa-p256-sha256'] as const) {
  test(`${algorithm}: download, verify, drain, install, health check → Succeeded; drain happens before install`, async () => {
    await fixture(async ({ server, artifact, dev, coordinator }) => {
      const phases: string[] = [];
      const record = await coordinator((r) => phases.push(r.phase)).run(specFor(artifact, server, dev));
      assert.equal(record.phase, 'Succeeded');
      assert.equal(record.currentVersion, '2.0.0');
      assert.ok(dev.installed()!.equals(artifact.body));
      assert.deepEqual(dev.events().map((line) => line.split(' ')[0]), ['drain', 'install']);
      assert.deepEqual([...new Set(phases)], ['Downloading', 'Verifying', 'Draining', 'Installing', 'Restarting', 'HealthCheck', 'Succeeded']);
      // Done: the same spec does nothing more.
      const again = await coordinator().run(specFor(artifact, server, dev));
      assert.equal(again.phase, 'Succeeded');
      assert.equal(server.log.length, 1);
    }, algorithm);
  });
}

const badArtifacts: { name: string; reason: string; spec: (good: FirmwareSpec, f: Fixture) => FirmwareSpec; corrupt?: boolean }[] = [
  { name: 'a statement signed by another key', reason: 'SignatureInvalid', spec: (good) => signSpec(good, signingKey()) },
  {
    name: 'a signature of other bytes',
    reason: 'SignatureInvalid',
    spec: (good) => ({ ...good, artifact: { ...good.artifact, signature: { ...good.artifact.signature, value: Buffer.alloc(64).toString('base64') } } }),
  },
  {
    name: 'a genuine statement replayed with another install command',
    reason: 'SignatureScopeMismatch',
    spec: (good, f) => ({ ...good, install: { command: [f.dev.rollback, '{file}'] } }),
  },
  { name: 'a genuine statement replayed with another version', reason: 'SignatureScopeMismatch', spec: (good) => ({ ...good, version: '2.0.1' }) },
  {
    name: 'a statement that is not canonical JSON',
    reason: 'StatementInvalid',
    spec: (good, f) => {
      const pretty = Buffer.from(JSON.stringify(JSON.parse(Buffer.from(good.artifact.signature.statement, 'base64').toString()), null, 1));
      const value = sign(null, pretty, f.artifact.key.privateKey).toString('base64');
      return { ...good, artifact: { ...good.artifact, signature: { ...good.artifact.signature, statement: pretty.toString('base64'), value } } };
    },
  },
  { name: 'a signed wrong SHA-256', reason: 'ChecksumMismatch', spec: (good, f) => signSpec({ ...good, artifact: { ...good.artifact, sha256: 'ab'.repeat(32) } }, f.artifact.key) },
  { name: 'a signed wrong size', reason: 'SizeMismatch', spec: (good, f) => signSpec({ ...good, artifact: { ...good.artifact, size: SIZE - 1 } }, f.artifact.key) },
  { name: 'corrupted bytes on the wire', reason: 'ChecksumMismatch', spec: (good) => good, corrupt: true },
];

for (const bad of badArtifacts) {
  test(`${bad.name} → Failed (${bad.reason}), nothing installed, nothing drained`, async () => {
    await fixture(async (f) => {
      const spec = bad.spec(specFor(f.artifact, f.server, f.dev), f);
      f.server.faults.corrupt = bad.corrupt;
      const record = await f.coordinator().run(spec);
      assert.equal(record.phase, 'Failed');
      assert.equal(record.lastError?.reason, bad.reason);
      assert.equal(f.dev.installed(), undefined);
      assert.deepEqual(f.dev.events(), []);
      assert.equal(record.currentVersion, undefined);
      // Terminal for this artifact: not retried by another run.
      assert.equal((await f.coordinator().run(spec)).phase, 'Failed');
    });
  });
}

test('an install or rollback program the operator does not allow (any more) never runs: Failed before Installing', async () => {
  await fixture(async ({ server, artifact, dev, dir }) => {
    const refused: string[] = [];
    const co = new OtaCoordinator({
      dir: path.join(dir, 'ota'),
      trustedKey: () => artifact.key.publicKey,
      commandRefusal: (argv, field) => (argv[0] === dev.rollback ? (refused.push(field), `${field}: not allowed`) : undefined),
      dataPath: { drain: async () => ({ queued: 0 }), health: () => ({ healthy: true, problems: [] }) },
      download: { backoff: { initialMs: 10, maxMs: 20 } },
    });
    const record = await co.run(specFor(artifact, server, dev));
    assert.equal(record.phase, 'Failed');
    assert.equal(record.lastError?.reason, 'InstallCommandNotAllowed');
    assert.deepEqual(refused, ['spec.rollback.command']);
    assert.deepEqual(dev.events(), [], 'neither program ran');
  });
});

test('a health check that fails after install → rollback runs → RolledBack, the previous version stays current', async () => {
  await fixture(async ({ dir, server, artifact, dev, healthy, coordinator }) => {
    const previous = randomBytes(10);
    writeFileSync(path.join(dir, 'installed'), previous);
    const seed = new OtaStateFile(path.join(dir, 'ota'));
    seed.patch({ currentVersion: '1.0.0' });
    healthy.value = false;
    const record = await coordinator().run(specFor(artifact, server, dev));
    assert.equal(record.phase, 'RolledBack');
    assert.equal(record.lastError?.reason, 'HealthCheckFailed');
    assert.match(record.lastError!.message, /not Connected/);
    assert.equal(record.currentVersion, '1.0.0');
    assert.deepEqual(dev.events().map((line) => line.split(' ')[0]), ['drain', 'install', 'rollback']);
    assert.ok(dev.installed()!.equals(previous), 'the previous firmware is back');
  });
});

test('an install command that fails → rollback → RolledBack (InstallFailed)', async () => {
  await fixture(async ({ server, artifact, dev, coordinator }) => {
    const spec = specFor(artifact, server, dev, { install: { command: ['/bin/sh', '-c', 'echo flash error >&2; exit 3', 'sh', '{file}'] } });
    const record = await coordinator().run(spec);
    assert.equal(record.phase, 'RolledBack');
    assert.equal(record.lastError?.reason, 'InstallFailed');
    // What the program printed is counted, never quoted (it may print what it read).
    assert.match(record.lastError!.message, /exited with 3 \(output: 11 bytes\)/);
    assert.doesNotMatch(record.lastError!.message, /flash error/);
  });
});

test('no shell: {file} is one argv element, metacharacters are not interpreted', async () => {
  await fixture(async ({ dir, server, artifact, dev, coordinator }) => {
    const marker = path.join(dir, 'pwned');
    const spec = specFor(artifact, server, dev, { install: { command: [dev.install, '{file}', `; touch ${marker}`] } });
    assert.equal((await coordinator().run(spec)).phase, 'Succeeded');
    assert.equal(existsSync(marker), false);
  });
});

test('crash recovery: Installing on start → rolled back (never half-installed); Draining and Verifying run again', async () => {
  await fixture(async ({ dir, server, artifact, dev, coordinator }) => {
    const spec = specFor(artifact, server, dev);
    const stateDir = path.join(dir, 'ota');
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(path.join(stateDir, 'artifact'), artifact.body); // the verified file
    writeFileDurable(path.join(stateDir, 'state.json'), JSON.stringify({ version: 1, phase: 'Installing', targetVersion: '2.0.0', targetSha256: artifact.sha256, target: 'command', spec }));
    const record = await coordinator().run(spec);
    assert.equal(record.phase, 'RolledBack');
    assert.equal(record.lastError?.reason, 'InstallInterrupted');
    assert.deepEqual(dev.events(), ['rollback']);
  });
  await fixture(async ({ dir, server, artifact, dev, coordinator }) => {
    const spec = specFor(artifact, server, dev);
    const stateDir = path.join(dir, 'ota');
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(path.join(stateDir, 'artifact'), artifact.body);
    writeFileDurable(path.join(stateDir, 'state.json'), JSON.stringify({ version: 1, phase: 'Draining', targetVersion: '2.0.0', targetSha256: artifact.sha256, target: 'command', spec }));
    assert.equal((await coordinator().run(spec)).phase, 'Succeeded');
    assert.equal(server.log.length, 0, 'the verified artifact on disk was used');
  });
});

test('crash recovery: a crash-looping agent in HealthCheck is rolled back after MAX_HEALTH_BOOTS starts', async () => {
  await fixture(async ({ dir, server, artifact, dev, coordinator }) => {
    const spec = specFor(artifact, server, dev);
    writeFileDurable(path.join(dir, 'ota', 'state.json'), JSON.stringify({ version: 1, phase: 'HealthCheck', healthBoots: 3, targetVersion: '2.0.0', targetSha256: artifact.sha256, target: 'command', spec }));
    const record = await coordinator().run(spec);
    assert.equal(record.phase, 'RolledBack');
    assert.match(record.lastError!.message, /restarted 3 times/);
  });
});

test('a new version while downloading abandons the old artifact; a new version after Succeeded starts again', async () => {
  await fixture(async ({ server, artifact, dev, trusted, coordinator }) => {
    server.faults.bytesPerSecond = 100 * 1024;
    const co = coordinator();
    const first = co.run(specFor(artifact, server, dev));
    await new Promise((resolve) => setTimeout(resolve, 300));
    co.abortDownload();
    assert.equal((await first).phase, 'Downloading');
    server.faults.bytesPerSecond = undefined;
    const next = signedArtifact(SIZE);
    server.setBody(next.body);
    trusted.key = next.key;
    const record = await co.run(specFor(next, server, dev, { version: '3.0.0' }));
    assert.equal(record.phase, 'Succeeded');
    assert.equal(record.currentVersion, '3.0.0');
    assert.ok(dev.installed()!.equals(next.body));
  });
});

test('verifyArtifact: the size, then the SHA-256 the signed statement names', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ota-v-'));
  const artifact = signedArtifact(1024);
  const file = path.join(dir, 'artifact');
  writeFileSync(file, artifact.body);
  await verifyArtifact(file, { size: 1024, sha256: artifact.sha256 });
  await assert.rejects(verifyArtifact(file, { size: 1023, sha256: artifact.sha256 }), { code: 'SizeMismatch' });
  await assert.rejects(verifyArtifact(file, { size: 1024, sha256: 'ab'.repeat(32) }), { code: 'ChecksumMismatch' });
});
