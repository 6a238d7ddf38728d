// Bench: the fleet status at N simulated nodes, in one process against the in-test API server. Each
// simulated agent runs the real cluster side of an agent — the Kubernetes source (informers on the
// four kinds and its own Node) feeding a real ResourceStore, and the fleet (NodeReport writer,
// heartbeat Lease, leader election, and the roll-up while elected) with the production timings.
// Only the drivers are left out: each node reports its Sensors Ready, and the bench flips some.
//
//   import { benchFleet } from './fleet.js';
//   const result = await benchFleet({ nodes: 100 });    // ~3 min
//
// Standalone: `node dist/test/bench/fleet.js [N...]` prints the figures for each N (default 10 100 1000).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeApiServer, type CallerStats, type KubeObject } from '../support/fake-apiserver.js';
import { waitFor } from '../support/ports.js';
import { median, sleep } from './harness.js';
import { ResourceStore } from '../../pkg/controller/store.js';
import { startFleet, LEADER_LEASE_NAME, type Fleet } from '../../pkg/fleet/fleet.js';
import { DEFAULT_FLEET_TIMINGS } from '../../pkg/fleet/timings.js';
import { connectKubernetes } from '../../pkg/sources/kubernetes/connection.js';
import { createKubernetesSource, type KubernetesSource } from '../../pkg/sources/kubernetes/source.js';
import { silentLogger } from '../../pkg/observability/logger.js';

export interface FleetBenchOptions {
  nodes: number;
  /** Sensors every node runs; default 20. */
  sensors?: number;
  /** The steady-state window writes and watch events are counted over; default 60 s. */
  steadySeconds?: number;
}

export interface FleetBenchResult {
  nodes: number;
  /** Per non-leader agent, per minute, in steady state: median and worst. */
  writesPerMin: { median: number; max: number };
  readsPerMin: { median: number; max: number };
  watchEventsPerMin: { median: number; max: number };
  /** The leader's writes per minute in steady state (its lease; no heartbeat while it leads): within the same budget. */
  leaderWritesPerMin: number;
  leaderWatchEventsPerMin: number;
  largestObjectBytes: number;
  /** A node's condition flip → the resource's roll-up on the API server (ms, median of 3). */
  rollupLatencyMs: number;
  /** A node's agent killed → its nodes counted Unknown (ms). */
  staleDetectionMs: number;
  /** A Node deleted → its report gone and the roll-up without it (ms). */
  deletedNodeMs: number;
  /** The leader killed (no release) → another agent holds the lease (ms). */
  failoverMs: number;
  /** ...and has rolled up a change made after the kill (ms). */
  failoverRollupMs: number;
  /** ...and counts the killed leader's node Unknown (ms; its last sign of life was the leader lease). */
  killedLeaderUnknownMs: number;
  /** Leaders that stepped down before the leader was killed (0: the lease was renewed in time throughout). */
  stepDowns: number;
}

const NAMESPACE = 'default';
const AGENT_NAMESPACE = 'sensorlet-system';

interface SimulatedAgent {
  node: string;
  token: string;
  source: KubernetesSource;
  store: ResourceStore;
  fleet: Fleet;
  alive: boolean;
}

const sensor = (name: string): KubeObject => ({
  apiVersion: 'sensorlet.io/v1alpha1',
  kind: 'Sensor',
  metadata: { name, namespace: NAMESPACE },
  spec: { driver: { simulated: { waveform: 'counter' } }, interval: '1s' },
});

