// The hostile-manifest corpus (test/fixtures/hostile), shared by its folder-mode and cluster-mode
// runs: seeded secrets, the fixtures with their placeholders filled in, a /healthz poller, and the
// search for secrets in every output channel.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { CLI, type AgentProcess, type ListedResource } from './agent.js';

export const CORPUS = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'hostile');
export const HOSTILE_FILES = readdirSync(CORPUS).filter((file) => /\.(ya?ml|json)$/.test(file)).sort();

/** Random secrets with long digit runs, so that a secret read as a number would show too. */
const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}-${String(Math.random()).slice(2, 14)}${String(Math.random()).slice(2, 14)}`;

export interface HostileWorld {
  root: string;
  dirs: { manifests: string; secrets: string; allowed: string; state: string; canary: string };
  secrets: Record<string, string>;
  /** The agent's environment: one variable the operator did not expose, one it did. */
  env: Record<string, string>;
  /** What the operator allows: one program, one folder; the manifests try to get beyond that. */
  operatorArgs: string[];
}

/** A temp folder with seeded secrets, an allowed folder (with links that lead out of it) and a healthy Sensor. */
export function hostileWorld(): HostileWorld {
  const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-hostile-'));
  const dirs = {
    manifests: path.join(root, 'manifests'),
    secrets: path.join(root, 'secrets'),
    allowed: path.join(root, 'allowed'),
    state: path.join(root, 'state'),
    canary: path.join(root, 'canary'),
  };
  const secrets = {
    env: secret('envsecret'),
    shadow: secret('shadowhash'),
    key: secret('privatekey'),
    token: secret('satoken'),
    password: secret('brokerpassword'),
    // Written into URLs by the manifests themselves: shown nowhere but in the file.
    urlPassword: 'urlpassword-8c1f2e9b7a',
  };
  for (const dir of [dirs.manifests, dirs.secrets, dirs.allowed, dirs.state]) mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dirs.secrets, 'shadow'), `root:$6$${secrets.shadow}:19700:0:99999:7:::\n`);
  writeFileSync(path.join(dirs.secrets, 'key.pem'), `-----BEGIN PRIVATE KEY-----\n${secrets.key}\n-----END PRIVATE KEY-----\n`);
  writeFileSync(path.join(dirs.secrets, 'token'), secrets.token);
  writeFileSync(path.join(dirs.allowed, 'temp'), '42000\n');
  writeFileSync(path.join(dirs.allowed, 'redos'), `${'a'.repeat(48)}!\n`);
  symlinkSync(path.join(dirs.secrets, 'shadow'), path.join(dirs.allowed, 'shadow-link'));
  symlinkSync(dirs.secrets, path.join(dirs.allowed, 'secrets-link'));
  return {
    root,
    dirs,
    secrets,
    env: { HOSTILE_ENV_SECRET: secrets.env, SENSORLET_SECRET_BROKER_PASSWORD: secrets.password },
    operatorArgs: ['--allow-command-driver', '--command-allowlist', '/bin/echo', '--file-allow-prefix', dirs.allowed],
  };
}

/** The healthy Sensor and its Sink, which must keep running whatever the corpus does. */
export const HEALTHY_MANIFEST = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: healthy, labels: { role: healthy } }
spec: { driver: { simulated: { waveform: counter, min: 0, step: 1 } }, interval: 100ms }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: healthy-sink }
spec: { selector: { matchLabels: { role: healthy } }, stdout: {} }
`;

export interface HostileFixture {
  text: string;
  hostile: string;
  /** `# expect: KIND/NAME REASON` lines: the resource gets Ready=False with that reason (`any`: any reason). */
  expects: { kind: string; name: string; reason: string }[];
}

export function hostileFixture(world: HostileWorld, file: string): HostileFixture {
  const text = readFileSync(path.join(CORPUS, file), 'utf8')
    .replaceAll('{{SECRETS}}', world.dirs.secrets)
    .replaceAll('{{ALLOWED}}', world.dirs.allowed)
    .replaceAll('{{CANARY}}', world.dirs.canary)
    .replaceAll('{{STATE}}', world.dirs.state);
  // A YAML comment, or a JSON file's first string (JSON has no comments).
  const hostile = /# hostile: ([^"\n]*)/.exec(text)?.[1] ?? '';
  const expects = [...text.matchAll(/^# expect: (\w+)\/([\w.-]+) (\w+)$/gm)].map(([, kind, name, reason]) => ({ kind, name, reason }));
  return { text, hostile, expects };
}

/** Polls /healthz until stopped; returns the slowest answer in ms. */
export function pollHealth(adminAddr: string): { stop(): Promise<number> } {
  let running = true;
  let slowest = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const response = await fetch(`http://${adminAddr}/healthz`, { signal: AbortSignal.timeout(5_000) });
      await response.text();
      assert.equal(response.status, 200);
      slowest = Math.max(slowest, performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return slowest;
    },
  };
}

export const readingsOf = (items: ListedResource[], name: string) => Number(items.find((item) => item.metadata.name === name)?.status.nodes[0]?.readings ?? 0);

/** Waits for every `# expect:` of a fixture, gives the input time to do its worst, and checks the healthy Sensor. */
export async function assertContained(agent: AgentProcess, fixture: HostileFixture, readingsBefore: number): Promise<void> {
  for (const expected of fixture.expects) {
    await agent.waitForCondition(expected.kind, expected.name, 'Ready', 'False', expected.reason === 'any' ? undefined : expected.reason, 10_000);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const items = await agent.resources();
  assert.ok(readingsOf(items, 'healthy') >= readingsBefore + 5, `the healthy Sensor kept producing (${readingsBefore} -> ${readingsOf(items, 'healthy')})`);
  assert.equal(agent.child.exitCode, null, 'the agent is still running');
}

/** Every output channel a person or a program reads from a running agent. */
export async function outputChannels(agent: AgentProcess): Promise<Record<string, string>> {
  let yamlOut = '';
  for (const kind of ['sensors', 'sinks', 'certificates', 'firmware']) {
    const out = spawnSync(process.execPath, [CLI, 'get', kind, '-o', 'yaml', '--admin-addr', agent.adminAddr], { encoding: 'utf8' });
    yamlOut += out.stdout + out.stderr;
  }
  return {
    'api/v1/resources': JSON.stringify(await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).json()),
    metrics: await agent.metrics(),
    'get -o yaml': yamlOut,
    logs: agent.stdout + agent.stderr,
  };
}

/** No 10-character window of any secret in any channel (a pattern may select a piece, a number a digit run). */
export function assertNoSecrets(secrets: Record<string, string>, channels: Record<string, string>): void {
  for (const [name, value] of Object.entries(secrets)) {
    // Shorter windows of random digits turn up by chance among the logs' numbers.
    const windows = new Set<string>();
    for (let start = value.indexOf('-') + 1; start + 10 <= value.length; start++) windows.add(value.slice(start, start + 10));
    for (const [channel, output] of Object.entries(channels)) {
      for (const window of windows) assert.ok(!output.includes(window), `secret ${name} (${window}) appears in ${channel}`);
    }
  }
}
