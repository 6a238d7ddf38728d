// The composition root: wires a source, the store, the controller, drivers, router, sinks, status
// and the admin API into one running agent.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StoredResource } from '../api/resource.js';
import { API_VERSION } from '../api/schemas.js';
import { ResourceStore } from '../controller/store.js';
import { StatusStore } from '../controller/status.js';
import { Manager } from '../controller/manager.js';
import type { Runtime } from '../controller/runtime.js';
import { createCertificateReconciler } from '../controller/reconcilers/certificate.js';
import { Router } from '../router/router.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import { createLogger, type Logger, type LogFormat } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { systemClock } from '../observability/clock.js';
import { createDirectorySource } from '../sources/directory.js';
import type { ResourceSource } from '../sources/source.js';
import { createDurableOutbox } from '../outbox/durable.js';
import { SequenceStore } from '../outbox/sequence.js';
import { createReportFilter } from '../drivers/report-filter.js';
import type { AgentUpdater } from '../ota/coordinator.js';
import { runningBuild } from '../ota/slots.js';
import { Gauge } from 'prom-client';
import { defaultPolicy, type OperatorPolicy } from '../policy/policy.js';
import { acquireStateDirLock, type StateDirLock } from '../storage/state-dir-lock.js';
import { WriteHealth } from '../storage/write-health.js';
import '../drivers/index.js';
import '../sinks/index.js';

export interface AgentOptions {
  manifests?: string;
  /** Cluster mode (loaded on demand: @kubernetes/client-node costs ~80 MB). */
  kubeconfig?: string;
  inCluster?: boolean;
  namespace?: string;
  stateDir: string;
  adminAddr: string;
  deviceId: string;
  nodeName: string;
  logLevel?: string;
  logFormat?: LogFormat;
  /** What only the operator may unlock; the safe defaults when absent. */
  policy?: OperatorPolicy;
  logger?: Logger;
  /** Standalone self-update (Firmware target: agent): the A/B slot updater from the CLI's launcher. */
  agentUpdater?: AgentUpdater;
}

export function defaultStateDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/sensorlet' : path.join(os.homedir(), '.local', 'state', 'sensorlet');
}

export function defaultDeviceId(): string {
  return os.hostname();
}

