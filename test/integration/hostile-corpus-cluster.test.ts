// The hostile corpus of hostile-corpus.test.ts in cluster mode: a manifest author who may create
// Sensors, Sinks, Certificates and Firmware in namespace team-x, against the real agent on the
// in-test API server (test/support/fake-apiserver.ts). Each document of each fixture is applied into
// team-x (documents the parser refuses never reach an API server, so they are not applied), while
// /healthz is polled and a healthy Sensor in namespace ops is watched. Secrets of another team
// (team-y) and the agent's own environment are seeded and searched for in every channel — the
// agent's outputs and the status it writes to the API server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseManifestText } from '../../pkg/sources/manifest-parser.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { assertContained, assertNoSecrets, HEALTHY_MANIFEST, HOSTILE_FILES, hostileFixture, hostileWorld, outputChannels, pollHealth, readingsOf } from '../support/hostile.js';

const NODE = 'edge-1';
const world = hostileWorld();
let fake: FakeApiServer;
let agent: AgentProcess;
/** What the agent wrote to the API server about the hostile objects (its NodeReport, their rolled-up status), kept before they are deleted. */
const writtenStatus: string[] = [];
/** Fleet timings shortened so that the NodeReport (normally written every 10 s at most) follows each fixture within a second. */
const FLEET_TIMINGS = { reportIntervalMs: 500, heartbeatIntervalMs: 1_000, leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 300, rollupIntervalMs: 200 };

/** The documents of a fixture as objects in team-x; none when the parser refuses the file. */
function documentsOf(file: string, text: string): KubeObject[] {
  return parseManifestText(path.join(world.root, file), text).flatMap((document) => {
    const object = document.object as KubeObject | undefined;
    if (document.parseError || !object || typeof object !== 'object' || typeof object.metadata?.name !== 'string') return [];
    return [{ ...object, metadata: { ...object.metadata, namespace: 'team-x' } }];
  });
}

before(async () => {
  fake = await FakeApiServer.start();
  fake.setNodeLabels(NODE, {});
  // Another team's Secrets, which team-x must never read.
  fake.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'other-tenant-identity', namespace: 'team-y' },
    type: 'Opaque',
    data: { password: Buffer.from(world.secrets.password).toString('base64'), token: Buffer.from(world.secrets.token).toString('base64') },
  } as KubeObject);
  for (const document of parseManifestText('healthy.yaml', HEALTHY_MANIFEST)) {
    const object = document.object as KubeObject;
    fake.apply({ ...object, metadata: { ...object.metadata, namespace: 'ops' } });
  }
  agent = await AgentProcess.start({
    deviceId: NODE,
    stateDir: world.dirs.state,
    env: { ...world.env, SENSORLET_TEST_FLEET_TIMINGS: JSON.stringify(FLEET_TIMINGS) },
    extraArgs: ['--kubeconfig', fake.writeKubeconfig(), '--node-name', NODE, ...world.operatorArgs, ...policyArgs({ secretNamespaces: ['team-x', 'ops'], tenantGrants: { 'team-y': ['globex'] } })],
  });
  await agent.waitForCondition('Sensor', 'healthy', 'Ready', 'True');
});

after(async () => {
  const code = await agent?.stop();
  await fake?.close();
  rmSync(world.root, { recursive: true, force: true });
  assert.equal(code, 0, `the agent exits 0 on SIGTERM after the corpus (stderr: ${agent?.stderr.slice(-2000)})`);
});

for (const file of HOSTILE_FILES) {
  test(`hostile in cluster mode: ${file}`, async (t) => {
    const fixture = hostileFixture(world, file);
    t.diagnostic(fixture.hostile);
    const objects = documentsOf(file, fixture.text);
    if (objects.length === 0) return t.diagnostic('refused by the parser: never reaches an API server');
    const health = pollHealth(agent.adminAddr);
    const before = readingsOf(await agent.resources(), 'healthy');
    for (const object of objects) fake.apply(object);
    try {
      await assertContained(agent, fixture, before);
    } finally {
      const slowest = await health.stop();
      writtenStatus.push(...fake.listObjects('NodeReport').map((report) => JSON.stringify(report)));
      for (const object of objects) {
        writtenStatus.push(JSON.stringify(fake.get(object.kind!, 'team-x', object.metadata.name)?.status ?? {}));
        fake.delete(object.kind!, 'team-x', object.metadata.name);
      }
      assert.ok(slowest <= 100, `/healthz answered in ${Math.round(slowest)} ms at worst (limit 100 ms)`);
    }
    assert.equal(existsSync(world.dirs.canary), false, `${file}: a canary file appeared: a program ran`);
  });
}

test('no seeded secret appears in any output channel, nor in the status written to the API server', async () => {
  assert.ok(writtenStatus.some((status) => status.includes('"namespace":"team-x"') && status.includes('"reason"')), 'the agent reported the hostile objects, with reasons, to the API server');
  assertNoSecrets(world.secrets, { ...(await outputChannels(agent)), 'API server status': writtenStatus.join('\n') });
  const secretReads = fake.requests.filter((request) => request.url.includes('/secrets')).map((request) => request.url);
  assert.ok(secretReads.every((request) => !request.includes('/namespaces/team-y/')), `no read of team-y's Secrets: ${secretReads.join(', ')}`);
});
