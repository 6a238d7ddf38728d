// Fleet status end to end: real `sensorlet run --kubeconfig` agents against the in-test API server,
// with the fleet timings shortened (SENSORLET_TEST_FLEET_TIMINGS) so that lease expiry, failover and
// stale detection take seconds. The tests share the agents and run in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { AgentProcess, CLI } from '../support/agent.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { waitFor } from '../support/ports.js';
import { LeaderElector } from '../../pkg/fleet/lease.js';
import { connectKubernetes } from '../../pkg/sources/kubernetes/connection.js';
import { silentLogger } from '../../pkg/observability/logger.js';

const GROUP = 'sensorlet.io/v1alpha1';
const AGENT_NAMESPACE = 'sensorlet-system';
const TIMINGS = { reportIntervalMs: 1_000, heartbeatIntervalMs: 500, nodeGraceMs: 4_000, leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 400, leaderRenewIntervalMs: 1_000, rollupIntervalMs: 200, rewriteIntervalMs: 2_000 };
const NODES = ['node-a', 'node-b'];

let fake: FakeApiServer;
const agents = new Map<string, AgentProcess>();

function sensor(name: string, spec: Record<string, unknown> = {}, status?: Record<string, unknown>): KubeObject {
  return {
    apiVersion: GROUP,
    kind: 'Sensor',
    metadata: { name, namespace: 'default' },
    spec: { driver: { simulated: { waveform: 'counter', min: 0, step: 1 } }, interval: '500ms', ...spec },
    ...(status ? { status } : {}),
  };
}

const statusOf = (name: string) => (fake.get('Sensor', 'default', name)?.status ?? {}) as Record<string, any>;
const leaderLease = () => fake.get('Lease', AGENT_NAMESPACE, 'sensorlet-leader') as (KubeObject & { spec: { holderIdentity?: string; leaseTransitions?: number } }) | undefined;
const holder = () => leaderLease()?.spec.holderIdentity;

async function startAgent(node: string): Promise<AgentProcess> {
  const agent = await AgentProcess.start({
    deviceId: node,
    extraArgs: ['--kubeconfig', fake.writeKubeconfig(undefined, undefined, `token-${node}`), '--node-name', node, '--agent-namespace', AGENT_NAMESPACE],
    env: { SENSORLET_TEST_FLEET_TIMINGS: JSON.stringify(TIMINGS) },
  });
  agents.set(node, agent);
  return agent;
}

before(async () => {
  fake = await FakeApiServer.start();
  for (const node of NODES) fake.setNodeLabels(node, { role: node === 'node-a' ? 'edge' : 'core' });
  // Written by an earlier version: one status.nodes[] entry per agent, on the API server.
  fake.apply(sensor('legacy', {}, { nodes: [{ name: 'node-a', conditions: [{ type: 'Ready', status: 'True', reason: 'Reading' }] }, { name: 'gone-node' }] }));
  fake.apply(sensor('everywhere'));
  fake.apply(sensor('edge-only', { nodeSelector: { role: 'edge' } }));
  // Outside the default policy: Ready=False on every node, with the reason the roll-up must carry.
  fake.apply(sensor('refused', { driver: { command: { argv: ['/bin/echo', '1'] } } }));
  // Both agents start at the same moment and race for the leader lease.
  await Promise.all(NODES.map(startAgent));
});

after(async () => {
  for (const agent of agents.values()) {
    await agent.stop().catch(() => undefined);
    rmSync(agent.stateDir, { recursive: true, force: true });
  }
  await fake?.close();
});

test('two agents racing for the lease: exactly one leads, and keeps leading while it renews', async () => {
  const first = await waitFor(() => holder(), { timeoutMs: 10_000, what: 'a leader' });
  assert.ok(NODES.includes(first));
  const transitions = leaderLease()!.spec.leaseTransitions;
  // Several lease durations: the holder renews, the other never takes over.
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(holder(), first, 'the lease stays with one holder while it renews');
  }
  assert.equal(leaderLease()!.spec.leaseTransitions, transitions);
  const claims = [...agents.values()].filter((agent) => agent.stderr.includes('became the fleet leader') || agent.stdout.includes('became the fleet leader'));
  assert.equal(claims.length, 1, 'only one agent ever became leader');
});

