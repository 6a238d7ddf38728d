// The composition root: wires a source, the store, the controller, drivers, router, sinks, status
// and the admin API into one running agent.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseKey, type StoredResource } from '../api/resource.js';
import { API_VERSION } from '../api/schemas.js';
import { prepareAllKinds } from '../api/validate.js';
import { ResourceStore } from '../controller/store.js';
import { StatusStore } from '../controller/status.js';
import { Manager } from '../controller/manager.js';
import type { Runtime } from '../controller/runtime.js';
import { createCertificateReconciler } from '../controller/reconcilers/certificate.js';
import { applyRemoteCommand } from '../controller/remote-commands.js';
import { Router } from '../router/router.js';
import { checkAdminExposure, parseHostPort, startAdminServer, type AdminServer, type ResourceList } from '../admin/server.js';
import { anyOf, isLoopbackHost, tokenFileAuthenticator, type Authenticator } from '../admin/auth.js';
import { FlagError, messageOf, reasonOf } from '../api/errors.js';
import { redactCredentials, redactCredentialsIn } from '../api/redact.js';
import { coalesced } from './coalesce.js';
import { ReadingHistory } from '../console/history.js';
import { ConsoleFeed } from '../console/feed.js';
import { createLogger, type Logger, type LogFormat } from '../observability/logger.js';
import { Metrics, resourceLabels } from '../observability/metrics.js';
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
import { acquireStateDirLock, type StateDirLock } from '../storage/state-dir-lock.js';
import { WriteHealth } from '../storage/write-health.js';
import { outcomeOf, rollUp } from '../fleet/rollup.js';
import '../drivers/index.js';
import '../sinks/index.js';
import '../actuators/index.js';

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
 * The policy with the agent's own files added to what the file driver may never read: the state
 * dir (outboxes, status, downloads, sequence counters), the certificate and credential folders, the
 * Firmware trust store and the admin token, none of which a manifest may read back.
 */
function withAgentFoldersDenied(policy: OperatorPolicy, stateDir: string): OperatorPolicy {
  const folders = [stateDir, ...policy.certificates.directories, ...policy.sinks.credentialDirs, ...(policy.firmware.trustDir ? [policy.firmware.trustDir] : [])];
  const denied = folders.map((folder) => `${path.resolve(folder).replace(/\/+$/, '')}/`);
  if (policy.admin.tokenFile) denied.push(path.resolve(policy.admin.tokenFile));
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
  /** Re-reads every manifest and resyncs every resource; logged with what asked for it. */
  reload(trigger?: ReloadTrigger): Promise<void>;
  stop(): Promise<void>;
}

