// Manifests written by someone who may only write manifests (DESIGN.md, "Trust model"), in folder
// mode. Every file in test/fixtures/hostile is, one at a time, (1) given to `sensorlet validate`,
// which must finish in seconds with exit 0 or 1, lines naming the file and no stack trace, and (2)
// dropped into the folder of one running agent that holds a healthy Sensor: /healthz is polled
// throughout and must answer within 100 ms, the healthy Sensor must keep producing, the hostile
// resources must not run (or must get the reason the file names), no canary file may appear
// (nothing ran), and seeded secrets — an env var of the agent, a key file, a shadow-like file, a
// token file — must appear in no output channel: status, logs, /api/v1/resources, `get -o yaml`,
// /metrics, validate's output. hostile-corpus-cluster.test.ts runs the same files in cluster mode.
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
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentProcess, CLI } from '../support/agent.js';
import { assertContained, assertNoSecrets, HEALTHY_MANIFEST, HOSTILE_FILES, hostileFixture, hostileWorld, outputChannels, pollHealth, readingsOf } from '../support/hostile.js';

const world = hostileWorld();
let agent: AgentProcess;
const validateOutputs: string[] = [];

before(async () => {
  writeFileSync(path.join(world.dirs.manifests, 'healthy.yaml'), HEALTHY_MANIFEST);
  agent = await AgentProcess.start({ manifests: world.dirs.manifests, stateDir: world.dirs.state, extraArgs: world.operatorArgs, env: world.env });
  await agent.waitForCondition('Sensor', 'healthy', 'Ready', 'True');
});

after(async () => {
  const code = await agent?.stop();
  rmSync(world.root, { recursive: true, force: true });
  assert.equal(code, 0, `the agent exits 0 on SIGTERM after the corpus (stderr: ${agent?.stderr.slice(-2000)})`);
});

test('the hostile corpus has a file for each category of the trust model and the robustness rules', () => {
  assert.ok(HOSTILE_FILES.length >= 30, `only ${HOSTILE_FILES.length} hostile fixtures`);
  for (const file of HOSTILE_FILES) assert.ok(hostileFixture(world, file).hostile, `${file} says what it tries (# hostile: ...)`);
});

for (const file of HOSTILE_FILES) {
  test(`hostile: ${file}`, async (t) => {
    const fixture = hostileFixture(world, file);
    t.diagnostic(fixture.hostile);
    const target = path.join(world.dirs.manifests, file);
    const scratch = path.join(world.root, file);
    writeFileSync(scratch, fixture.text);

    const started = performance.now();
    const validated = spawnSync(process.execPath, [CLI, 'validate', scratch], { encoding: 'utf8', timeout: 20_000 });
    const validateMs = performance.now() - started;
    validateOutputs.push(validated.stdout, validated.stderr);
    assert.equal(validated.signal, null, `validate was killed (${validated.signal}): it must finish on its own`);
    assert.ok(validated.status === 0 || validated.status === 1, `validate exits 0 or 1, not ${validated.status}: ${validated.stderr.slice(0, 500)}`);
    assert.ok(validateMs < 5_000, `validate took ${Math.round(validateMs)} ms`);
    assert.doesNotMatch(validated.stdout + validated.stderr, /^\s+at .+:\d+:\d+\)?$/m, 'validate prints no stack trace');
    if (validated.status === 1) {
      for (const line of validated.stdout.split('\n').filter(Boolean)) assert.ok(line.startsWith(scratch), `validate names the file: ${line.slice(0, 300)}`);
    }

    const health = pollHealth(agent.adminAddr);
    const before = readingsOf(await agent.resources(), 'healthy');
    writeFileSync(target, fixture.text);
    try {
      await assertContained(agent, fixture, before);
      if (fixture.expects.length === 0) {
        for (const item of (await agent.resources()).filter((each) => each.kind === 'Sensor' && each.metadata.name !== 'healthy')) {
          const ready = item.status.nodes[0]?.conditions.find((condition) => condition.type === 'Ready');
          assert.notEqual(ready?.status, 'True', `Sensor/${item.metadata.name} from ${file} must not run: ${JSON.stringify(ready)}`);
        }
      }
    } finally {
      const slowest = await health.stop();
      rmSync(target, { force: true });
      rmSync(scratch, { force: true });
      assert.ok(slowest <= 100, `/healthz answered in ${Math.round(slowest)} ms at worst (limit 100 ms)`);
    }
    assert.equal(existsSync(world.dirs.canary), false, `${file}: a canary file appeared: a program ran`);
  });
}

test('no seeded secret appears in any output channel', async () => {
  assertNoSecrets(world.secrets, { ...(await outputChannels(agent)), validate: validateOutputs.join('\n') });
});
