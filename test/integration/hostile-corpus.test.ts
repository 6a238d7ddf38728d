// Manifests written by someone who may only write manifests (DESIGN.md, "Trust model"). Every file in
// test/fixtures/hostile is, one at a time, (1) given to `sensorlet validate`, which must finish in
// seconds with exit 0 or 1 and no stack trace, and (2) dropped into the folder of one running agent
// that holds a healthy Sensor: /healthz is polled throughout and must answer within 100 ms, the
// healthy Sensor must keep producing, the hostile resources must not become Ready (or must get the
// reason the file names), no canary file may appear (nothing ran), and seeded secrets — an env var
// of the agent, a key file, a shadow-like file, a token file — must appear in no output channel:
// status, logs, /api/v1/resources, `get -o yaml`, /metrics, validate's output.
//
// Fixture header lines:
//   # hostile: what the file tries
//   # expect: KIND/NAME REASON   (the resource is Ready=False with this reason; `any` for any reason)
// Placeholders replaced when a file is used: {{SECRETS}} (the seeded secrets' folder), {{ALLOWED}}
// (a folder the operator allowed the file driver to read), {{CANARY}} (a path nothing may create),
// {{STATE}} (the agent's state dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { AgentProcess, CLI, type ListedResource } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

const CORPUS = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'hostile');
const files = readdirSync(CORPUS).filter((file) => /\.(ya?ml|json)$/.test(file)).sort();

const root = mkdtempSync(path.join(tmpdir(), 'sensorlet-hostile-'));
const dirs = {
  manifests: path.join(root, 'manifests'),
  secrets: path.join(root, 'secrets'),
  allowed: path.join(root, 'allowed'),
  state: path.join(root, 'state'),
  canary: path.join(root, 'canary'),
};

/** Random secrets with long digit runs, so that a secret read as a number would show too. */
const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}-${String(Math.random()).slice(2, 14)}${String(Math.random()).slice(2, 14)}`;
const SECRETS = {
  env: secret('envsecret'),
  shadow: secret('shadowhash'),
  key: secret('privatekey'),
  token: secret('satoken'),
  password: secret('brokerpassword'),
  // Written into a Sink URL by the manifest itself: shown nowhere but in the file.
  urlPassword: 'urlpassword-8c1f2e9b7a',
};

let agent: AgentProcess;
const validateOutputs: string[] = [];

function fixture(file: string): { text: string; hostile: string; expects: { kind: string; name: string; reason: string }[] } {
  const text = readFileSync(path.join(CORPUS, file), 'utf8')
    .replaceAll('{{SECRETS}}', dirs.secrets)
    .replaceAll('{{ALLOWED}}', dirs.allowed)
    .replaceAll('{{CANARY}}', dirs.canary)
    .replaceAll('{{STATE}}', dirs.state);
  // A YAML comment, or a JSON file's first string (JSON has no comments).
  const hostile = /# hostile: ([^"\n]*)/.exec(text)?.[1] ?? '';
  const expects = [...text.matchAll(/^# expect: (\w+)\/([\w.-]+) (\w+)$/gm)].map(([, kind, name, reason]) => ({ kind, name, reason }));
  return { text, hostile, expects };
}

/** Polls /healthz until stopped; returns the slowest answer in ms. */
function pollHealth(adminAddr: string): { stop(): Promise<number> } {
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

const readingsOf = (items: ListedResource[], name: string) => Number(items.find((item) => item.metadata.name === name)?.status.nodes[0]?.readings ?? 0);

before(async () => {
  for (const dir of Object.values(dirs)) if (dir !== dirs.canary) mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dirs.secrets, 'shadow'), `root:$6$${SECRETS.shadow}:19700:0:99999:7:::\n`);
  writeFileSync(path.join(dirs.secrets, 'key.pem'), `-----BEGIN PRIVATE KEY-----\n${SECRETS.key}\n-----END PRIVATE KEY-----\n`);
  writeFileSync(path.join(dirs.secrets, 'token'), SECRETS.token);
  writeFileSync(path.join(dirs.allowed, 'temp'), '42000\n');
  writeFileSync(path.join(dirs.allowed, 'redos'), `${'a'.repeat(48)}!\n`);
  // Links inside the allowed folder that lead out of it.
  symlinkSync(path.join(dirs.secrets, 'shadow'), path.join(dirs.allowed, 'shadow-link'));
  symlinkSync(dirs.secrets, path.join(dirs.allowed, 'secrets-link'));
  writeFileSync(
    path.join(dirs.manifests, 'healthy.yaml'),
    [
      'apiVersion: sensorlet.io/v1alpha1',
      'kind: Sensor',
      'metadata: { name: healthy, labels: { role: healthy } }',
      'spec: { driver: { simulated: { waveform: counter, min: 0, step: 1 } }, interval: 100ms }',
      '---',
      'apiVersion: sensorlet.io/v1alpha1',
      'kind: Sink',
      'metadata: { name: healthy-sink }',
      'spec: { selector: { matchLabels: { role: healthy } }, stdout: {} }',
      '',
    ].join('\n'),
  );
  agent = await AgentProcess.start({
    manifests: dirs.manifests,
    stateDir: dirs.state,
    // The operator allows one program and one folder; the manifests try to get beyond that.
    extraArgs: ['--allow-command-driver', '--command-allowlist', '/bin/echo', '--file-allow-prefix', dirs.allowed],
    env: { HOSTILE_ENV_SECRET: SECRETS.env, SENSORLET_SECRET_BROKER_PASSWORD: SECRETS.password },
  });
  await agent.waitForCondition('Sensor', 'healthy', 'Ready', 'True');
});

after(async () => {
  const code = await agent?.stop();
  rmSync(root, { recursive: true, force: true });
  assert.equal(code, 0, `the agent exits 0 on SIGTERM after the corpus (stderr: ${agent?.stderr.slice(-2000)})`);
});

test('the hostile corpus has a file for each category of the trust model and the robustness rules', () => {
  assert.ok(files.length >= 20, `only ${files.length} hostile fixtures`);
  for (const file of files) assert.ok(fixture(file).hostile, `${file} says what it tries (# hostile: ...)`);
});

