// Firmware reconciler: one OTA coordinator per Firmware resource on this node. The update runs in
// the background (a download may take hours); reconcile only starts or resumes it and reports the
// durable record as status: phase, currentVersion, targetVersion, progress, lastError, conditions.
import path from 'node:path';
import type { FirmwareSpec, StoredResource } from '../../api/resource.js';
import { resourceKey } from '../../api/resource.js';
import { resourceLabels } from '../../observability/metrics.js';
import { matchesNodeSelector } from '../../router/selector.js';
import { OtaCoordinator } from '../../ota/coordinator.js';
import { runtimeDataPath } from '../../ota/datapath.js';
import { PHASES, TERMINAL_PHASES, type OtaRecord } from '../../ota/state.js';
import { installCommandRefusal } from '../../ota/command.js';
import { compareVersions } from '../../ota/version-order.js';
import { installedVersions } from '../../ota/installed-versions.js';
import { refusal } from '../../policy/policy.js';
import { verifyIntent } from '../../ota/statement.js';
import { OtaError, otaReason } from '../../ota/errors.js';
import type { ConditionUpdate } from '../conditions.js';
import type { ReconcileResult, StoppableReconcile } from '../workqueue.js';
import { invalidMessage, type Runtime } from '../runtime.js';

const DOWNLOAD_RETRY_MS = 60_000;
/** A key missing from the trust store is looked for again this often (an operator may add it). */
const TRUST_RETRY_MS = 60_000;
const IN_FLIGHT = new Set(['Downloading', 'Verifying', 'Draining', 'Installing', 'Restarting', 'HealthCheck', 'RollingBack']);

/** A download's share, 0 to 1 (0 before the size is known). */
export function progressRatio(progress: { bytes: number; total: number } | undefined): number {
  return progress && progress.total > 0 ? Math.min(1, progress.bytes / progress.total) : 0;
}

function describeProgress(progress: { bytes: number; total: number } | undefined): string {
  if (!progress) return '0%';
  return `${Math.floor(progressRatio(progress) * 100)}% (${progress.bytes} of ${progress.total} bytes)`;
}

export function conditionsOfRecord(record: Readonly<OtaRecord>, spec: FirmwareSpec): ConditionUpdate[] {
  const updating = IN_FLIGHT.has(record.phase);
  const upToDate = record.currentVersion === spec.version && !updating;
  const stalled = record.phase === 'Downloading' ? record.stalled : undefined;
  const ready: ConditionUpdate = upToDate
    ? { type: 'Ready', status: 'True', reason: 'UpToDate', message: `version ${spec.version} is installed` }
    : stalled
      ? {
          type: 'Ready',
          status: 'False',
          reason: 'DownloadStalled',
          message: `download of ${record.targetVersion} stalled at ${describeProgress(record.progress)} since ${stalled.since}: ${stalled.message}; retrying (${stalled.attempts} attempt(s) without progress)`,
        }
    : updating
      ? { type: 'Ready', status: 'False', reason: record.phase, message: `updating to ${record.targetVersion}${record.phase === 'Downloading' ? `: ${describeProgress(record.progress)} downloaded` : ''}` }
      : record.lastError
        ? { type: 'Ready', status: 'False', reason: record.lastError.reason, message: `${record.phase}: ${record.lastError.message}` }
        : { type: 'Ready', status: 'False', reason: 'Pending', message: `waiting to update to ${spec.version}` };
  return [
    ready,
    updating
      ? { type: 'Updating', status: 'True', reason: record.phase, message: `${record.currentVersion ?? 'unknown'} → ${record.targetVersion}` }
      : { type: 'Updating', status: 'False', reason: record.phase, message: '' },
  ];
}

