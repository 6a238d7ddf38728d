// The release artifacts as users get them: the multi-arch OCI image archive (inspected with skopeo,
// unpacked with umoci, the agent run inside its root filesystem as uid 65532), the Debian package
// (lintian, dpkg -i / -r / -P, systemd-analyze verify) and the tarball (run with no Node on PATH).
// Built by the same CLI `npm run image` and `npm run package` run, from this build's bundle.
//
// Needs root (CI runs as root): umoci restores owners, chroot switches to uid 65532, dpkg installs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { AGENT_NODE_FLAGS } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

const RELEASE_CLI = path.join(PACKAGE_ROOT, 'dist', 'cmd', 'release', 'main.js');
const VERSION = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const IS_ROOT = process.getuid?.() === 0;
const SKIP = IS_ROOT ? false : 'needs root (CI runs as root): unpacks the image with its owners, runs it as uid 65532, installs the .deb';
/** The image budget as pushed: config plus gzip layers, per architecture. */
const MAX_IMAGE_BYTES = 50_000_000;
const TOOLS = ['skopeo', 'umoci', 'lintian', 'dpkg-deb', 'systemd-analyze', 'readelf', 'file', 'unshare', 'chroot', 'x86_64-linux-gnu-strip', 'aarch64-linux-gnu-strip', 'adduser'];

let work: string;
let archive: string;
let layout: string;
let packages: string;
/** lintian takes the longest (~30 s of CPU): started as soon as the .deb exists, awaited by its test. */
let lintian: Promise<{ output: string; status: number | null }>;

function run(command: string, args: string[], options: { allowFailure?: boolean; env?: NodeJS.ProcessEnv } = {}): { stdout: string; stderr: string; status: number } {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: options.env ?? process.env, timeout: 180_000 });
  if (result.error) throw result.error;
  if (!options.allowFailure) assert.equal(result.status, 0, `${command} ${args.join(' ')} failed:\n${result.stderr}${result.stdout}`);
  return { stdout: result.stdout, stderr: result.stderr, status: result.status ?? -1 };
}

async function runAsync(command: string, args: string[]): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, `${command} ${args.join(' ')} failed:\n${output}`);
  return output;
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
const readBlob = <T>(digest: string): T => JSON.parse(readFileSync(blob(digest), 'utf8')) as T;

interface Descriptor { digest: string; size: number; platform?: { architecture: string; os: string } }
interface Manifest { config: Descriptor; layers: Descriptor[] }
interface ImageConfig { architecture: string; config: { User: string; Entrypoint: string[]; Cmd: string[]; Labels: Record<string, string> } }

function platformManifest(arch: string): { descriptor: Descriptor; manifest: Manifest; config: ImageConfig } {
  const top = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const index = readBlob<{ manifests: Descriptor[] }>(top.manifests[0].digest);
  const descriptor = index.manifests.find((candidate) => candidate.platform?.architecture === arch);
  assert.ok(descriptor, `the index has linux/${arch}`);
  const manifest = readBlob<Manifest>(descriptor.digest);
  return { descriptor, manifest, config: readBlob<ImageConfig>(manifest.config.digest) };
}