export async function benchFleet(options: FleetBenchOptions): Promise<FleetBenchResult> {
  const count = options.nodes;
  const sensors = options.sensors ?? 20;
  const steadyMs = (options.steadySeconds ?? 60) * 1000;
  const fake = await FakeApiServer.start();
  fake.recordRequests = false;
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-fleet-bench-'));
  const agents: SimulatedAgent[] = [];
  let stepDowns = 0;
  const logger = silentLogger();
  const statusOf = (name: string) => (fake.get('Sensor', NAMESPACE, name)?.status ?? {}) as { desired?: number; ready?: number; degraded?: number; unknown?: number };
  const holder = () => (fake.get('Lease', AGENT_NAMESPACE, LEADER_LEASE_NAME)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
  try {
    for (let i = 0; i < sensors; i++) fake.apply(sensor(`sensor-${i}`));
    const nodes = Array.from({ length: count }, (_, i) => `node-${String(i).padStart(4, '0')}`);
    for (const node of nodes) fake.setNodeLabels(node, { 'kubernetes.io/hostname': node });

    const startAgent = async (node: string): Promise<SimulatedAgent> => {
      const token = `token-${node}`;
      const connection = await connectKubernetes({ kubeconfigFile: fake.writeKubeconfig(mkdtempSync(path.join(dir, 'k-')), undefined, token) });
      const store = new ResourceStore();
      const source = await createKubernetesSource({ connection, namespace: NAMESPACE, secretsNamespaces: [], nodeName: node, logger, resyncIntervalMs: 0 });
      await source.start(store);
      const fleet = startFleet({ connection, namespace: AGENT_NAMESPACE, nodeName: node, nodeUid: () => source.nodeUid(), resources: { list: () => store.list() }, timings: DEFAULT_FLEET_TIMINGS, logger, onLeadership: (leading) => void (leading || stepDowns++) });
      // What the drivers would report: every Sensor Ready on this node.
      const reportAll = () => {
        for (const resource of store.list('Sensor')) fleet.report.set(resource, { state: 'Ready', reason: 'Reading', observedGeneration: resource.generation });
      };
      store.onChange(reportAll);
      reportAll();
      return { node, token, source, store, fleet, alive: true };
    };
    // In batches, as a DaemonSet rollout would start them (not all in the same millisecond).
    for (let i = 0; i < nodes.length; i += 50) agents.push(...(await Promise.all(nodes.slice(i, i + 50).map(startAgent))));

    const everyRollup = (check: (status: ReturnType<typeof statusOf>) => boolean) => () => Array.from({ length: sensors }, (_, i) => statusOf(`sensor-${i}`)).every(check);
    await waitFor(everyRollup((status) => status.desired === count && status.ready === count), { timeoutMs: 180_000, intervalMs: 500, what: `every Sensor rolled up ${count}/${count}` });
    // Settle: the start-up burst (first reports, first roll-ups) is not steady state.
    await sleep(DEFAULT_FLEET_TIMINGS.reportIntervalMs + 2_000);

    // Steady state.
    const snapshot = () => new Map(agents.map((agent) => [agent.node, { ...(fake.callerStats.get(agent.token) ?? { writes: 0, reads: 0, watchEvents: 0 }) }]));
    const before = snapshot();
    const started = Date.now();
    await sleep(steadyMs);
    const after = snapshot();
    const minutes = (Date.now() - started) / 60_000;
    const leaderNode = holder();
    const perMin = (node: string, field: keyof CallerStats) => (after.get(node)![field] - before.get(node)![field]) / minutes;
    const followers = agents.filter((agent) => agent.node !== leaderNode).map((agent) => agent.node);
    const stat = (field: keyof CallerStats) => {
      const values = followers.map((node) => perMin(node, field));
      return { median: median(values), max: Math.max(...values) };
    };
    const result: Partial<FleetBenchResult> = {
      nodes: count,
      writesPerMin: stat('writes'),
      readsPerMin: stat('reads'),
      watchEventsPerMin: stat('watchEvents'),
      leaderWritesPerMin: leaderNode ? perMin(leaderNode, 'writes') : NaN,
      leaderWatchEventsPerMin: leaderNode ? perMin(leaderNode, 'watchEvents') : NaN,
    };

    // Roll-up latency: three nodes each flip one Sensor to Degraded.
    const latencies: number[] = [];
    const flippers = agents.filter((agent) => agent.node !== leaderNode).slice(0, 3);
    for (const [index, agent] of flippers.entries()) {
      const name = `sensor-${index}`;
      const at = Date.now();
      agent.fleet.report.set({ kind: 'Sensor', namespace: NAMESPACE, name }, { state: 'Degraded', reason: 'DriverError', message: 'bench' });
      await waitFor(() => statusOf(name).degraded === 1, { timeoutMs: 60_000, intervalMs: 50, what: `${name} degraded on ${agent.node}` });
      latencies.push(Date.now() - at);
    }
    result.rollupLatencyMs = median(latencies);

    // A deleted Node: its report goes (owner reference) and the roll-up no longer counts it.
    const deleted = agents.find((agent) => agent.node !== leaderNode && !flippers.includes(agent))!;
    let at = Date.now();
    fake.delete('Node', undefined, deleted.node);
    await waitFor(() => !fake.get('NodeReport', AGENT_NAMESPACE, deleted.node) && everyRollup((status) => status.desired === count - 1)(), { timeoutMs: 60_000, intervalMs: 50, what: 'the deleted Node left the roll-up' });
    result.deletedNodeMs = Date.now() - at;
    await kill(deleted);

    // A killed node (kill -9: no last report, no lease release): Unknown once its heartbeat is stale.
    const dead = agents.find((agent) => agent.alive && agent.node !== leaderNode)!;
    at = Date.now();
    await kill(dead);
    await waitFor(everyRollup((status) => status.unknown === 1), { timeoutMs: 120_000, intervalMs: 100, what: 'the killed node Unknown' });
    result.staleDetectionMs = Date.now() - at;

    // The leader killed: another agent takes the lease and rolls up a change made after the kill.
    const leader = agents.find((agent) => agent.node === leaderNode)!;
    result.stepDowns = stepDowns;
    at = Date.now();
    await kill(leader);
    const changer = agents.find((agent) => agent.alive)!;
    changer.fleet.report.set({ kind: 'Sensor', namespace: NAMESPACE, name: 'sensor-5' }, { state: 'NotReady', reason: 'Bench' });
    await waitFor(() => holder() !== leaderNode && holder() !== undefined, { timeoutMs: 120_000, intervalMs: 50, what: 'a new leader' });
    result.failoverMs = Date.now() - at;
    await waitFor(() => statusOf('sensor-5').ready === count - 3, { timeoutMs: 120_000, intervalMs: 50, what: 'the change rolled up by the new leader' });
    result.failoverRollupMs = Date.now() - at;
    // The old leader wrote no heartbeat while it led: the new one dates it by the last lease renewal it saw.
    await waitFor(everyRollup((status) => status.unknown === 2), { timeoutMs: 120_000, intervalMs: 100, what: 'the killed leader Unknown' });
    result.killedLeaderUnknownMs = Date.now() - at;
    result.largestObjectBytes = fake.largestObjectBytes;
    return result as FleetBenchResult;
  } catch (error) {
    throw new Error(`${String(error)} (leaders that had stepped down: ${stepDowns}; lease holder now: ${holder()})`);
  } finally {
    await Promise.all(agents.filter((agent) => agent.alive).map((agent) => kill(agent)));
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function kill(agent: SimulatedAgent): Promise<void> {
  if (!agent.alive) return;
  agent.alive = false;
  await agent.fleet.abandon();
  await agent.source.stop();
}

export function printFleet(result: FleetBenchResult, report: (figure: string, value: string, target?: string, ok?: boolean) => void): void {
  const n = `fleet N=${result.nodes}`;
  const fixed = (value: number, digits = 1) => value.toFixed(digits);
  report(`${n}: API writes/min per node, steady (median; worst)`, `${fixed(result.writesPerMin.median)}; ${fixed(result.writesPerMin.max)}`, '≤ 12', result.writesPerMin.max <= 12);
  report(`${n}: watch events/min per non-leader agent, steady (median; worst)`, `${fixed(result.watchEventsPerMin.median)}; ${fixed(result.watchEventsPerMin.max)}`, '≤ 12', result.watchEventsPerMin.max <= 12);
  report(`${n}: API reads/min per non-leader agent (leader-lease GETs; median)`, fixed(result.readsPerMin.median));
  report(`${n}: the leader's API writes/min, steady`, fixed(result.leaderWritesPerMin), '≤ 12', result.leaderWritesPerMin <= 12);
  report(`${n}: the leader's watch events/min`, fixed(result.leaderWatchEventsPerMin));
  report(`${n}: largest object (bytes)`, String(result.largestObjectBytes), '< 100 KB', result.largestObjectBytes < 100 * 1024);
  report(`${n}: roll-up latency, condition flip → status (ms, median of 3)`, String(result.rollupLatencyMs), '≤ 15 s', result.rollupLatencyMs <= 15_000);
  report(`${n}: killed node → Unknown (ms)`, String(result.staleDetectionMs), '≤ 45 s', result.staleDetectionMs <= 45_000);
  report(`${n}: deleted Node → report gone and out of the roll-up (ms)`, String(result.deletedNodeMs), '≤ 15 s', result.deletedNodeMs <= 15_000);
  report(`${n}: leader killed → new leader (ms); → change rolled up (ms)`, `${result.failoverMs}; ${result.failoverRollupMs}`, '≤ 30 s', result.failoverMs <= 30_000);
  report(`${n}: leader step-downs before the leader was killed`, String(result.stepDowns), '0', result.stepDowns === 0);
  report(`${n}: leader killed → its node Unknown (ms)`, String(result.killedLeaderUnknownMs), '≤ 45 s', result.killedLeaderUnknownMs <= 45_000);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  for (const nodes of sizes.length ? sizes : [10, 100, 1000]) {
    printFleet(await benchFleet({ nodes, steadySeconds: Number(process.env.FLEET_STEADY_SECONDS ?? 60) }), (figure, value, target, ok) =>
      console.log(`${figure}: ${value}${target ? `   (target ${target}: ${ok ? 'met' : 'NOT met'})` : ''}`),
    );
  }
  process.exit(0);
}