test('ten candidates created in the same instant: one leader, the others lose on resourceVersion (409)', async () => {
  const connection = await connectKubernetes({ kubeconfigFile: fake.writeKubeconfig(undefined, undefined, 'token-race') });
  const logger = silentLogger();
  const leading = new Set<string>();
  let maxLeaders = 0;
  const electors = Array.from({ length: 10 }, (_, index) => new LeaderElector({
    connection,
    namespace: 'race',
    name: 'race-lease',
    identity: `candidate-${index}`,
    ...TIMINGS,
    renewIntervalMs: TIMINGS.leaderRenewIntervalMs,
    logger,
    onStartedLeading: () => {
      leading.add(`candidate-${index}`);
      maxLeaders = Math.max(maxLeaders, leading.size);
    },
    onStoppedLeading: () => leading.delete(`candidate-${index}`),
  }));
  const before = fake.callerStats.get('token-race')?.writes ?? 0;
  const conflictsBefore = fake.conflictAnswers;
  electors.forEach((elector) => elector.start());
  try {
    await waitFor(() => leading.size === 1, { timeoutMs: 5_000, what: 'one leader' });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(maxLeaders, 1, 'never two leaders at once');
    assert.equal(leading.size, 1);
    const writes = fake.requests.filter((request) => request.authorization === 'Bearer token-race' && request.method !== 'GET').length;
    assert.ok(writes > 1, 'several candidates tried to write');
    assert.ok((fake.callerStats.get('token-race')?.writes ?? 0) > before);
    assert.ok(fake.conflictAnswers - conflictsBefore >= 1, 'the losers were told 409');
    // The leader stops cleanly: it releases the lease and another candidate takes over well before it would expire.
    const [first] = leading;
    const stoppedAt = Date.now();
    await electors[Number(first.split('-')[1])].stop();
    await waitFor(() => leading.size === 1 && !leading.has(first), { timeoutMs: 5_000, what: 'a successor after the release' });
    assert.ok(Date.now() - stoppedAt < TIMINGS.leaseDurationMs + TIMINGS.retryPeriodMs * 2, 'released, not expired');
  } finally {
    await Promise.all(electors.map((elector) => elector.stop()));
  }
});