/** Waits for the first JSON reading on a child's stdout. */
async function firstReading(child: ChildProcess, what: string): Promise<{ sensor: string; seq: number }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return waitFor(
    () => {
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const reading = JSON.parse(line) as { sensor?: string; seq?: number };
        if (typeof reading.sensor === 'string' && typeof reading.seq === 'number') return reading as { sensor: string; seq: number };
      }
      if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${stderr}`);
      return undefined;
    },
    { timeoutMs: 20_000, what: `a reading from ${what}` },
  ).catch((error: Error) => {
    throw new Error(`${error.message}\nstderr:\n${stderr}`);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

before(async () => {
  if (SKIP) return;
  const missing = TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  assert.deepEqual(missing, [], `missing tools (bash test/install-peers.sh installs them): ${missing.join(', ')}`);
  work = mkdtempSync(path.join(tmpdir(), 'sensorlet-release-'));
  packages = path.join(work, 'packages');
  // The image twice (the reproducibility check), and the amd64 packages alongside the second build
  // (after the first, which fills the download cache on a fresh machine).
  await runAsync(process.execPath, [RELEASE_CLI, 'image', '--out', path.join(work, 'image-a')]);
  await Promise.all([
    runAsync(process.execPath, [RELEASE_CLI, 'image', '--out', path.join(work, 'image-b')]),
    (async () => {
      await runAsync(process.execPath, [RELEASE_CLI, 'package', '--arch', 'amd64', '--out', packages]);
      const child = spawn('lintian', ['--fail-on', 'error', path.join(packages, `sensorlet_${VERSION}_amd64.deb`)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      lintian = new Promise((resolve) => child.once('exit', (status) => resolve({ output, status })));
    })(),
  ]);
  archive = path.join(work, 'image-a', `sensorlet-${VERSION}-oci.tar`);
  layout = path.join(work, 'layout');
  mkdirSync(layout);
  run('tar', ['-xf', archive, '-C', layout]);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm run image: one index for linux/amd64 and linux/arm64 (skopeo), the same digest from two builds, each image within 50 MB', { skip: SKIP }, () => {
  const raw = JSON.parse(run('skopeo', ['inspect', '--raw', `oci-archive:${archive}`]).stdout) as { mediaType: string; manifests: Descriptor[] };
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(raw.manifests.map((entry) => `${entry.platform?.os}/${entry.platform?.architecture}`).sort(), ['linux/amd64', 'linux/arm64']);
  for (const arch of ['amd64', 'arm64']) {
    const inspected = JSON.parse(run('skopeo', ['inspect', '--override-arch', arch, `oci-archive:${archive}`]).stdout) as { Architecture: string; Labels: Record<string, string> };
    assert.equal(inspected.Architecture, arch);
    assert.equal(inspected.Labels['org.opencontainers.image.version'], VERSION);
    for (const label of ['revision', 'source', 'licenses', 'created']) assert.ok(inspected.Labels[`org.opencontainers.image.${label}`], `label ${label}`);
  }
  assert.equal(sha256(archive), sha256(path.join(work, 'image-b', path.basename(archive))), 'two builds of the same commit give the same archive');
  for (const arch of ['amd64', 'arm64']) {
    const { manifest, config } = platformManifest(arch);
    const pushed = manifest.config.size + manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
    assert.ok(pushed <= MAX_IMAGE_BYTES, `linux/${arch}: ${pushed} bytes pushed, budget ${MAX_IMAGE_BYTES}`);
    assert.equal(config.architecture, arch);
    assert.equal(config.config.User, '65532:65532');
    assert.deepEqual(config.config.Entrypoint.slice(1, -1), AGENT_NODE_FLAGS, 'the entrypoint has the V8 flags of npm start');
  }
});

test('the amd64 root filesystem runs sensorlet --version, then the example manifests as uid 65532 with readings on stdout', { skip: SKIP }, async () => {
  const image = path.join(work, 'amd64');
  run('skopeo', ['copy', '--override-arch', 'amd64', `oci:${layout}:${VERSION}`, `oci:${image}:amd64`]);
  const bundle = path.join(work, 'amd64-bundle');
  run('umoci', ['unpack', '--image', `${image}:amd64`, bundle]);
  const rootfs = path.join(bundle, 'rootfs');
  const { config } = platformManifest('amd64');
  const stateDir = path.join(rootfs, 'var/lib/sensorlet');
  assert.equal(statSync(stateDir).uid, 65532, 'the state dir belongs to the image user');
  assert.match(readFileSync(path.join(rootfs, 'etc/group'), 'utf8'), /^dialout:x:20:sensorlet$/m);
  assert.ok(existsSync(path.join(rootfs, 'etc/ssl/certs/ca-certificates.crt')));
  assert.ok(!existsSync(path.join(rootfs, 'bin/sh')) && !existsSync(path.join(rootfs, 'usr/bin/sh')), 'no shell in the image');
  assert.ok(existsSync(path.join(rootfs, 'usr/lib/sensorlet/dist/schemas/validators.cjs')), 'the image has the validators compiled at build time');
  // As a runtime starts it: the image's user, its supplementary group, its entrypoint, /proc mounted
  // (in a mount namespace of its own, gone with the process). No --fork: unshare, chroot and the
  // agent are one process, which the test's SIGTERM reaches.
  const inImage = (args: string[]) => [`--mount-proc=${path.join(rootfs, 'proc')}`, 'chroot', '--userspec=65532:65532', '--groups=20', rootfs, ...config.config.Entrypoint, ...args];
  const version = run('unshare', inImage(['--version'])).stdout.trim();
  assert.match(version, new RegExp(`^sensorlet ${VERSION.replace(/\./g, '\\.')} \\(commit [0-9a-f]{40}(-dirty)?\\)$`));
  assert.ok(version.includes(`(commit ${config.config.Labels['org.opencontainers.image.revision']})`), `--version (${version}) names the commit of the revision label`);
  cpSync(path.join(PACKAGE_ROOT, 'manifests', 'examples', 'quickstart'), path.join(rootfs, 'tmp', 'examples'), { recursive: true });
  const agent = spawn('unshare', inImage(['run', '--manifests', '/tmp/examples', '--state-dir', '/var/lib/sensorlet', '--admin-addr', '127.0.0.1:0']), { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const reading = await firstReading(agent, 'the agent in the amd64 image');
    assert.ok(reading.seq >= 1);
    assert.equal(readFileSync(`/proc/${agent.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1], '65532', 'the agent runs as uid 65532');
    assert.match(readFileSync(`/proc/${agent.pid}/status`, 'utf8'), /^Groups:.*\b20\b/m, 'with the dialout group');
  } finally {
    await stop(agent);
  }
  assert.equal(agent.exitCode, 0, 'SIGTERM stops the agent cleanly');
  const written = readdirSync(stateDir);
  assert.ok(written.length > 0, 'the agent wrote its state');
  for (const entry of written) assert.equal(statSync(path.join(stateDir, entry)).uid, 65532, `${entry} was written by uid 65532`);
});

