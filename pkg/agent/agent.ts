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
import { directoryTrustStore, noTrustStore } from '../ota/trust.js';
import { Gauge } from 'prom-client';
import { defaultPolicy, type OperatorPolicy } from '../policy/policy.js';
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

/**
 * The policy with the agent's own folders added to what the file driver may never read: the state
 * dir (outboxes, status, downloads, sequence counters), the certificate folders and the Firmware
 * trust store (key material), none of which a manifest may read back.
 */
function withAgentFoldersDenied(policy: OperatorPolicy, stateDir: string): OperatorPolicy {
  const folders = [stateDir, ...policy.certificates.directories, ...(policy.firmware.trustDir ? [policy.firmware.trustDir] : [])];
  const denied = folders.map((folder) => `${path.resolve(folder).replace(/\/+$/, '')}/`);
  return { ...policy, drivers: { ...policy.drivers, fileDenyPrefixes: [...policy.drivers.fileDenyPrefixes, ...denied] } };
}
/** A driver's close (a serial port, a Modbus connection) may hang on a dead peer: shutdown does not wait longer. */
const DRIVER_STOP_GRACE_MS = 500;

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
  const metrics = new Metrics();
  const store = new ResourceStore(options.stateDir);
  const status = new StatusStore(options.nodeName, systemClock, options.stateDir);
  const router = new Router((sensorKey, count) => metrics.unrouted.inc({ sensor: sensorKey.split('/')[2] }, count));
  const policy = withAgentFoldersDenied(options.policy ?? defaultPolicy(), options.stateDir);
  const cluster = !options.manifests;
  if (policy.firmware.trustDir && policy.firmware.trustSecret) throw new Error('give one Firmware trust store: --firmware-trust-dir or --firmware-trust-secret');
  if (policy.firmware.trustSecret && !cluster) throw new Error('--firmware-trust-secret needs cluster mode; standalone, use --firmware-trust-dir DIR');
  // Cluster mode with --firmware-trust-secret replaces it with the Secret's store (cluster.ts).
  const trust = policy.firmware.trustDir ? directoryTrustStore(policy.firmware.trustDir, options.stateDir) : noTrustStore(cluster);
  const sequences = await SequenceStore.open(path.join(options.stateDir, 'sequences'));
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
    ota: { stateDir: options.stateDir, trust, agent: options.agentUpdater },
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
    source = createDirectorySource(path.resolve(options.manifests), logger.child({ component: 'source' }), {
      allowLinksOutside: policy.manifests.allowLinksOutside,
      onSkipped: (counts) => {
        metrics.manifestFilesSkipped.reset();
        for (const [reason, count] of counts) metrics.manifestFilesSkipped.set({ reason }, count);
      },
    });
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

  let stopping: Promise<void> | undefined;
  const reload = async () => {
    if (stopping) return;
    await source.resync();
    manager.resyncAll();
  };
  const admin: AdminServer = await startAdminServer(options.adminAddr, {
    ready: () => manager.initialSyncApplied,
    resources: () => listResources(runtime),
    reload,
    registry: metrics.registry,
  });
  await source.start(store);
  logger.info({ admin: admin.address, device: options.deviceId, node: options.nodeName, stateDir: options.stateDir }, 'sensorlet started');

  return {
    adminAddress: admin.address,
    runtime,
    ready: () => manager.initialSyncApplied,
    reload,
    async stop() {
      if (stopping) return stopping;
      stopping = (async () => {
        // Every step is bounded: SIGTERM must end the agent within Kubernetes' grace period whatever
        // a peer does (a broker down, a hung serial port), and persist what it holds on the way.
        await source.stop();
        await manager.stop();
        // Drivers first, so that nothing new arrives while the outboxes seal and persist.
        await settleWithin(DRIVER_STOP_GRACE_MS, [...runtime.sensors.values()].map((runner) => runner.stop()), (pending) =>
          logger.warn({ pending }, 'driver(s) did not close in time; stopping anyway'),
        );
        await Promise.all([...runtime.sinks.values()].map((runner) => runner.stop()));
        await sequences.close();
        status.persist();
        await closeCluster();
        await admin.close();
        logger.info('sensorlet stopped');
        logger.flush?.();
      })();
      return stopping;
    },
  };
}

/** Waits for `work`, but no longer than `ms`; `late` hears how many were still pending then. */
async function settleWithin(ms: number, work: Promise<unknown>[], late: (pending: number) => void): Promise<void> {
  let pending = work.length;
  const all = Promise.all(work.map((item) => item.catch(() => undefined).finally(() => pending--)));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)))]);
  clearTimeout(timer);
  if (timedOut) late(pending);
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