test('a leader cut off from the API server (its requests hang) stops acting at the renew deadline, before a candidate can take over', async () => {
  const proxy = await FaultProxy.start(Number(new URL(fake.url).port));
  const viaProxy = fake.writeKubeconfig(undefined, undefined, 'token-cut');
  writeFileSync(viaProxy, readFileSync(viaProxy, 'utf8').replace(fake.url, `http://127.0.0.1:${proxy.port}`));
  const events: { who: string; leading: boolean; at: number }[] = [];
  const elector = async (who: string, kubeconfigFile: string) => new LeaderElector({
    connection: await connectKubernetes({ kubeconfigFile }),
    namespace: 'cut',
    name: 'cut-lease',
    identity: who,
    ...TIMINGS,
    renewIntervalMs: TIMINGS.leaderRenewIntervalMs,
    logger: silentLogger(),
    onStartedLeading: () => events.push({ who, leading: true, at: Date.now() }),
    onStoppedLeading: () => events.push({ who, leading: false, at: Date.now() }),
  });
  const cut = await elector('cut-off', viaProxy);
  const other = await elector('other', fake.writeKubeconfig(undefined, undefined, 'token-other'));
  try {
    cut.start();
    await waitFor(() => cut.isLeader, { timeoutMs: 5_000, what: 'the first leader' });
    other.start();
    await new Promise((resolve) => setTimeout(resolve, TIMINGS.leaderRenewIntervalMs + 200));
    // A partition: the leader's connections stay open, its requests are never answered.
    proxy.set({ blackhole: true });
    // The last renewal that reached the API server (sent at renewTime on this same clock).
    let lastRenewal = 0;
    const lease = () => fake.get('Lease', 'cut', 'cut-lease')!.spec as { holderIdentity: string; renewTime: string };
    await waitFor(() => {
      if (lease().holderIdentity === 'cut-off') lastRenewal = Date.parse(lease().renewTime);
      return other.isLeader;
    }, { timeoutMs: TIMINGS.leaseDurationMs + TIMINGS.renewDeadlineMs + 3_000, intervalMs: 20, what: 'the other candidate takes over' });
    const stopped = events.find((event) => event.who === 'cut-off' && !event.leading);
    const started = events.find((event) => event.who === 'other' && event.leading)!;
    assert.ok(stopped, 'the cut-off leader stepped down though its renewal never returned');
    assert.ok(stopped.at - lastRenewal <= TIMINGS.renewDeadlineMs + 500, `stepped down ${stopped.at - lastRenewal} ms after its last renewal (renew deadline ${TIMINGS.renewDeadlineMs} ms)`);
    // Never two leaders: the margin is leaseDuration - renewDeadline (1 s here), less timer lag on a busy machine.
    assert.ok(started.at - stopped.at >= 250, `the successor started ${started.at - stopped.at} ms after the old leader stopped`);
  } finally {
    await proxy.stop();
    await Promise.all([cut.stop(), other.stop()]);
  }
});

test('the roll-up: counts, worst nodes with reasons, observedGeneration and READY n/m on each resource', async () => {
  await waitFor(() => statusOf('everywhere').readyOfDesired === '2/2', { timeoutMs: 15_000, what: `everywhere 2/2 (now ${JSON.stringify(statusOf('everywhere'))})` });
  const everywhere = statusOf('everywhere');
  assert.deepEqual({ desired: everywhere.desired, ready: everywhere.ready, degraded: everywhere.degraded, unknown: everywhere.unknown, observedGeneration: everywhere.observedGeneration, worstNodes: everywhere.worstNodes }, {
    desired: 2, ready: 2, degraded: 0, unknown: 0, observedGeneration: 1, worstNodes: [],
  });
  await waitFor(() => statusOf('edge-only').readyOfDesired === '1/1', { timeoutMs: 10_000, what: 'edge-only runs on node-a only: 1/1' });
  await waitFor(() => statusOf('refused').desired === 2, { timeoutMs: 10_000, what: 'refused on both nodes' });
  const refused = statusOf('refused');
  assert.equal(refused.ready, 0);
  assert.equal(refused.readyOfDesired, '0/2');
  // A driver that fails marks its Sensor Degraded (drivers/runner.ts): the roll-up counts it so.
  await waitFor(() => statusOf('refused').degraded === 2, { timeoutMs: 10_000, what: 'refused Degraded on both nodes' });
  assert.deepEqual(statusOf('refused').worstNodes.map((node: any) => [node.name, node.state, node.reason]), [['node-a', 'Degraded', 'CommandNotAllowed'], ['node-b', 'Degraded', 'CommandNotAllowed']]);
  assert.match(refused.worstNodes[0].message, /--allow/);
  // A spec change: observedGeneration follows once both nodes acted on it.
  fake.apply(sensor('everywhere', { interval: '400ms' }));
  await waitFor(() => statusOf('everywhere').observedGeneration === 2, { timeoutMs: 10_000, what: 'observedGeneration 2 rolled up' });
});