for (const file of files) {
  test(`hostile: ${file}`, async (t) => {
    const { text, hostile, expects } = fixture(file);
    t.diagnostic(hostile);
    const target = path.join(dirs.manifests, file);
    const scratch = path.join(root, file);
    writeFileSync(scratch, text);

    const started = performance.now();
    const validated = spawnSync(process.execPath, [CLI, 'validate', scratch], { encoding: 'utf8', timeout: 20_000 });
    const validateMs = performance.now() - started;
    validateOutputs.push(validated.stdout, validated.stderr);
    assert.equal(validated.signal, null, `validate was killed (${validated.signal}): it must finish on its own`);
    assert.ok(validated.status === 0 || validated.status === 1, `validate exits 0 or 1, not ${validated.status}: ${validated.stderr.slice(0, 500)}`);
    assert.ok(validateMs < 5_000, `validate took ${Math.round(validateMs)} ms`);
    assert.doesNotMatch(validated.stdout + validated.stderr, /^\s+at .+:\d+:\d+\)?$/m, 'validate prints no stack trace');
    if (validated.status === 1) {
      for (const line of validated.stdout.split('\n').filter(Boolean)) assert.ok(line.startsWith(scratch), `validate names the file: ${line}`);
    }

    const health = pollHealth(agent.adminAddr);
    const before = readingsOf(await agent.resources(), 'healthy');
    writeFileSync(target, text);
    try {
      for (const expected of expects) {
        if (expected.reason === 'any') await agent.waitForCondition(expected.kind, expected.name, 'Ready', 'False', undefined, 10_000);
        else await agent.waitForCondition(expected.kind, expected.name, 'Ready', 'False', expected.reason, 10_000);
      }
      // Give the hostile input time to do its worst while the healthy Sensor is watched.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const items = await agent.resources();
      assert.ok(readingsOf(items, 'healthy') >= before + 5, `the healthy Sensor kept producing (${before} -> ${readingsOf(items, 'healthy')})`);
      for (const item of items.filter((each) => each.metadata.name !== 'healthy' && each.metadata.name !== 'healthy-sink')) {
        if (expects.length === 0 && item.kind === 'Sensor') {
          const ready = item.status.nodes[0]?.conditions.find((condition) => condition.type === 'Ready');
          assert.notEqual(ready?.status, 'True', `${item.kind}/${item.metadata.name} from ${file} must not run: ${JSON.stringify(ready)}`);
        }
      }
    } finally {
      const slowest = await health.stop();
      rmSync(target, { force: true });
      rmSync(scratch, { force: true });
      assert.ok(slowest <= 100, `/healthz answered in ${Math.round(slowest)} ms at worst (limit 100 ms)`);
    }
    assert.equal(existsSync(dirs.canary), false, `${file}: a canary file appeared: a program ran`);
    assert.equal(agent.child.exitCode, null, `the agent is still running after ${file}`);
  });
}

test('no seeded secret appears in any output channel', async () => {
  const yamlOut = spawnSync(process.execPath, [CLI, 'get', 'sensors', '-o', 'yaml', '--admin-addr', agent.adminAddr], { encoding: 'utf8' });
  const channels: Record<string, string> = {
    'api/v1/resources': JSON.stringify(await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).json()),
    metrics: await agent.metrics(),
    'get -o yaml': yamlOut.stdout + yamlOut.stderr,
    logs: agent.stdout + agent.stderr,
    validate: validateOutputs.join('\n'),
  };
  for (const kind of ['sinks', 'certificates', 'firmware']) {
    const out = spawnSync(process.execPath, [CLI, 'get', kind, '-o', 'yaml', '--admin-addr', agent.adminAddr], { encoding: 'utf8' });
    channels['get -o yaml'] += out.stdout + out.stderr;
  }
  for (const [name, value] of Object.entries(SECRETS)) {
    // Any 10-character window: a pattern may have selected a piece, or a number a digit run (shorter
    // windows of random digits turn up by chance among the logs' numbers).
    const windows = new Set<string>();
    for (let start = value.indexOf('-') + 1; start + 10 <= value.length; start++) windows.add(value.slice(start, start + 10));
    for (const [channel, output] of Object.entries(channels)) {
      for (const window of windows) assert.ok(!output.includes(window), `secret ${name} (${window}) appears in ${channel}`);
    }
  }
});