test('each image carries its own architecture: node is an aarch64 ELF in arm64 and the serialport binding the arm64 prebuild (x86-64 in amd64)', { skip: SKIP }, () => {
  for (const [arch, machine, prebuild] of [['arm64', 'ARM aarch64', 'linux-arm64'], ['amd64', 'x86-64', 'linux-x64']] as const) {
    const { manifest } = platformManifest(arch);
    const into = path.join(work, `files-${arch}`);
    mkdirSync(into);
    for (const layer of manifest.layers) run('tar', ['-xzf', blob(layer.digest), '-C', into, '--wildcards', 'usr/lib/sensorlet/node/bin/node', 'usr/lib/sensorlet/node_modules/@serialport/bindings-cpp/prebuilds/*'], { allowFailure: true });
    const node = run('file', ['-b', path.join(into, 'usr/lib/sensorlet/node/bin/node')]).stdout;
    assert.match(node, new RegExp(`^ELF 64-bit LSB .*${machine}`), `${arch} node: ${node}`);
    const prebuilds = path.join(into, 'usr/lib/sensorlet/node_modules/@serialport/bindings-cpp/prebuilds');
    assert.deepEqual(readdirSync(prebuilds), [prebuild], `${arch} ships only its own serialport prebuild`);
    const [binding] = readdirSync(path.join(prebuilds, prebuild));
    assert.match(binding, /glibc\.node$/);
    assert.match(run('file', ['-b', path.join(prebuilds, prebuild, binding)]).stdout, new RegExp(`ELF 64-bit LSB shared object, ${machine}`));
  }
});