test('upgrade: per-node entries written by an earlier version are removed from status', async () => {
  await waitFor(() => statusOf('legacy').desired === 2 && statusOf('legacy').nodes === undefined, { timeoutMs: 10_000, what: `legacy status.nodes removed (now ${JSON.stringify(statusOf('legacy'))})` });
  // During a rolling upgrade an agent of the earlier version still applies its entry (server-side
  // apply, its own field manager): the periodic rewrite removes it though the roll-up did not change.
  const applied = await fetch(`${fake.url}/apis/sensorlet.io/v1alpha1/namespaces/default/sensors/legacy/status?fieldManager=sensorlet/old-node&force=true`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/apply-patch+yaml' },
    body: JSON.stringify({ apiVersion: GROUP, kind: 'Sensor', metadata: { name: 'legacy', namespace: 'default' }, status: { nodes: [{ name: 'old-node', conditions: [] }] } }),
  });
  assert.equal(applied.status, 200);
  assert.equal(statusOf('legacy').nodes.length, 1);
  await waitFor(() => statusOf('legacy').nodes === undefined && statusOf('legacy').desired === 2, { timeoutMs: TIMINGS.rewriteIntervalMs + 3_000, what: 'the entry an old agent wrote during the upgrade removed' });
});

test('narrow watches: only the leader watches reports and heartbeats; every agent watches only its own Node', async () => {
  const leader = holder()!;
  const follower = NODES.find((node) => node !== leader)!;
  const watchesOf = (node: string) => fake.requests.filter((request) => request.authorization === `Bearer token-${node}` && /[?&]watch=(true|1)/.test(request.url)).map((request) => decodeURIComponent(request.url));
  const followerWatches = watchesOf(follower);
  assert.ok(followerWatches.length > 0);
  assert.ok(!followerWatches.some((url) => url.includes('/nodereports') || url.includes('/leases')), `the follower watches no reports or leases: ${followerWatches.join(' ')}`);
  const nodeWatches = followerWatches.filter((url) => url.includes('/api/v1/nodes'));
  assert.ok(nodeWatches.length > 0 && nodeWatches.every((url) => url.includes(`fieldSelector=metadata.name=${follower}`)), 'the follower watches its own Node only');
  const leaderWatches = watchesOf(leader);
  assert.ok(leaderWatches.some((url) => url.includes('/leases') && url.includes('labelSelector=sensorlet.io/heartbeat=true')), 'the leader watches heartbeat Leases by label');
  assert.ok(leaderWatches.some((url) => url.includes('/nodereports') && url.includes('labelSelector=sensorlet.io/node')), 'the leader watches reports');
  // Steady state: a follower is sent nothing for the others' reports and heartbeats.
  const before = fake.callerStats.get(`token-${follower}`)!.watchEvents;
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  assert.ok(fake.callerStats.get(`token-${follower}`)!.watchEvents - before <= 2, 'a follower gets no event per heartbeat or report of the fleet');
});

test("the leader's writes in steady state: its lease on the renew interval and nothing else", async () => {
  const leader = holder()!;
  const follower = NODES.find((node) => node !== leader)!;
  const writesOf = (node: string) => fake.requests.filter((request) => request.authorization === `Bearer token-${node}` && request.method !== 'GET').map((request) => `${request.method} ${decodeURIComponent(request.url).split('?')[0]}`);
  const leaderBefore = writesOf(leader).length;
  const followerBefore = writesOf(follower).length;
  const startedAt = Date.now();
  // Two status comparisons (rewriteIntervalMs) fall in the window: an unchanged roll-up is not written again.
  await new Promise((resolve) => setTimeout(resolve, 2 * TIMINGS.rewriteIntervalMs + 500));
  const elapsed = Date.now() - startedAt;
  const leaderWrites = writesOf(leader).slice(leaderBefore);
  const followerWrites = writesOf(follower).slice(followerBefore);
  assert.ok(leaderWrites.length <= Math.ceil(elapsed / TIMINGS.leaderRenewIntervalMs) + 1, `the leader wrote ${leaderWrites.length} times in ${elapsed} ms (renew interval ${TIMINGS.leaderRenewIntervalMs} ms): ${leaderWrites.join(', ')}`);
  assert.ok(leaderWrites.every((write) => write.endsWith('/leases/sensorlet-leader')), `the leader writes its lease only (no heartbeat, no unchanged roll-up): ${leaderWrites.join(', ')}`);
  assert.ok(followerWrites.length >= Math.floor(elapsed / TIMINGS.heartbeatIntervalMs) - 1 && followerWrites.every((write) => write.endsWith(`/leases/sensorlet-node-${follower}`)), `the follower renews its heartbeat only: ${followerWrites.join(', ')}`);
  // Its heartbeat Lease paused for longer than the grace period, the leader's node is not Unknown.
  assert.deepEqual([statusOf('everywhere').unknown, statusOf('everywhere').readyOfDesired], [0, '2/2']);
});

