// The manifests folder as users really have it, through the real CLI (`run` and `validate`): a
// Kubernetes ConfigMap volume and its atomic `..data` swap, symbolic links added while running,
// and hostile entries (link loops, FIFOs, sockets, devices, links out of the folder, a 50 MB file,
// files the agent may not read). Throughout, /healthz answers within 100 ms, a healthy Sensor keeps
// producing, and SIGTERM exits 0 promptly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, AGENT_NODE_FLAGS, CLI } from '../support/agent.js';
import { writeConfigMapVolume } from '../support/configmap-volume.js';
import { waitFor } from '../support/ports.js';

const NOBODY = { uid: 65534, gid: 65534 };

/**
 * How to run the agent so that file modes bind it. Root ignores them, so: as nobody when nobody can
 * read the CLI (the checkout may sit under a private home), else as root without the two
 * capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). Both are kernel checks.
 */
function unprivileged(): { user?: { uid: number; gid: number }; wrapper?: string[]; how: string } {
  const probe = spawnSync(process.execPath, ['-e', `require('node:fs').accessSync(${JSON.stringify(CLI)}, 4)`], { ...NOBODY, timeout: 10_000 });
  if (probe.status === 0) return { user: NOBODY, how: 'as nobody (uid 65534)' };
  const drop = '-dac_override,-dac_read_search';
  return { wrapper: ['setpriv', `--bounding-set=${drop}`, `--inh-caps=${drop}`], how: 'as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH' };
}

function sensor(name: string, interval = '100ms'): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${name} }
spec:
  driver: { simulated: { waveform: counter } }
  interval: ${interval}
`;
}

/** A counter Sensor every 100 ms and a stdout Sink: its readings are the agent's stdout lines. */
const STEADY = `${sensor('steady')}---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: {}
  stdout: {}
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function steadySeqs(agent: AgentProcess): number[] {
  return agent.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { sensor: string; seq: number })
    .filter((reading) => reading.sensor === 'steady')
    .map((reading) => reading.seq);
}

async function sensorSet(agent: AgentProcess): Promise<string> {
  return (await agent.resources())
    .filter((item) => item.kind === 'Sensor')
    .map((item) => `${item.metadata.name}@${item.metadata.generation}`)
    .sort()
    .join(',');
}

interface ListedError {
  origin: { file?: string };
  errors: { message: string; reason: string }[];
}

async function fileErrors(agent: AgentProcess): Promise<Map<string, ListedError['errors'][number]>> {
  const body = (await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).json()) as { errors: ListedError[] };
  return new Map(body.errors.map((error) => [path.basename(error.origin.file ?? ''), error.errors[0]]));
}

/** Polls /healthz every 50 ms; `stop()` returns the slowest answer and every failure. */
function probeHealth(agent: AgentProcess) {
  let running = true;
  let slowestMs = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        const response = await fetch(`http://${agent.adminAddr}/healthz`, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        if (!response.ok) failures.push(`HTTP ${response.status}`);
      } catch (error) {
        failures.push(String(error));
      }
      slowestMs = Math.max(slowestMs, performance.now() - started);
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { slowestMs, failures };
    },
  };
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) / 1024;
}

/** A file of `mib` MiB that would parse as YAML (comments), written in 1 MiB steps. */
function writeLargeFile(file: string, mib: number): void {
  const line = `# ${'x'.repeat(1021)}\n`;
  const block = line.repeat(1024);
  const fd = openSync(file, 'w');
  for (let written = 0; written < mib; written++) writeSync(fd, block);
  closeSync(fd);
}

function validate(paths: string[], runAs: { user?: { uid: number; gid: number }; wrapper?: string[] } = {}) {
  const [command, ...args] = [...(runAs.wrapper ?? []), process.execPath, ...AGENT_NODE_FLAGS, CLI, 'validate', ...paths];
  return spawnSync(command, args, { encoding: 'utf8', timeout: 30_000, ...runAs.user });
}