export interface Agent {
  adminAddress: string;
  runtime: Runtime;
  ready(): boolean;
  reload(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const logger = options.logger ?? createLogger({ level: options.logLevel, format: options.logFormat });
  mkdirSync(options.stateDir, { recursive: true });
  // Before anything is read or written: a second agent on this dir stops here.
  const lock = acquireStateDirLock(options.stateDir);
  if (!lock.held) logger.warn({ stateDir: options.stateDir, reason: lock.note }, 'running without the state dir lock');
  else if (lock.note) logger.warn({ stateDir: options.stateDir }, lock.note);
  try {
    return await startLocked(options, logger, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startLocked(options: AgentOptions, logger: Logger, lock: StateDirLock): Promise<Agent> {
  const metrics = new Metrics();
  // State writes the disk refuses (full, read-only) are counted and logged, never thrown.
  const writeHealth = new WriteHealth(logger.child({ component: 'state' }), (area, reason) => metrics.stateWriteErrors.inc({ area, reason }));
  const store = new ResourceStore(options.stateDir);
  store.onPersist = (error) => writeHealth.report('generations', error);
  const status = new StatusStore(options.nodeName, systemClock, options.stateDir);
  status.onPersist = (error) => writeHealth.report('status', error);
  const router = new Router();
  const policy = options.policy ?? defaultPolicy();
  const sequences = await SequenceStore.open(path.join(options.stateDir, 'sequences'));
  sequences.onPersist = (error) => writeHealth.report('sequences', error);
  if (sequences.recovery) {
    logger.warn({ reason: sequences.recovery.reason }, sequences.recovery.message);
    metrics.stateRecovered.inc({ area: 'sequences', reason: sequences.recovery.reason });
  }
  let nodeLabels: Record<string, string> = {};

  const runtime: Runtime = {
    device: options.deviceId,
    policy,
    store,
    status,
    router,
    logger,
    metrics,
    sensors: new Map(),
    sinks: new Map(),
    certificates: new Map(),
    nodeLabels: () => nodeLabels,
    ota: { stateDir: options.stateDir, agent: options.agentUpdater },
    enqueue: (key) => manager.queue.add(key),
    sensorDeps: {
      device: options.deviceId,
      clock: systemClock,
      logger: logger.child({ component: 'driver' }),
      metrics,
      status,
      sequences,
      policy: policy.drivers,
      shared: new Map(),
      reportFilter: createReportFilter,
    },
    sinkDeps: {
      logger: logger.child({ component: 'sink' }),
      metrics,
      status,
      createOutbox: (laneId, outboxOptions) =>
        createDurableOutbox(path.join(options.stateDir, 'outbox', laneId), outboxOptions, logger.child({ component: 'outbox', lane: laneId })),
    },
  };
  const manager = new Manager(runtime, createCertificateReconciler(runtime));
  // Which build runs (its package.json version, and its A/B slot after a self-update).
  const build = runningBuild();
  new Gauge({ name: 'sensorlet_build_info', help: 'The running build: version and A/B slot (installed: not updated through OTA).', labelNames: ['version', 'slot'], registers: [metrics.registry] })
    .set({ version: build.version, slot: build.slot ?? 'installed' }, 1);

  let source: ResourceSource;
  let closeCluster = async () => {};
  if (options.manifests) {
    source = createDirectorySource(path.resolve(options.manifests), logger.child({ component: 'source' }));
  } else {
    const { startClusterMode } = await import('./cluster.js');
    const cluster = await startClusterMode(options, runtime, logger);
    source = cluster.source;
    closeCluster = cluster.close;
    nodeLabels = cluster.nodeLabels();
    cluster.onNodeLabels((labels) => {
      nodeLabels = labels;
      manager.resyncAll();
    });
  }

  const admin: AdminServer = await startAdminServer(options.adminAddr, {
    ready: () => manager.initialSyncApplied,
    resources: () => listResources(runtime),
    reload: async () => {
      await source.resync();
      manager.resyncAll();
    },
    registry: metrics.registry,
  });
  await source.start(store);
  logger.info({ admin: admin.address, device: options.deviceId, node: options.nodeName, stateDir: options.stateDir }, 'sensorlet started');

  return {
    adminAddress: admin.address,
    runtime,
    ready: () => manager.initialSyncApplied,
    reload: async () => {
      await source.resync();
      manager.resyncAll();
    },
    async stop() {
      await source.stop();
      await manager.stop();
      // Drivers first, so that nothing new arrives while the outboxes seal and persist.
      await Promise.all([...runtime.sensors.values()].map((runner) => runner.stop()));
      await Promise.all([...runtime.sinks.values()].map((runner) => runner.stop()));
      await sequences.close();
      status.persist();
      await closeCluster();
      await admin.close();
      lock.release();
      logger.info('sensorlet stopped');
      logger.flush?.();
    },
  };
}

/** Every resource as a Kubernetes object with this agent's status entry. */
export function listResources(runtime: Runtime) {
  const toObject = (resource: StoredResource) => {
    const entry = runtime.status.nodeEntry(resource.key);
    return {
      apiVersion: API_VERSION,
      kind: resource.kind,
      metadata: { name: resource.name, namespace: resource.namespace, labels: resource.labels, generation: resource.generation },
      spec: resource.object?.spec ?? (resource.raw as { spec?: unknown }).spec,
      status: { nodes: entry ? [entry] : [] },
      origin: resource.origin,
    };
  };
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: runtime.store.list().map(toObject),
    errors: runtime.store.orphanErrors(),
  };
}