export function createFirmwareReconciler(runtime: Runtime): StoppableReconcile {
  const coordinators = new Map<string, OtaCoordinator>();
  const dataPath = runtimeDataPath(runtime);
  const metrics = runtime.metrics;
  const logger = runtime.logger.child({ component: 'ota' });

  const report = (resource: StoredResource<'Firmware'>, record: Readonly<OtaRecord>) => {
    const spec = resource.object!.spec;
    const labels = resourceLabels('firmware', resource);
    if (record.progress) {
      metrics.firmwareDownloadedBytes.set(labels, record.progress.bytes);
      metrics.firmwareSizeBytes.set(labels, record.progress.total);
      metrics.firmwareProgress.set(labels, progressRatio(record.progress));
    }
    // Only this Firmware's series: 1 for its phase, 0 for the others (reset() would clear every Firmware's).
    for (const phase of PHASES) metrics.firmwarePhase.set({ ...labels, phase }, phase === record.phase ? 1 : 0);
    runtime.status.update(resource.key, {
      observedGeneration: resource.generation,
      conditions: conditionsOfRecord(record, spec),
      facts: {
        phase: record.phase,
        currentVersion: record.currentVersion ?? null,
        targetVersion: record.targetVersion ?? spec.version,
        progress: record.progress ?? null,
        lastError: record.lastError ?? null,
        stalled: (record.phase === 'Downloading' && record.stalled) || null,
      },
    });
  };

  // Keys come only from the operator's trust store, by name (pkg/ota/trust.ts).
  const trustedKey = (spec: FirmwareSpec) => runtime.ota!.trust.key(spec.artifact.signature.keyRef.name);
  const commandRefusal = (argv: readonly string[], field: string) => installCommandRefusal(argv, field, runtime.policy.firmware, runtime.ota!.stateDir);
  runtime.ota?.onTrustChange?.(() => {
    for (const firmware of runtime.store.list('Firmware')) runtime.enqueue(firmware.key);
  });

  /**
   * What the operator's policy and the signed statement refuse for `spec`, checked before anything
   * is downloaded or run. Nothing durable is written for a refusal: a new flag or key (and a
   * restart or reconcile) lets the same spec through.
   */
  const refusalOf = (spec: FirmwareSpec, resource: StoredResource<'Firmware'>, record: OtaRecord): { reason: string; message: string; retry: boolean } | undefined => {
    // An attempt past Verifying finishes (or rolls back) whatever the policy says now: refusing it
    // would strand a half-installed device.
    const resuming = !TERMINAL_PHASES.includes(record.phase) && record.phase !== 'Downloading' && record.phase !== 'Verifying';
    if (runtime.policy.firmware.allowDowngrade !== true && !resuming) {
      const own = `${resource.namespace}.${resource.name}`;
      const installed = installedVersions(path.join(runtime.ota!.stateDir, 'ota'), own, spec, runtime.ota!.agent?.runningVersion());
      const newer = installed.filter((each) => (compareVersions(spec.version, each.version) ?? 0) < 0);
      if (newer.length > 0) {
        const newest = newer.reduce((best, each) => ((compareVersions(each.version, best.version) ?? 0) > 0 ? each : best));
        // Another namespace's Firmware is not named: its name is not this resource's author's to see.
        const where =
          newest.by === 'agent' ? 'the running agent'
          : newest.by === own ? 'this Firmware'
          : newest.by.startsWith(`${resource.namespace}.`) ? `Firmware ${newest.by.slice(resource.namespace.length + 1)} with the same install command`
          : 'another Firmware with the same install command';
        return { reason: 'DowngradeNotAllowed', message: refusal(`spec.version ${JSON.stringify(spec.version)} is older than ${JSON.stringify(newest.version)}, installed on this node by ${where}`, '--allow-firmware-downgrade'), retry: false };
      }
    }
    if (spec.target === 'command') {
      for (const [field, argv] of [['spec.install.command', spec.install?.command], ['spec.rollback.command', spec.rollback?.command]] as const) {
        const refused = argv && commandRefusal(argv, field);
        if (refused) return { reason: 'InstallCommandNotAllowed', message: refused, retry: false };
      }
    }
    try {
      verifyIntent(spec, trustedKey(spec));
    } catch (error) {
      return { ...otaReason(error, 'SignatureInvalid'), retry: error instanceof OtaError && !error.terminal };
    }
    return undefined;
  };

  const tlsOf = (resource: StoredResource<'Firmware'>) => (spec: FirmwareSpec) => {
    const ref = spec.artifact.certificateRef;
    if (!ref) return undefined;
    const identity = runtime.certificates.get(resourceKey({ kind: 'Certificate', namespace: resource.namespace, name: ref.name }))?.identity;
    if (!identity?.keySlot) throw new OtaError('DownloadFailed', `Certificate ${ref.name} is not loaded (spec.artifact.certificateRef)`, { terminal: false });
    return identity.keySlot.tlsOptions();
  };

  const reconcileFirmware = async function reconcileFirmware(key: string): Promise<ReconcileResult> {
    const resource = runtime.store.get<'Firmware'>(key) as StoredResource<'Firmware'> | undefined;
    if (!resource) {
      // A download stops; an install under way finishes (it cannot be cut safely).
      coordinators.get(key)?.abortDownload();
      runtime.status.delete(key);
      return {};
    }
    if (resource.errors.length > 0 || !resource.object) {
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason: resource.errors[0]?.reason ?? 'InvalidSpec', message: invalidMessage(resource) }],
      });
      return {};
    }
    const spec = resource.object.spec;
    const invalid = (message: string, reason = 'InvalidSpec') => {
      runtime.status.update(key, { observedGeneration: resource.generation, conditions: [{ type: 'Ready', status: 'False', reason, message }] });
      return {};
    };
    if (spec.target === 'command' && !spec.install?.command?.length) return invalid('spec.install.command: required when target is command');
    if (spec.target === 'agent' && !runtime.ota?.agent) {
      return invalid('spec.target: agent updates the agent only in standalone mode started with --self-update (in a cluster, the DaemonSet image does); use target: command', 'AgentUpdateUnsupported');
    }
    if (!runtime.ota) return invalid('no state dir for OTA updates', 'OtaUnavailable');
    if (!matchesNodeSelector(spec.nodeSelector, runtime.nodeLabels())) {
      runtime.status.delete(key);
      return {};
    }
    let coordinator = coordinators.get(key);
    if (!coordinator) {
      coordinator = new OtaCoordinator({
        dir: path.join(runtime.ota.stateDir, 'ota', `${resource.namespace}.${resource.name}`),
        trustedKey,
        commandRefusal,
        tls: tlsOf(resource),
        dataPath,
        agent: runtime.ota.agent,
        onChange: (record) => {
          const current = runtime.store.get<'Firmware'>(key) as StoredResource<'Firmware'> | undefined;
          if (current?.object) report(current, record);
        },
        log: (level, message, fields) => logger[level]({ firmware: key, ...fields }, message),
      });
      coordinators.set(key, coordinator);
    }
    const target = coordinator;
    // Already at this version: nothing will be downloaded or run, whatever the spec says.
    const done = !target.isRunning() && target.record.currentVersion === spec.version;
    const refused = done ? undefined : refusalOf(spec, resource, target.record);
    if (refused) {
      // A download of an earlier spec stops; an install under way finishes (it cannot be cut safely).
      target.abortDownload();
      logger.warn({ firmware: key, reason: refused.reason, detail: refused.message }, 'Firmware refused');
      runtime.metrics.errorsLogged.inc({ component: 'ota', reason: refused.reason });
      invalid(refused.message, refused.reason);
      return refused.retry ? { requeueAfter: TRUST_RETRY_MS } : {};
    }
    if (target.isRunning()) {
      const record = target.record;
      if (record.phase === 'Downloading' && (record.targetVersion !== spec.version || record.targetSha256 !== spec.artifact.sha256.toLowerCase())) {
        target.abortDownload(); // the run ends; the requeue below starts the new artifact
      }
      report(resource, record);
      return {};
    }
    const generation = resource.generation;
    void target.run(spec).then(
      (record) => {
        const now = runtime.store.get(key);
        if (now && now.generation !== generation) runtime.enqueue(key);
        // A download that ran out of attempts is tried again later; nothing else is retried.
        else if (record.phase === 'Failed' && record.lastError?.reason === 'DownloadFailed') setTimeout(() => runtime.enqueue(key), DOWNLOAD_RETRY_MS).unref();
      },
      (error: unknown) => {
        logger.error({ firmware: key, err: (error as Error).message }, 'OTA run failed; retrying');
        runtime.metrics.errorsLogged.inc({ component: 'ota', reason: (error as { code?: string }).code ?? 'OtaError' });
        setTimeout(() => runtime.enqueue(key), 5000).unref();
      },
    );
    report(resource, target.record);
    return {};
  };
  // Shutdown: downloads stop and keep their bytes; the next start resumes them.
  return Object.assign(reconcileFirmware, {
    stop: async () => {
      await Promise.all([...coordinators.values()].map((coordinator) => coordinator.stopDownload()));
    },
  });
}
