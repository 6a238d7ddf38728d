// One agent's part of the fleet (cluster mode): its NodeReport, its heartbeat Lease, its candidacy
// for leader, and, while elected, the roll-up of every report into the resources' status.
//
//   const fleet = startFleet({ connection, namespace, nodeName, nodeUid, resources: store, timings, logger });
//   fleet.report.set({ kind, namespace, name }, outcomeOf(entry));   // on every status change
//   fleet.isLeader; fleet.leader?.computeAll();
//   await fleet.close();   // last report (bounded), release the leader lease
import type { Logger } from '../observability/logger.js';
import type { KubernetesConnection } from '../sources/kubernetes/connection.js';
import { FleetLeader, type ResourceCatalog } from './leader.js';
import { LeaderElector, NodeHeartbeat } from './lease.js';
import { NodeReportWriter } from './report.js';
import type { FleetTimings } from './timings.js';

export const LEADER_LEASE_NAME = 'sensorlet-leader';

export interface FleetOptions {
  connection: KubernetesConnection;
  /** The agent namespace: reports, heartbeats and the leader lease live there. */
  namespace: string;
  nodeName: string;
  nodeUid(): string | undefined;
  resources: ResourceCatalog;
  timings: FleetTimings;
  logger: Logger;
  /** Called when this agent starts or stops leading (metrics, tests). */
  onLeadership?(leading: boolean): void;
}

export interface Fleet {
  readonly report: NodeReportWriter;
  readonly heartbeat: NodeHeartbeat;
  readonly elector: LeaderElector;
  /** The roll-up, while this agent leads. */
  readonly leader: FleetLeader | undefined;
  readonly isLeader: boolean;
  close(): Promise<void>;
  /** Stops without another write, as kill -9 would leave things (benchmarks: failover, stale detection). */
  abandon(): Promise<void>;
}

export function startFleet(options: FleetOptions): Fleet {
  const { connection, namespace, nodeName, timings, logger } = options;
  const report = new NodeReportWriter({ connection, namespace, nodeName, nodeUid: options.nodeUid, intervalMs: timings.reportIntervalMs, logger: logger.child({ component: 'node-report' }) });
  const heartbeat = new NodeHeartbeat({
    connection,
    namespace,
    nodeName,
    nodeUid: options.nodeUid,
    intervalMs: timings.heartbeatIntervalMs,
    graceMs: timings.nodeGraceMs,
    logger: logger.child({ component: 'heartbeat' }),
  });
  let leader: FleetLeader | undefined;
  /** Leadership changes are applied one after the other (a stop finishes before the next start). */
  let transition: Promise<void> = Promise.resolve();
  const elector = new LeaderElector({
    connection,
    namespace,
    name: LEADER_LEASE_NAME,
    identity: nodeName,
    leaseDurationMs: timings.leaseDurationMs,
    renewDeadlineMs: timings.renewDeadlineMs,
    retryPeriodMs: timings.retryPeriodMs,
    renewIntervalMs: timings.leaderRenewIntervalMs,
    logger: logger.child({ component: 'leader-election' }),
    onStartedLeading() {
      // While leading, the leader lease is this node's sign of life: one Lease renewed, not two.
      heartbeat.pause();
      const predecessor = elector.predecessor;
      transition = transition.then(async () => {
        leader = new FleetLeader({
          connection,
          namespace,
          resources: options.resources,
          nodeGraceMs: timings.nodeGraceMs,
          rollupIntervalMs: timings.rollupIntervalMs,
          rewriteIntervalMs: timings.rewriteIntervalMs,
          selfNode: nodeName,
          predecessor,
          logger: logger.child({ component: 'fleet-leader' }),
        });
        options.onLeadership?.(true);
        await leader.start();
      });
    },
    onStoppedLeading() {
      // At once: the next leader counts this node alive only while it renews one of its Leases.
      heartbeat.resume();
      transition = transition.then(async () => {
        const stopping = leader;
        leader = undefined;
        options.onLeadership?.(false);
        await stopping?.stop();
      });
    },
  });
  report.start();
  heartbeat.start();
  elector.start();
  return {
    report,
    heartbeat,
    elector,
    get leader() {
      return leader;
    },
    get isLeader() {
      return elector.isLeader;
    },
    async close() {
      const wasLeading = elector.isLeader;
      heartbeat.stop();
      // Shutdown must end within 2 s even with the API server unreachable: the last report and the
      // lease release get a bounded chance; a lease not released expires on its own. A leader
      // renews its heartbeat once as it releases the lease, so its successor dates it from now,
      // as it would a follower that stopped.
      const done = (async () => {
        await Promise.all([report.close(), elector.stop(), wasLeading ? heartbeat.renewOnce() : undefined]);
        await transition;
        await leader?.stop();
      })();
      await Promise.race([done, new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref())]);
    },
    async abandon() {
      heartbeat.stop();
      report.abandon();
      await elector.stop({ release: false });
      await transition;
      await leader?.stop();
    },
  };
}
