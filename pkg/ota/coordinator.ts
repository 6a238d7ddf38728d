// Drives one Firmware resource through the state machine of state.ts on this node. It owns no
// timers beyond one run: run() goes as far as it can (to a terminal phase, or to the point where
// the agent must restart into a new build) and returns; the reconciler calls it again after a
// restart or a spec change. See state.ts for the diagram and the invariants it keeps.
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type { FirmwareSpec } from '../api/resource.js';
import { parseDuration, parseQuantity } from '../api/units.js';
import { downloadArtifact, type DownloadOptions } from './download.js';
import { OtaError, otaReason } from './errors.js';
import { describeFailure, runCommand, substitute } from './command.js';
import { PAUSE_ENV, pauseFor } from './failpoint.js';
import { MAX_HEALTH_BOOTS, OtaStateFile, TERMINAL_PHASES, type OtaRecord, type Phase } from './state.js';
import { verifyArtifact } from './verify.js';
import { verifyIntent } from './statement.js';
import { redactCredentials } from '../api/redact.js';

export type HealthRequirement = 'sinksConnected' | 'sensorsReady';

/** What the coordinator needs from the data path (implemented over the Runtime in datapath.ts). */
export interface DataPath {
  /** Seals every open outbox chunk and waits until the queues are empty or the deadline passes. */
  drain(timeoutMs: number): Promise<{ queued: number }>;
  /** Makes sequence counters durable now (they already are by reservation; this closes the gap). */
  persistSequences?(): Promise<void>;
  /** The agent's own health right now. */
  health(require: readonly HealthRequirement[]): { healthy: boolean; problems: string[] };
}

/** target: agent — A/B slots of agent builds (slots.ts). */
export interface AgentUpdater {
  /** The version of the running build. */
  runningVersion(): string;
  /** The slot the running process was started from (undefined: the installed build, not a slot). */
  runningSlot(): string | undefined;
  /** Unpacks and checks a verified artifact into the inactive slot; returns that slot. */
  install(file: string, version: string): Promise<{ slot: string; previous?: string }>;
  /**
   * Makes a slot the one the launcher starts (undefined: the installed build). With trialTimeoutMs
   * the slot is a trial: the launcher returns to the running build if it is not committed in time
   * or keeps exiting; without it the slot is a known-good build (rollback).
   */
  activate(slot: string | undefined, options?: { trialTimeoutMs?: number }): void;
  /** Marks the trial slot good: from now on the launcher keeps starting it (RAUC's mark-good). */
  commit(slot: string): void;
  /** When the launcher gave up on a trial slot (crash loop, hang): why. */
  trialFailure(slot: string): { reason: string } | undefined;
  /** Asks the process to stop cleanly and be started again by the launcher; never resolves normally. */
  restart(): Promise<void>;
}

export interface CoordinatorOptions {
  /** `<stateDir>/ota/<namespace>.<name>`. */
  dir: string;
  /** The trust store's key for `spec.artifact.signature.keyRef` (trust.ts); throws OtaError. */
  trustedKey(spec: FirmwareSpec): KeyObject;
  /** Why an install or rollback argv may not run under the operator's policy now; undefined when it may. */
  commandRefusal?(argv: readonly string[], field: string): string | undefined;
  tls?(spec: FirmwareSpec): ConnectionOptions | undefined;
  dataPath: DataPath;
  agent?: AgentUpdater;
  onChange?(record: Readonly<OtaRecord>): void;
  log?(level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void;
  /** Test seams. */
  download?: Partial<Pick<DownloadOptions, 'backoff' | 'maxAttempts' | 'idleTimeoutMs'>>;
  healthPollMs?: number;
}

const PROGRESS_PERSIST_BYTES = 1 << 20;
const PROGRESS_REPORT_MS = 250;
/** target: agent — time a new build gets to start before its health check timeout counts (launcher backstop). */
const TRIAL_STARTUP_MS = 60_000;

export class OtaCoordinator {
  readonly state: OtaStateFile;
  private abortController = new AbortController();
  private running: Promise<Readonly<OtaRecord>> | undefined;

  constructor(private readonly options: CoordinatorOptions) {
    this.state = new OtaStateFile(options.dir);
  }

  get record(): Readonly<OtaRecord> {
    return this.state.record;
  }