test('heartbeat Leases renew; NodeReports are coalesced to one write per interval', async () => {
  const renewTime = (node: string) => (fake.get('Lease', AGENT_NAMESPACE, `sensorlet-node-${node}`)?.spec as { renewTime?: string } | undefined)?.renewTime;
  // A follower's heartbeat (the leader's sign of life is the leader lease).
  const follower = NODES.find((node) => node !== holder())!;
  const first = renewTime(follower);
  assert.ok(first);
  await waitFor(() => renewTime(follower) !== first, { timeoutMs: 3_000, what: 'heartbeat renewed' });
  const report = fake.get('NodeReport', AGENT_NAMESPACE, 'node-a') as Record<string, any>;
  assert.equal(report.nodeName, 'node-a');
  assert.deepEqual(report.metadata.ownerReferences.map((owner: any) => [owner.kind, owner.name]), [['Node', 'node-a']]);
  assert.deepEqual(report.resources.map((resource: any) => resource.name).sort(), ['edge-only', 'everywhere', 'legacy', 'refused']);
  // Many changes (a Sensor added and changed several times) inside one interval: at most one write per interval.
  const writesOf = (node: string) => fake.requests.filter((request) => request.authorization === `Bearer token-${node}` && request.url.includes('/nodereports') && request.method !== 'GET');
  const beforeWrites = writesOf('node-a').length;
  const startedAt = Date.now();
  fake.apply(sensor('flapping', { interval: '200ms' }));
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    fake.apply(sensor('flapping', { interval: `${200 + (i + 1) * 10}ms` }));
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const writes = writesOf('node-a').length - beforeWrites;
  const elapsed = Date.now() - startedAt;
  assert.ok(writes <= Math.ceil(elapsed / TIMINGS.reportIntervalMs) + 1, `${writes} report writes in ${elapsed} ms (interval ${TIMINGS.reportIntervalMs} ms)`);
  await waitFor(() => statusOf('flapping').readyOfDesired === '2/2', { timeoutMs: 10_000, what: 'flapping rolled up' });
});

test('a leader killed mid-roll-up: another takes over, finishes the roll-up and marks the dead node Unknown', async () => {
  const leader = holder()!;
  const survivor = NODES.find((node) => node !== leader)!;
  // A change the leader has to roll up, then kill -9 before it can (or while it does).
  fake.apply(sensor('everywhere', { interval: '300ms' }));
  // Its last heartbeat came before the kill started: the grace period runs from then at the latest
  // (waiting for the process to exit can take a while on a loaded machine).
  const killStartedAt = Date.now();
  await agents.get(leader)!.kill();
  const killedAt = Date.now();
  await waitFor(() => holder() === survivor, { timeoutMs: 10_000, what: 'failover to the survivor' });
  const failoverMs = Date.now() - killedAt;
  assert.ok(failoverMs <= TIMINGS.leaseDurationMs + 4 * TIMINGS.retryPeriodMs + 1_000, `failover in ${failoverMs} ms`);
  await waitFor(() => statusOf('everywhere').unknown === 1, { timeoutMs: 10_000, what: `the killed node Unknown (now ${JSON.stringify(statusOf('everywhere'))})` });
  const status = statusOf('everywhere');
  assert.ok(Date.now() - killStartedAt >= TIMINGS.nodeGraceMs - TIMINGS.heartbeatIntervalMs, `not before the grace period: Unknown ${Date.now() - killStartedAt} ms after the kill started`);
  assert.equal(status.readyOfDesired, '1/2');
  assert.deepEqual([status.worstNodes[0].name, status.worstNodes[0].state, status.worstNodes[0].reason], [leader, 'Unknown', 'NodeHeartbeatStale']);
  // The survivor's part of the pending change is rolled up; the dead node's generation is not counted.
  await waitFor(() => statusOf('everywhere').observedGeneration === 3, { timeoutMs: 5_000, what: `observedGeneration 3 (now ${JSON.stringify(statusOf('everywhere'))})` });
});