test('a ConfigMap volume loads at start-up; its atomic ..data swap applies as one change, and survives a restart', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-configmap-'));
  const volume = path.join(root, 'manifests');
  const stateDir = path.join(root, 'state');
  await writeConfigMapVolume(volume, { 'steady.yaml': STEADY, 'changes.yaml': sensor('changes', '200ms'), 'removed.yaml': sensor('removed') });
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: volume, stateDir });
    const running = agent;
    for (const name of ['steady', 'changes', 'removed']) await running.waitForCondition('Sensor', name, 'Ready', 'True');
    const before = 'changes@1,removed@1,steady@1';
    assert.equal(await sensorSet(running), before);
    const steadySince = (await running.condition('Sensor', 'steady', 'Ready'))!.lastTransitionTime;
    const changeLogsBefore = running.stderr.split('\n').filter((line) => line.includes('manifests changed')).length;

    // Every state the API shows while the kubelet updates the volume, step by step.
    const seen: string[] = [before];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const now = await sensorSet(running);
        if (now !== seen[seen.length - 1]) seen.push(now);
        await sleep(5);
      }
    })();
    await writeConfigMapVolume(volume, { 'steady.yaml': STEADY, 'changes.yaml': sensor('changes', '300ms'), 'added.yaml': sensor('added') }, { stepDelayMs: 150 });
    const after = 'added@1,changes@2,steady@1';
    await waitFor(async () => (await sensorSet(running)) === after, { timeoutMs: 5000, what: 'the update applied' });
    await sleep(300);
    polling = false;
    await poller;
    assert.deepEqual(seen, [before, after], 'the API never showed a half-applied update');
    const changeLogs = running.stderr.split('\n').filter((line) => line.includes('manifests changed')).slice(changeLogsBefore);
    assert.equal(changeLogs.length, 1, `one change: ${changeLogs.join('\n')}`);
    for (const file of ['added.yaml', 'changes.yaml', 'removed.yaml']) assert.ok(changeLogs[0].includes(path.join(volume, file)), `${file} in ${changeLogs[0]}`);
    assert.ok(!changeLogs[0].includes('steady.yaml'), 'an unchanged file is not a change');
    // The unchanged Sensor never stopped: same Ready transition, and no seq went missing.
    assert.equal((await running.condition('Sensor', 'steady', 'Ready'))!.lastTransitionTime, steadySince);
    steadySeqs(running).forEach((seq, index) => assert.equal(seq, index + 1));
    assert.equal(readdirSync(volume).filter((name) => name.startsWith('..2')).length, 1, 'the old revision was removed');
    assert.equal(await running.stop(), 0);

    agent = await AgentProcess.start({ manifests: volume, stateDir });
    await agent.waitForCondition('Sensor', 'added', 'Ready', 'True');
    assert.equal(await sensorSet(agent), after, 'a restart loads the same set');
    const checked = validate([volume]);
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stderr, /^4 resource\(s\) valid/m, 'validate reads the files through the ..data links');
  } finally {
    await agent?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

test('back-to-back ConfigMap updates never show a mix of two revisions', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-configmap-burst-'));
  const volume = path.join(root, 'manifests');
  const FILES = 20;
  // Every file changes in every revision: a scan that read some files before a swap and some after
  // would show Sensors of two revisions at once.
  const revision = (number: number) =>
    Object.fromEntries(
      Array.from({ length: FILES }, (_, index) => [
        `s${index}.yaml`,
        `apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: { name: s${index}, labels: { revision: "${number}" } }\nspec:\n  driver: { simulated: {} }\n  interval: 1s\n`,
      ]),
    );
  await writeConfigMapVolume(volume, revision(0));
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: volume });
    const running = agent;
    const revisionsShown = async () => new Set((await running.resources()).map((item) => item.metadata.labels?.revision));
    await waitFor(async () => (await running.resources()).length === FILES, { what: 'revision 0 loaded' });
    const changeLogsBefore = running.stderr.split('\n').filter((line) => line.includes('manifests changed')).length;
    let polling = true;
    const mixes: string[] = [];
    const poller = (async () => {
      while (polling) {
        const shown = await revisionsShown();
        if (shown.size !== 1) mixes.push([...shown].join('+'));
        await sleep(2);
      }
    })();
    for (let number = 1; number <= 40; number++) {
      await writeConfigMapVolume(volume, revision(number));
      await sleep(number % 4 === 0 ? 80 : 15);
    }
    await waitFor(async () => {
      const shown = await revisionsShown();
      return shown.size === 1 && shown.has('40');
    }, { timeoutMs: 5000, what: 'the last revision applied' });
    polling = false;
    await poller;
    assert.deepEqual(mixes, [], 'no state mixed two revisions: ' + running.stderr.split('\n').filter((line) => line.includes('manifests changed')).map((line) => JSON.parse(line).files.length).join(' '));
    const changeLogs = running.stderr.split('\n').filter((line) => line.includes('manifests changed')).slice(changeLogsBefore);
    assert.ok(changeLogs.length >= 1);
    for (const line of changeLogs) assert.equal((JSON.parse(line) as { files: string[] }).files.length, FILES, line);
    assert.equal(await running.stop(), 0);
  } finally {
    await agent?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

test('links to files and folders added while running load, follow changes, and still load after a restart', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-links-'));
  const dir = path.join(root, 'manifests');
  const stateDir = path.join(root, 'state');
  mkdirSync(path.join(dir, '.store', 'more'), { recursive: true });
  writeFileSync(path.join(dir, 'steady.yaml'), STEADY);
  writeFileSync(path.join(dir, '.store', 'linked.yaml'), sensor('linked'));
  writeFileSync(path.join(dir, '.store', 'more', 'deep.yaml'), sensor('deep'));
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: dir, stateDir });
    await agent.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    symlinkSync('.store/linked.yaml', path.join(dir, 'linked.yaml'));
    symlinkSync('.store/more', path.join(dir, 'more'));
    await agent.waitForCondition('Sensor', 'linked', 'Ready', 'True', undefined, 5000);
    await agent.waitForCondition('Sensor', 'deep', 'Ready', 'True', undefined, 5000);
    // A change to the file behind a link, in a folder only reached through a link, is seen.
    writeFileSync(path.join(dir, '.store', 'more', 'deep.yaml'), sensor('deep', '300ms'));
    const running = agent;
    await waitFor(async () => (await running.resource('Sensor', 'deep'))?.metadata.generation === 2, { timeoutMs: 5000, what: 'the linked file change applied' });
    assert.equal(await agent.stop(), 0);

    agent = await AgentProcess.start({ manifests: dir, stateDir });
    await agent.waitForCondition('Sensor', 'linked', 'Ready', 'True');
    assert.equal(await sensorSet(agent), 'deep@2,linked@1,steady@1', 'the links load at start-up as they did at runtime');
    const checked = validate([dir]);
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stderr, /^4 resource\(s\) valid/m);
  } finally {
    await agent?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a manifests path that is a link swapped to another folder (an atomic deploy) applies the new folder as one change', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-release-'));
  mkdirSync(path.join(root, 'releases', 'v1'), { recursive: true });
  mkdirSync(path.join(root, 'releases', 'v2'), { recursive: true });
  for (const release of ['v1', 'v2']) writeFileSync(path.join(root, 'releases', release, 'steady.yaml'), STEADY);
  writeFileSync(path.join(root, 'releases', 'v1', 'old.yaml'), sensor('old'));
  writeFileSync(path.join(root, 'releases', 'v2', 'new.yaml'), sensor('new'));
  const current = path.join(root, 'current');
  symlinkSync('releases/v1', current);
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: current });
    const running = agent;
    await running.waitForCondition('Sensor', 'old', 'Ready', 'True');
    const seen: string[] = [await sensorSet(running)];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const now = await sensorSet(running);
        if (now !== seen[seen.length - 1]) seen.push(now);
        await sleep(5);
      }
    })();
    symlinkSync('releases/v2', path.join(root, 'current.tmp'));
    renameSync(path.join(root, 'current.tmp'), current);
    await waitFor(async () => (await sensorSet(running)) === 'new@1,steady@1', { timeoutMs: 5000, what: 'the new release applied' });
    await sleep(200);
    polling = false;
    await poller;
    assert.deepEqual(seen, ['old@1,steady@1', 'new@1,steady@1']);
    assert.equal(await running.stop(), 0);
  } finally {
    await agent?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a link out of the manifests folder is followed only with --allow-manifest-links-outside', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-outside-'));
  const dir = path.join(root, 'manifests');
  mkdirSync(path.join(root, 'shared'), { recursive: true });
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'steady.yaml'), STEADY);
  writeFileSync(path.join(root, 'shared', 'site.yaml'), sensor('site'));
  symlinkSync('../shared/site.yaml', path.join(dir, 'site.yaml'));
  let agent: AgentProcess | undefined;
  try {
    const refused = validate([dir]);
    assert.equal(refused.status, 1);
    assert.match(refused.stdout, new RegExp(`^${dir}/site\\.yaml: .*--allow-manifest-links-outside`, 'm'));
    const allowed = spawnSync(process.execPath, [CLI, 'validate', '--allow-manifest-links-outside', dir], { encoding: 'utf8' });
    assert.equal(allowed.status, 0, allowed.stdout + allowed.stderr);

    agent = await AgentProcess.start({ manifests: dir });
    await agent.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    assert.equal((await fileErrors(agent)).get('site.yaml')?.reason, 'LinkOutsideManifests');
    assert.equal(await agent.resource('Sensor', 'site'), undefined);
    assert.equal(await agent.stop(), 0);

    agent = await AgentProcess.start({ manifests: dir, extraArgs: ['--allow-manifest-links-outside'] });
    await agent.waitForCondition('Sensor', 'site', 'Ready', 'True');
    // Its folder is watched: a change there applies.
    writeFileSync(path.join(root, 'shared', 'site.yaml'), sensor('site', '300ms'));
    const running = agent;
    await waitFor(async () => (await running.resource('Sensor', 'site'))?.metadata.generation === 2, { timeoutMs: 5000, what: 'the change behind the link applied' });
  } finally {
    await agent?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

test('link loops, FIFOs, sockets, devices, links out of the folder and a 50 MB file each fail alone, at start-up and at runtime', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-hostile-'));
  const dir = path.join(root, 'manifests');
  mkdirSync(path.join(dir, 'sub'), { recursive: true });
  writeFileSync(path.join(dir, 'steady.yaml'), STEADY);
  // Present at start-up.
  symlinkSync('..', path.join(dir, 'sub', 'up'));
  symlinkSync('self.yaml', path.join(dir, 'self.yaml'));
  spawnSync('mkfifo', [path.join(dir, 'fifo.yaml')]);
  symlinkSync('/etc/passwd', path.join(dir, 'passwd.yaml'));
  writeLargeFile(path.join(dir, 'big.yaml'), 50);
  const socketServer = net.createServer();
  let agent: AgentProcess | undefined;
  try {
    const expectedAtStart = {
      'up': 'SymlinkLoop',
      'self.yaml': 'SymlinkLoop',
      'fifo.yaml': 'NotARegularFile',
      'passwd.yaml': 'LinkOutsideManifests',
      'big.yaml': 'ManifestTooLarge',
    };
    agent = await AgentProcess.start({ manifests: dir });
    const running = agent;
    const health = probeHealth(running);
    await running.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    const errors = await fileErrors(running);
    for (const [file, reason] of Object.entries(expectedAtStart)) {
      assert.equal(errors.get(file)?.reason, reason, `${file}: ${JSON.stringify(errors.get(file))}`);
      assert.match(running.stderr, new RegExp(`"file":"${dir}/(sub/)?${file.replace('.', '\\.')}"`), `the log names ${file}`);
    }
    assert.match(errors.get('big.yaml')!.message, /52428800 bytes, over the 1048576-byte limit/);
    assert.ok(rssMiB(running.child.pid!) < 150, `a 50 MB file costs no memory: RSS ${rssMiB(running.child.pid!)} MiB`);

    // Added while running: the same errors, and a good file added beside them still loads.
    const seqsBefore = steadySeqs(running).length;
    spawnSync('mkfifo', [path.join(dir, 'late-fifo.yaml')]);
    await new Promise<void>((resolve) => socketServer.listen(path.join(dir, 'socket.yaml'), resolve));
    symlinkSync('../sub', path.join(dir, 'sub', 'again'));
    writeLargeFile(path.join(dir, 'late-big.yaml'), 50);
    if (process.getuid?.() === 0) spawnSync('mknod', [path.join(dir, 'zero.yaml'), 'c', '1', '5']);
    writeFileSync(path.join(dir, 'late.yaml'), sensor('late'));
    await running.waitForCondition('Sensor', 'late', 'Ready', 'True', undefined, 5000);
    const expectedAtRuntime: Record<string, string> = {
      'late-fifo.yaml': 'NotARegularFile',
      'socket.yaml': 'NotARegularFile',
      'again': 'SymlinkLoop',
      'late-big.yaml': 'ManifestTooLarge',
      ...(process.getuid?.() === 0 ? { 'zero.yaml': 'NotARegularFile' } : {}),
    };
    const later = await waitFor(async () => {
      const now = await fileErrors(running);
      return Object.keys(expectedAtRuntime).every((file) => now.has(file)) ? now : undefined;
    }, { timeoutMs: 5000, what: 'errors of the files added at runtime' });
    for (const [file, reason] of Object.entries(expectedAtRuntime)) assert.equal(later.get(file)?.reason, reason, `${file}: ${JSON.stringify(later.get(file))}`);
    assert.ok(rssMiB(running.child.pid!) < 150, `RSS ${rssMiB(running.child.pid!)} MiB`);
    assert.match(await running.metrics(), /^sensorlet_manifest_files_skipped\{reason="NotARegularFile"\} [3-9]$/m);
    await sleep(1000);
    assert.ok(steadySeqs(running).length >= seqsBefore + 8, `the healthy Sensor kept producing: ${steadySeqs(running).length - seqsBefore} readings`);

    const { slowestMs, failures } = await health.stop();
    t.diagnostic(`slowest /healthz ${slowestMs.toFixed(1)} ms; agent RSS ${rssMiB(running.child.pid!).toFixed(0)} MiB`);
    assert.deepEqual(failures, []);
    assert.ok(slowestMs < 100, `/healthz answered within 100 ms (slowest ${slowestMs.toFixed(1)} ms)`);
    // With FIFOs in the folder, SIGTERM still exits 0 at once.
    const stopping = performance.now();
    assert.equal(await running.stop(), 0, running.stderr.slice(-2000));
    assert.ok(performance.now() - stopping < 2000, `stopped in ${(performance.now() - stopping).toFixed(0)} ms`);

    const checked = validate([dir]);
    assert.equal(checked.status, 1, checked.stdout + checked.stderr);
    for (const file of [...Object.keys(expectedAtStart), ...Object.keys(expectedAtRuntime)]) {
      assert.match(checked.stdout, new RegExp(`^${dir}/(sub/)?${file.replace('.', '\\.')}: `, 'm'), `validate names ${file}`);
    }
    assert.ok(!checked.stdout.includes('root:'), 'nothing of a file outside the folder is shown');
  } finally {
    await agent?.kill();
    socketServer.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('an agent that is not root skips files it may not read, names them, and loads them once readable', async (t) => {
  const runAs = unprivileged();
  t.diagnostic(`agent and validate run ${runAs.how}`);
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-unreadable-'));
  chmodSync(root, 0o755);
  const dir = path.join(root, 'manifests');
  const stateDir = path.join(root, 'state');
  mkdirSync(path.join(dir, 'private'), { recursive: true, mode: 0o755 });
  mkdirSync(stateDir);
  chownSync(stateDir, runAs.user?.uid ?? 0, runAs.user?.gid ?? 0);
  writeFileSync(path.join(dir, 'steady.yaml'), STEADY, { mode: 0o644 });
  writeFileSync(path.join(dir, 'secret.yaml'), sensor('secret'), { mode: 0o644 });
  writeFileSync(path.join(dir, 'private', 'hidden.yaml'), sensor('hidden'), { mode: 0o644 });
  chmodSync(path.join(dir, 'secret.yaml'), 0o000);
  // Someone else's private folder (its owner may read it; the agent, as nobody or as root without
  // the capabilities, may not).
  chownSync(path.join(dir, 'private'), 1, 1);
  chmodSync(path.join(dir, 'private'), 0o700);
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ manifests: dir, stateDir, user: runAs.user, wrapper: runAs.wrapper });
    const running = agent;
    const health = probeHealth(running);
    await running.waitForCondition('Sensor', 'steady', 'Ready', 'True');
    const errors = await fileErrors(running);
    assert.equal(errors.get('secret.yaml')?.reason, 'ManifestUnreadable');
    assert.match(errors.get('secret.yaml')!.message, /permission denied \(EACCES\)/);
    assert.equal(errors.get('private')?.reason, 'ManifestUnreadable');
    assert.match(running.stderr, new RegExp(`"file":"${dir}/secret\\.yaml"`));

    // Readable now: it loads, as it would at start-up; unreadable again: it goes, with its error back.
    chmodSync(path.join(dir, 'secret.yaml'), 0o644);
    await running.waitForCondition('Sensor', 'secret', 'Ready', 'True', undefined, 5000);
    assert.ok(!(await fileErrors(running)).has('secret.yaml'));
    chmodSync(path.join(dir, 'secret.yaml'), 0o000);
    await waitFor(async () => (await running.resource('Sensor', 'secret')) === undefined && (await fileErrors(running)).has('secret.yaml'), { timeoutMs: 5000, what: 'secret.yaml unloaded with its error' });

    const seqs = steadySeqs(running).length;
    await sleep(500);
    assert.ok(steadySeqs(running).length > seqs, 'the healthy Sensor keeps producing');
    const { slowestMs, failures } = await health.stop();
    t.diagnostic(`slowest /healthz ${slowestMs.toFixed(1)} ms; agent RSS ${rssMiB(running.child.pid!).toFixed(0)} MiB`);
    assert.deepEqual(failures, []);
    assert.ok(slowestMs < 100, `/healthz answered within 100 ms (slowest ${slowestMs.toFixed(1)} ms)`);
    assert.equal(await running.stop(), 0, running.stderr.slice(-2000));

    const checked = validate([dir], runAs);
    assert.equal(checked.status, 1, checked.stdout + checked.stderr);
    assert.match(checked.stdout, new RegExp(`^${dir}/secret\\.yaml: .*permission denied \\(EACCES\\)`, 'm'));
    assert.match(checked.stdout, new RegExp(`^${dir}/private: .*permission denied \\(EACCES\\)`, 'm'));
  } finally {
    await agent?.kill();
    rmSync(root, { recursive: true, force: true });
  }
});

test('validate warns when a path holds no manifests', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-empty-'));
  try {
    writeFileSync(path.join(dir, 'notes.txt'), 'not a manifest');
    const checked = validate([dir]);
    assert.equal(checked.status, 0);
    assert.match(checked.stderr, new RegExp(`warning: ${dir}: no manifests found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