/** What asked for a reload, as the log line names it. */
export type ReloadTrigger = 'SIGHUP' | 'POST /reload' | 'API';

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const logger = options.logger ?? createLogger({ level: options.logLevel, format: options.logFormat });
  const policy = withAgentFoldersDenied(options.policy ?? defaultPolicy(), options.stateDir);
  const metrics = new Metrics();
  // Before anything starts: an admin API that would be open to the network is refused outright.
  const adminTokens = await adminTokenFile(policy, options, (message) => {
    logger.error({ component: 'admin', reason: 'AdminTokenInvalid' }, message);
    metrics.errorsLogged.inc({ component: 'admin', reason: 'AdminTokenInvalid' });
  });
  await checkAdminExposure(options.adminAddr, { authenticated: adminTokens !== undefined || policy.admin.tokenReview, allowUnauthenticated: policy.admin.insecureNoAuth });
  mkdirSync(options.stateDir, { recursive: true });
  // Before anything is read or written: a second agent on this dir stops here.
  const lock = acquireStateDirLock(options.stateDir);
  if (!lock.held) logger.warn({ stateDir: options.stateDir, reason: lock.note }, 'running without the state dir lock');
  else if (lock.note) logger.warn({ stateDir: options.stateDir }, lock.note);
  try {
    return await startLocked({ ...options, policy }, logger, lock, metrics, adminTokens);
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startLocked(options: AgentOptions & { policy: OperatorPolicy }, logger: Logger, lock: StateDirLock, metrics: Metrics, adminTokens: Authenticator | undefined): Promise<Agent> {
  const policy = options.policy;
  // State writes the disk refuses (full, read-only) are counted and logged, never thrown.
  const writeHealth = new WriteHealth(logger.child({ component: 'state' }), (area, reason) => metrics.stateWriteErrors.inc({ area, reason }));
  const store = new ResourceStore(options.stateDir);
  store.onPersist = (error) => writeHealth.report('generations', error);
  const status = new StatusStore(options.nodeName, systemClock, options.stateDir);
  status.onPersist = (error) => writeHealth.report('status', error);
  const router = new Router((sensorKey, count) => metrics.unrouted.inc(resourceLabels('sensor', parseKey(sensorKey)), count));
  const cluster = !options.manifests;
  if (policy.firmware.trustDir && policy.firmware.trustSecret) throw new FlagError('--firmware-trust-dir', 'FlagConflict', 'give one Firmware trust store: --firmware-trust-dir or --firmware-trust-secret');
  if (policy.firmware.trustSecret && !cluster) throw new FlagError('--firmware-trust-secret', 'FlagConflict', '--firmware-trust-secret needs cluster mode; standalone, use --firmware-trust-dir DIR');
  // Cluster mode with --firmware-trust-secret replaces it with the Secret's store (cluster.ts).
  const trust = policy.firmware.trustDir ? directoryTrustStore(policy.firmware.trustDir, options.stateDir) : noTrustStore(cluster);
  const sequences = await SequenceStore.open(path.join(options.stateDir, 'sequences'));
  sequences.onPersist = (error) => writeHealth.report('sequences', error);
  if (sequences.recovery) {
    logger.warn({ reason: sequences.recovery.reason }, sequences.recovery.message);
    metrics.stateRecovered.inc({ area: 'sequences', reason: sequences.recovery.reason });
  }
  let nodeLabels: Record<string, string> = {};
  const startedAt = new Date().toISOString();
  const readingHistory = new ReadingHistory();
  const driverShared = new Map<string, unknown>();

  const runtime: Runtime = {
    device: options.deviceId,
    readingHistory,
    policy,
    store,
    status,
    router,
    logger,
    metrics,
    sensors: new Map(),
    sinks: new Map(),
    actuators: new Map(),
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
      shared: driverShared,
      reportFilter: createReportFilter,
    },
    actuatorDeps: {
      clock: systemClock,
      logger: logger.child({ component: 'actuator' }),
      metrics,
      status,
      policy: policy.drivers,
      // The Sensors' map: an Actuator and the Sensors on one Modbus device or serial port share its link.
      shared: driverShared,
    },
    sinkDeps: {
      logger: logger.child({ component: 'sink' }),
      onCommand: (sink, command) => applyRemoteCommand(runtime, sink, command),
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
  let tokenReview: Authenticator | undefined;
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
    tokenReview = cluster.tokenReview;
    nodeLabels = cluster.nodeLabels();
    cluster.onNodeLabels((labels) => {
      nodeLabels = labels;
      manager.resyncAll();
    });
  }

  let stopping: Promise<void> | undefined;
  const authenticators = [adminTokens, tokenReview].filter((each): each is Authenticator => each !== undefined);
  const authenticator = authenticators.length > 0 ? anyOf(authenticators) : undefined;
  // POST /reload and SIGHUP: concurrent requests join the run in progress (or its one follow-up).
  const resync = coalesced(async () => {
    if (stopping) return;
    await authenticator?.refresh();
    await source.resync();
    manager.resyncAll();
  });
  const consoleFeed = new ConsoleFeed({
    overview: () => ({ device: options.deviceId, node: options.nodeName, version: build.version, slot: build.slot, startedAt, ready: manager.initialSyncApplied }),
    resources: () => listResources(runtime),
    acknowledged: () => metrics.published.get(),
    history: readingHistory,
  });
  // One log line per reload asked for, saying who asked: an operator sees that SIGHUP arrived.
  const reloadLogger = logger.child({ component: 'reload' });
  const reload = async (trigger: ReloadTrigger = 'API') => {
    const started = performance.now();
    try {
      await resync();
    } catch (error) {
      reloadLogger.error({ trigger, err: redactCredentials(messageOf(error)) }, `reload (${trigger}) failed`);
      metrics.errorsLogged.inc({ component: 'reload', reason: reasonOf(error, 'ReloadFailed') });
      throw error;
    }
    if (stopping) return;
    const resources = runtime.store.list().length;
    reloadLogger.info({ trigger, resources, ms: Math.round(performance.now() - started) }, `reloaded (${trigger}): manifests re-read, ${resources} resource(s) resynced`);
  };
  // Before the admin API answers: preparing a kind's validator later could hold the event loop.
  const compiledAtRunTime = prepareAllKinds();
  if (compiledAtRunTime.length > 0) {
    const reasons = [...new Set(compiledAtRunTime.map((entry) => entry.compiledBecause))].join('; ');
    logger.warn(
      { component: 'validation', kinds: compiledAtRunTime.map((entry) => entry.kind), reason: 'ValidatorsCompiledAtRunTime' },
      `validators compiled at run time, which costs start-up time and memory (${reasons}): run npm run build, or install a release`,
    );
  }
  const admin: AdminServer = await startAdminServer(
    options.adminAddr,
    {
      ready: () => manager.initialSyncApplied,
      resources: () => listResources(runtime),
      reload: () => reload('POST /reload'),
      registry: metrics.registry,
      onDenied: (status) => metrics.adminDenied.inc({ status: String(status) }),
      console: consoleFeed,
    },
    { authenticator, allowUnauthenticated: policy.admin.insecureNoAuth },
  );
  if (!authenticator && policy.admin.insecureNoAuth && !(await isLoopbackHost(parseHostPort(options.adminAddr).host))) {
    logger.warn({ admin: admin.address }, 'the admin API answers anyone who can reach it, without authentication (--admin-insecure-no-auth)');
  }
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
        lock.release();
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

/** The operator's admin token file, read (and checked) before the agent starts anything. */
async function adminTokenFile(policy: OperatorPolicy, options: AgentOptions, onProblem: (message: string) => void): Promise<Authenticator | undefined> {
  const admin = policy.admin;
  if (admin.insecureNoAuth && (admin.tokenFile || admin.tokenReview)) {
    throw new FlagError('--admin-insecure-no-auth', 'AdminAuthConflict', '--admin-insecure-no-auth contradicts --admin-token-file / --admin-token-review: give one or the other');
  }
  if (admin.tokenReview && options.manifests) throw new FlagError('--admin-token-review', 'AdminAuthConflict', '--admin-token-review needs cluster mode (--kubeconfig or --in-cluster)');
  if (!admin.tokenFile) return undefined;
  return tokenFileAuthenticator(admin.tokenFile, onProblem);
}

/**
 * Every resource as a Kubernetes object with this agent's status entry and the fleet roll-up of its
 * one node: the same status shape as on the API server in cluster mode (`desired`, `ready`,
 * `readyOfDesired`...), so `sensorlet get` and `kubectl get` read alike.
 */
export function listResources(runtime: Runtime): ResourceList {
  const toObject = (resource: StoredResource) => {
    const entry = runtime.status.nodeEntry(resource.key);
    return {
      apiVersion: API_VERSION,
      kind: resource.kind,
      metadata: { name: resource.name, namespace: resource.namespace, labels: resource.labels, generation: resource.generation },
      // As declared, less any URL password: an invalid spec is shown too, so that it can be fixed.
      spec: redactCredentialsIn(resource.object?.spec ?? (resource.raw as { spec?: unknown }).spec),
      status: { ...rollUp(entry ? [{ name: runtime.status.nodeName, ...outcomeOf(entry) }] : []), nodes: entry ? [entry] : [] },
      origin: resource.origin,
    };
  };
  // Built while the answer is written: thousands of resources are one slice of work each, not one block.
  const resources = runtime.store.list();
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: (function* () {
      for (const resource of resources) yield toObject(resource);
    })(),
    // Parse errors may quote a line of the file: never with a URL's password.
    errors: redactCredentialsIn(runtime.store.orphanErrors()),
  };
}