  get artifactFile(): string {
    return path.join(this.options.dir, 'artifact');
  }

  isRunning(): boolean {
    return this.running !== undefined;
  }

  /** Stops a download in progress (spec changed or resource deleted); other phases finish first. */
  abortDownload(): void {
    this.abortController.abort();
  }

  /**
   * Shutdown: a download stops and its run ends (the bytes on disk and the record let the next
   * start resume with a Range request). Other phases are left to finish or to be resumed from the
   * record: an install cannot be cut safely.
   */
  async stopDownload(): Promise<void> {
    if (!this.running || this.state.record.phase !== 'Downloading') return;
    this.abortController.abort();
    await this.running.catch(() => undefined);
  }

  /** Runs the machine for `spec` as far as it goes; concurrent calls share one run. */
  run(spec: FirmwareSpec): Promise<Readonly<OtaRecord>> {
    if (!this.running) {
      this.abortController = new AbortController();
      this.running = this.runOnce(spec).finally(() => (this.running = undefined));
    }
    return this.running;
  }

  private async runOnce(spec: FirmwareSpec): Promise<Readonly<OtaRecord>> {
    this.begin(spec);
    for (let steps = 0; steps < 32; steps++) {
      const record = this.state.record;
      if (TERMINAL_PHASES.includes(record.phase)) return record;
      const attempt = record.spec as FirmwareSpec;
      // The phase's record is durable and reported here, its action not started: the point a
      // kill -9 test holds with the failpoint (failpoint.ts; nothing unless the variable is set).
      const pause = pauseFor(record.phase);
      if (pause > 0) {
        this.log('warn', `${PAUSE_ENV}: pausing before the action of ${record.phase}`, { phase: record.phase, ms: pause });
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
      const next = await this.step(record.phase, attempt);
      if (next === 'stop') return this.state.record;
    }
    throw new Error('OTA: state machine did not settle in 32 steps');
  }

  /** Starts a new attempt, abandons a stale download, or resumes what the record says. */
  private begin(spec: FirmwareSpec): void {
    let record = this.state.record;
    if (spec.target === 'agent' && this.options.agent && record.currentVersion === undefined && record.phase === 'Idle') {
      record = this.state.patch({ currentVersion: this.options.agent.runningVersion() });
    }
    const sameAttempt = record.targetVersion === spec.version && record.targetSha256 === spec.artifact.sha256.toLowerCase();
    if (TERMINAL_PHASES.includes(record.phase)) {
      // Succeeded was written after commit(); committing again is idempotent and closes any gap.
      if (record.phase === 'Succeeded' && record.target === 'agent' && record.slots && this.options.agent?.runningSlot() === record.slots.trying) {
        this.options.agent.commit(record.slots.trying);
      }
      if (record.currentVersion === spec.version) return; // already there (invariant 4/5)
      if (sameAttempt && record.phase === 'Failed' && record.lastError?.reason === 'DownloadFailed') {
        // The network gave up, not the artifact: try again later, resuming the bytes already here.
        this.state.transition('Downloading', { lastError: undefined });
        this.emit();
        return;
      }
      if (sameAttempt && record.phase !== 'Idle') return; // this exact attempt already ended
      this.startAttempt(spec);
      return;
    }
    if (!sameAttempt && (record.phase === 'Downloading' || record.phase === 'Verifying')) {
      // Nothing installed yet: drop the stale artifact and start the new one.
      this.log('info', 'spec changed while downloading: starting the new artifact', { from: record.targetVersion, to: spec.version });
      this.startAttempt(spec);
      return;
    }
    // Past Verifying the recorded attempt finishes first (its spec snapshot drives it).
    // Runs are serialised per coordinator, so Installing seen here was cut by a crash (invariant 2).
    if (record.phase === 'Installing') this.recoverInterruptedInstall();
    if (record.phase === 'HealthCheck') {
      // Invariant 2: a restart during HealthCheck counts; a build that keeps dying is rolled back.
      const boots = (record.healthBoots ?? 0) + 1;
      this.state.patch({ healthBoots: boots });
    }
    this.emit();
  }

  private startAttempt(spec: FirmwareSpec): void {
    rmSync(this.artifactFile, { force: true });
    rmSync(`${this.artifactFile}.meta.json`, { force: true });
    this.state.transition('Downloading', {
      targetVersion: spec.version,
      targetSha256: spec.artifact.sha256.toLowerCase(),
      target: spec.target,
      spec: structuredClone(spec),
      progress: { bytes: 0, total: spec.artifact.size },
      lastError: undefined,
      healthBoots: 0,
      slots: undefined,
    });
    this.emit();
  }

  private async step(phase: Phase, spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    switch (phase) {
      case 'Downloading':
        return this.download(spec);
      case 'Verifying':
        return this.verify(spec);
      case 'Draining':
        return this.drain(spec);
      case 'Installing':
        return this.install(spec);
      case 'Restarting':
        return this.restarting(spec);
      case 'HealthCheck':
        return this.healthCheck(spec);
      case 'RollingBack':
        return this.rollBack(spec);
      default:
        return 'stop';
    }
  }

  private async download(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    let persisted = this.state.record.progress?.bytes ?? 0;
    let reported = 0;
    try {
      await downloadArtifact({
        url: spec.artifact.url,
        file: this.artifactFile,
        size: spec.artifact.size,
        tls: spec.artifact.url.startsWith('https:') ? this.options.tls?.(spec) : undefined,
        bandwidthLimit: spec.artifact.bandwidthLimit ? parseQuantity(spec.artifact.bandwidthLimit) : undefined,
        signal: this.abortController.signal,
        ...this.options.download,
        onProgress: (bytes, total) => {
          // The file is the truth for resuming; the record's copy is for status after a restart.
          // Bytes flow again: the link is no longer stalled.
          if (this.state.record.stalled && bytes > (this.state.record.progress?.bytes ?? 0)) (this.state.record as OtaRecord).stalled = undefined;
          if (Math.abs(bytes - persisted) >= PROGRESS_PERSIST_BYTES || bytes === total) {
            persisted = bytes;
            this.state.patch({ progress: { bytes, total } });
          } else {
            (this.state.record as OtaRecord).progress = { bytes, total };
          }
          // Status at most every PROGRESS_REPORT_MS (and at the end), not for every chunk.
          const now = Date.now();
          if (now - reported >= PROGRESS_REPORT_MS || bytes === total) {
            reported = now;
            this.emit();
          }
        },
        onAttempt: (info) => {
          if (!info.error) return;
          this.log('warn', 'download interrupted; resuming', { from: info.from, error: info.error });
          // Shown in status (not persisted): a download retrying says why instead of a bare "Downloading".
          const previous = this.state.record.stalled;
          (this.state.record as OtaRecord).stalled = {
            since: previous?.since ?? new Date().toISOString(),
            attempts: (previous?.attempts ?? 0) + 1,
            message: redactCredentials(info.error).slice(0, 200),
          };
          this.emit();
        },
      });
    } catch (error) {
      if (error instanceof OtaError && error.code === 'Aborted') {
        // Progress is persisted every PROGRESS_PERSIST_BYTES; keep the last count for status after a restart.
        const progress = this.state.record.progress;
        if (progress && progress.bytes !== persisted) this.state.patch({ progress: { ...progress } });
        return 'stop';
      }
      this.fail(otaReason(error, 'DownloadFailed'));
      return 'stop';
    }
    this.state.transition('Verifying');
    this.emit();
    return 'continue';
  }

  private async verify(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    try {
      // The statement was checked before the download; again here, with the key trusted now.
      const statement = verifyIntent(spec, this.options.trustedKey(spec));
      await verifyArtifact(this.artifactFile, statement.artifact);
    } catch (error) {
      // Nothing is installed from a file that failed verification, and it is not kept.
      rmSync(this.artifactFile, { force: true });
      this.fail(otaReason(error, 'SignatureInvalid'));
      return 'stop';
    }
    this.state.transition('Draining');
    this.emit();
    return 'continue';
  }

  private async drain(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    // The operator's policy may have changed since the attempt started (a restart without the flag):
    // nothing is installed that could not also be rolled back under it.
    const refused = this.refusal(spec);
    if (refused) {
      rmSync(this.artifactFile, { force: true });
      this.fail({ reason: 'InstallCommandNotAllowed', message: refused });
      return 'stop';
    }
    const timeoutMs = parseDuration(spec.drain?.timeout ?? '30s');
    const { queued } = await this.options.dataPath.drain(timeoutMs);
    await this.options.dataPath.persistSequences?.();
    // Readings still queued stay in the durable outbox and are sent after the update.
    if (queued > 0) this.log('warn', 'drain timeout: readings stay in the outbox across the update', { queued });
    this.state.transition('Installing', { drained: { queued, at: new Date().toISOString() } });
    this.emit();
    return 'continue';
  }

  private async install(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    if (!existsSync(this.artifactFile)) {
      this.state.transition('RollingBack', { lastError: { reason: 'InstallInterrupted', message: 'the verified artifact is gone' } });
      this.emit();
      return 'continue';
    }
    if (spec.target === 'agent') {
      const agent = this.options.agent;
      if (!agent) {
        this.state.transition('RollingBack', { lastError: { reason: 'SlotInvalid', message: 'target: agent needs standalone mode with A/B slots' } });
        this.emit();
        return 'continue';
      }
      let slots: { slot: string; previous?: string };
      try {
        slots = await agent.install(this.artifactFile, spec.version);
      } catch (error) {
        this.state.transition('RollingBack', { lastError: otaReason(error, 'InstallFailed') });
        this.emit();
        return 'continue';
      }
      // Restarting is durable before the slot flips: a crash between them re-activates and restarts.
      this.state.transition('Restarting', { slots: { trying: slots.slot, previous: slots.previous ?? agent.runningSlot() } });
      this.emit();
      return 'continue';
    }
    const refused = this.refusal(spec);
    if (refused) {
      this.state.transition('RollingBack', { lastError: { reason: 'InstallCommandNotAllowed', message: refused } });
      this.emit();
      return 'continue';
    }
    const argv = substitute(spec.install!.command, { file: this.artifactFile, version: spec.version });
    this.log('info', 'installing', { argv });
    const result = await runCommand(argv, { timeoutMs: parseDuration(spec.install!.timeout ?? '10m') });
    if (result.code !== 0) {
      this.state.transition('RollingBack', { lastError: { reason: 'InstallFailed', message: describeFailure(argv, result) } });
      this.emit();
      return 'continue';
    }
    this.state.transition('Restarting');
    this.emit();
    return 'continue';
  }

  private async restarting(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    if (spec.target === 'agent') {
      const agent = this.options.agent;
      const trying = this.state.record.slots?.trying;
      if (!agent || !trying) {
        this.state.transition('RollingBack', { lastError: { reason: 'SlotInvalid', message: 'no slot recorded for the new build' } });
        this.emit();
        return 'continue';
      }
      const failure = agent.trialFailure(trying);
      if (failure && agent.runningSlot() !== trying) {
        // The new build ran and the launcher returned to this one: it never became healthy.
        this.state.transition('RollingBack', { lastError: { reason: 'HealthCheckFailed', message: failure.reason } });
        this.emit();
        return 'continue';
      }
      if (agent.runningSlot() !== trying) {
        agent.activate(trying, { trialTimeoutMs: parseDuration(spec.healthCheck?.timeout ?? '2m') + TRIAL_STARTUP_MS });
        this.log('info', 'restarting into the new build', { slot: trying, version: spec.version });
        await agent.restart();
        return 'stop';
      }
    }
    // target: command — the device installed its firmware; the agent itself kept running.
    this.state.transition('HealthCheck', { healthBoots: 1 });
    this.emit();
    return 'continue';
  }

  private async healthCheck(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    const trying = this.state.record.slots?.trying;
    if (spec.target === 'agent' && this.options.agent && trying && this.options.agent.runningSlot() !== trying) {
      // The health check judges the new build only: this is the previous one, so the launcher
      // returned to it (the new one crashed or hung) — never commit the wrong build.
      const failure = this.options.agent.trialFailure(trying);
      this.state.transition('RollingBack', {
        lastError: { reason: 'HealthCheckFailed', message: failure?.reason ?? 'the previous build is running again during the health check of the new one' },
      });
      this.emit();
      return 'continue';
    }
    const boots = this.state.record.healthBoots ?? 1;
    if (boots > MAX_HEALTH_BOOTS) {
      this.state.transition('RollingBack', {
        lastError: { reason: 'HealthCheckFailed', message: `the agent restarted ${boots - 1} times during the health check` },
      });
      this.emit();
      return 'continue';
    }
    const require = (spec.healthCheck?.require ?? ['sinksConnected', 'sensorsReady']) as HealthRequirement[];
    const deadline = Date.now() + parseDuration(spec.healthCheck?.timeout ?? '2m');
    const poll = this.options.healthPollMs ?? 250;
    let last = this.options.dataPath.health(require);
    while (!last.healthy && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(poll, Math.max(1, deadline - Date.now()))));
      last = this.options.dataPath.health(require);
    }
    if (!last.healthy) {
      this.state.transition('RollingBack', {
        lastError: { reason: 'HealthCheckFailed', message: `not healthy within ${spec.healthCheck?.timeout ?? '2m'}: ${last.problems.join('; ')}` },
      });
      this.emit();
      return 'continue';
    }
    // Commit: the new version is the current one from here on (invariant 5). The slot is marked
    // good first: a crash between the two resumes HealthCheck in the new build and commits again.
    if (spec.target === 'agent' && trying) this.options.agent?.commit(trying);
    this.state.transition('Succeeded', { currentVersion: spec.version, currentInstall: spec.install?.command, healthBoots: 0 });
    rmSync(this.artifactFile, { force: true });
    this.log('info', 'update committed', { version: spec.version });
    this.emit();
    return 'stop';
  }