test("a deleted Node: its report and heartbeat go with it, and it leaves every roll-up", async () => {
  const dead = NODES.find((node) => node !== holder())!;
  assert.ok(fake.delete('Node', undefined, dead));
  await waitFor(() => statusOf('everywhere').desired === 1, { timeoutMs: 5_000, what: 'the deleted node left the roll-up' });
  assert.equal(fake.get('NodeReport', AGENT_NAMESPACE, dead), undefined, 'the report is deleted with its Node');
  assert.equal(fake.get('Lease', AGENT_NAMESPACE, `sensorlet-node-${dead}`), undefined, 'the heartbeat Lease is deleted with its Node');
  assert.equal(statusOf('everywhere').readyOfDesired, '1/1');
});

test('SIGTERM: the leader releases the lease and exits within 2 s', async () => {
  const leader = holder()!;
  const agent = agents.get(leader)!;
  const startedAt = Date.now();
  assert.equal(await agent.stop(), 0);
  assert.ok(Date.now() - startedAt < 2_000, `stopped in ${Date.now() - startedAt} ms`);
  assert.equal(holder(), '', 'released: holderIdentity empty, so a successor need not wait out the lease');
  assert.equal((leaderLease()!.spec as { leaseDurationSeconds?: number }).leaseDurationSeconds, 1);
});

test('standalone: the same status shape for the one node, in the admin API and in `sensorlet get`', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-fleet-standalone-'));
  writeFileSync(path.join(dir, 'sensors.yaml'), [sensor('alone'), sensor('refused-alone', { driver: { command: { argv: ['/bin/echo', '1'] } } })].map((doc) => JSON.stringify(doc)).join('\n---\n'));
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'gateway-1' });
  try {
    await agent.waitForCondition('Sensor', 'alone', 'Ready', 'True');
    const alone = (await agent.resource('Sensor', 'alone'))!.status as Record<string, any>;
    assert.deepEqual([alone.desired, alone.ready, alone.degraded, alone.unknown, alone.readyOfDesired, alone.observedGeneration, alone.worstNodes], [1, 1, 0, 0, '1/1', 1, []]);
    assert.equal(alone.nodes[0].name, 'gateway-1', "the agent's own entry, with its facts, as before");
    await waitFor(async () => ((await agent.resource('Sensor', 'refused-alone'))!.status as Record<string, any>).degraded === 1, { what: 'refused-alone degraded' });
    const refused = (await agent.resource('Sensor', 'refused-alone'))!.status as Record<string, any>;
    assert.deepEqual(refused.worstNodes.map((node: any) => [node.name, node.state, node.reason]), [['gateway-1', 'Degraded', 'CommandNotAllowed']]);
    const table = spawnSync(process.execPath, [CLI, 'get', 'sensors', '--admin-addr', agent.adminAddr], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^default\s+alone\s+1\/1\s/m);
    assert.match(table.stdout, /^default\s+refused-alone\s+0\/1\s/m);
  } finally {
    await agent.stop();
    rmSync(agent.stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