test('the .deb: lintian reports no errors, dpkg -i installs a working sensorlet, systemd-analyze verify accepts the unit, -r keeps the state dir, -P removes it', { skip: SKIP }, async () => {
  const deb = path.join(packages, `sensorlet_${VERSION}_amd64.deb`);
  assert.notEqual(run('dpkg-query', ['-W', '-f=${Status}', 'sensorlet'], { allowFailure: true }).stdout, 'install ok installed', 'a sensorlet package is installed on this machine already: this test would replace it');
  const userExisted = run('getent', ['passwd', 'sensorlet'], { allowFailure: true }).status === 0;
  const checked = await lintian;
  assert.equal(checked.output.split('\n').filter((line) => line.startsWith('E:')).join('\n'), '', 'lintian errors');
  assert.equal(checked.status, 0, `lintian:\n${checked.output}`);
  try {
    run('dpkg', ['-i', deb]);
    assert.match(run('/usr/bin/sensorlet', ['--version']).stdout, new RegExp(`^sensorlet ${VERSION.replace(/\./g, '\\.')} \\(commit `));
    assert.match(run('id', ['-nG', 'sensorlet']).stdout, /\bdialout\b/, 'the service user is in dialout');
    const verify = run('systemd-analyze', ['verify', '/lib/systemd/system/sensorlet.service'], { allowFailure: true });
    assert.equal(verify.status, 0, `systemd-analyze verify:\n${verify.stderr}`);
    assert.equal(verify.stderr.trim(), '', 'systemd-analyze verify has no complaint');
    const unit = readFileSync('/lib/systemd/system/sensorlet.service', 'utf8');
    for (const line of ['Restart=on-failure', 'StateDirectory=sensorlet', 'ExecReload=/bin/kill -HUP $MAINPID', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=\n', 'DeviceAllow=char-ttyUSB rw', 'SupplementaryGroups=dialout']) {
      assert.ok(unit.includes(line), `the unit has ${line.trim()}`);
    }
    assert.ok(readFileSync('/var/lib/dpkg/info/sensorlet.conffiles', 'utf8').includes('/etc/sensorlet/manifests/example.yaml'));
    // The example is all comments: the agent starts on it and runs nothing.
    assert.equal(run('/usr/bin/sensorlet', ['validate', '/etc/sensorlet/manifests']).status, 0);
    writeFileSync('/var/lib/sensorlet/marker', 'unsent readings live here');
    run('dpkg', ['-r', 'sensorlet']);
    assert.ok(!existsSync('/usr/bin/sensorlet'), 'remove removes the program');
    assert.ok(existsSync('/var/lib/sensorlet/marker'), 'remove keeps the state dir');
    run('dpkg', ['-P', 'sensorlet']);
    assert.ok(!existsSync('/var/lib/sensorlet'), 'purge removes the state dir');
    assert.ok(!existsSync('/etc/sensorlet/manifests/example.yaml'), 'purge removes the conffile');
  } finally {
    run('dpkg', ['-P', 'sensorlet'], { allowFailure: true });
    if (!userExisted) {
      run('deluser', ['--quiet', '--system', 'sensorlet'], { allowFailure: true });
      run('delgroup', ['--quiet', '--system', 'sensorlet'], { allowFailure: true });
    }
    rmSync('/var/lib/sensorlet', { recursive: true, force: true });
  }
});

test('the tarball runs with env -i PATH=/usr/bin:/bin and no Node on that PATH, and prints readings', { skip: SKIP }, async () => {
  const unpacked = path.join(work, 'tarball');
  mkdirSync(unpacked);
  run('tar', ['-xzf', path.join(packages, `sensorlet-${VERSION}-linux-amd64.tar.gz`), '-C', unpacked]);
  const top = path.join(unpacked, `sensorlet-${VERSION}-linux-amd64`);
  // This machine has a Node on /usr/bin: hidden (a /dev/null over it) in a private mount namespace.
  const hideNode = 'for n in $(ls /usr/bin/node /bin/node 2>/dev/null); do mount --bind /dev/null "$n"; done; exec env -i PATH=/usr/bin:/bin "$@"';
  const agent = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', hideNode, 'sh', path.join(top, 'sensorlet'), 'run', '--manifests', path.join(top, 'examples'), '--state-dir', path.join(work, 'tarball-state'), '--admin-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: unpacked });
  try {
    await firstReading(agent, 'the tarball agent');
    assert.equal(readlinkSync(`/proc/${agent.pid}/exe`), path.join(top, 'node', 'bin', 'node'), "the tarball's own Node runs the agent");
    assert.ok(existsSync(path.join(top, 'dist', 'console', 'index.html')), "the web console's page ships beside the bundle");
  } finally {
    await stop(agent);
  }
});