  private async rollBack(spec: FirmwareSpec): Promise<'continue' | 'stop'> {
    const cause = this.state.record.lastError;
    if (spec.target === 'agent') {
      const agent = this.options.agent;
      const previous = this.state.record.slots?.previous;
      if (agent && this.state.record.slots && agent.runningSlot() === this.state.record.slots.trying) {
        agent.activate(previous);
        this.log('warn', 'returning to the previous build', { slot: previous ?? 'installed', cause });
        await agent.restart();
        return 'stop';
      }
      if (agent && this.state.record.slots) agent.activate(previous);
      this.state.transition('RolledBack', { healthBoots: 0 });
      this.emit();
      return 'stop';
    }
    if (!spec.rollback?.command) {
      this.state.transition('Failed', { lastError: { reason: 'RollbackFailed', message: `${cause?.reason ?? 'update failed'} and there is no rollback.command: ${cause?.message ?? ''}` } });
      this.emit();
      return 'stop';
    }
    const refused = this.options.commandRefusal?.(spec.rollback.command, 'spec.rollback.command');
    if (refused) {
      this.state.transition('Failed', { lastError: { reason: 'InstallCommandNotAllowed', message: `${refused} (after ${cause?.reason}: ${cause?.message})` } });
      this.emit();
      return 'stop';
    }
    const argv = substitute(spec.rollback.command, { file: this.artifactFile, version: spec.version });
    this.log('warn', 'rolling back', { argv, cause });
    const result = await runCommand(argv, { timeoutMs: parseDuration(spec.rollback.timeout ?? '10m') });
    if (result.code !== 0) {
      this.state.transition('Failed', { lastError: { reason: 'RollbackFailed', message: `${describeFailure(argv, result)} (after ${cause?.reason}: ${cause?.message})` } });
      this.emit();
      return 'stop';
    }
    this.state.transition('RolledBack', { healthBoots: 0 });
    rmSync(this.artifactFile, { force: true });
    this.emit();
    return 'stop';
  }

  /** target: command — why its install or rollback program may not run now, if so. */
  private refusal(spec: FirmwareSpec): string | undefined {
    if (spec.target !== 'command') return undefined;
    const check = this.options.commandRefusal;
    if (!check) return undefined;
    return (spec.install?.command && check(spec.install.command, 'spec.install.command')) || (spec.rollback?.command && check(spec.rollback.command, 'spec.rollback.command')) || undefined;
  }

  private fail(error: { reason: string; message: string }): void {
    this.log('error', 'update failed', error);
    this.state.transition('Failed', { lastError: error });
    this.emit();
  }

  /** Crash recovery for Installing (invariant 2): an install cut halfway is rolled back. */
  recoverInterruptedInstall(): void {
    if (this.state.record.phase !== 'Installing') return;
    this.state.transition('RollingBack', { lastError: { reason: 'InstallInterrupted', message: 'the agent stopped while installing; rolling back' } });
    this.emit();
  }

  private emit(): void {
    this.options.onChange?.(this.state.record);
  }

  private log(level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void {
    this.options.log?.(level, message, fields);
  }
}
