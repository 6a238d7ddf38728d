// The OTA state machine and its durable record.
//
//   Idle ──► Downloading ──► Verifying ──► Draining ──► Installing ──► Restarting ──► HealthCheck ──► Succeeded
//               │  ▲            │              │             │                            │
//               │  └─(resume)   │              │             │ install fails / crash      │ unhealthy within timeout,
//               │               │              │             ▼                            │ crash-looping new agent
//               │               │              │        RollingBack ◄─────────────────────┘
//               │               │              │             │
//               ▼               ▼              ▼             ▼
//            Failed          Failed         Failed       RolledBack      (Failed: DownloadFailed, SizeMismatch,
//                                                                          ChecksumMismatch, SignatureInvalid,
//                                                                          DrainFailed, RollbackFailed, ...)
//
// Invariants:
// 1. The record (`<stateDir>/ota/<namespace>.<name>/state.json`) is written with write-temp + fsync +
//    rename + directory fsync BEFORE the action a phase stands for starts. So after a crash or power
//    cut the record names the phase whose action may have been under way, never one that is behind it.
// 2. Every phase's action is safe to run again from the start, or is replaced on recovery:
//    Downloading resumes from the bytes on disk (Range + If-Range); Verifying and Draining run again;
//    Installing interrupted → RollingBack (an install cut halfway is never trusted nor left);
//    Restarting → HealthCheck; HealthCheck resumes with a new deadline, at most MAX_HEALTH_BOOTS
//    times, after which the update is rolled back (a new agent that keeps dying never gets committed);
//    RollingBack runs the (idempotent) rollback again.
// 3. Nothing is installed unless Verifying passed (the signed statement: signature by a trusted
//    key and scope; then size and SHA-256 of the file) in this attempt: the
//    verified file is what Installing gets, and it is not touched between Verifying and Installing.
// 4. Succeeded, RolledBack and Failed are terminal for (version, sha256): the same spec never
//    starts again (no retry loop on a bad artifact); a new version or artifact starts from Idle.
// 5. `currentVersion` changes only on Succeeded (commit); on RolledBack it stays the previous one.
// Invariants 1 and 2 are checked with a real kill -9 of the agent in every in-flight phase
// (test/integration/ota-command.test.ts; target: agent in ota-agent.test.ts). The short windows
// (Verifying, Restarting, RollingBack) are held open with the failpoint of failpoint.ts
// (SENSORLET_OTA_PAUSE_IN), which waits between the durable record and the phase's action.
import { readFileSync } from 'node:fs';
import { fsyncDir, writeFileDurable } from '../storage/durable-file.js';
import path from 'node:path';
import type { FirmwareSpec } from '../api/resource.js';

export const PHASES = [
  'Idle',
  'Downloading',
  'Verifying',
  'Draining',
  'Installing',
  'Restarting',
  'HealthCheck',
  'Succeeded',
  'RollingBack',
  'RolledBack',
  'Failed',
] as const;
export type Phase = (typeof PHASES)[number];

export const TERMINAL_PHASES: readonly Phase[] = ['Idle', 'Succeeded', 'RolledBack', 'Failed'];

/** A crash-looping agent gets this many starts in HealthCheck before the update is rolled back. */
export const MAX_HEALTH_BOOTS = 3;

/** Allowed transitions; anything else is a bug and throws. */
const NEXT: Record<Phase, readonly Phase[]> = {
  Idle: ['Downloading'],
  Downloading: ['Downloading', 'Verifying', 'Failed'],
  Verifying: ['Draining', 'Failed', 'Downloading'],
  Draining: ['Installing', 'Failed'],
  Installing: ['Restarting', 'RollingBack'],
  Restarting: ['HealthCheck', 'RollingBack'],
  HealthCheck: ['HealthCheck', 'Succeeded', 'RollingBack'],
  RollingBack: ['RolledBack', 'Failed'],
  Succeeded: ['Downloading'],
  RolledBack: ['Downloading'],
  Failed: ['Downloading'],
};

export interface OtaRecord {
  version: 1;
  phase: Phase;
  /** The version committed on this node (undefined: unknown, nothing installed through Sensorlet yet). */
  currentVersion?: string;
  /**
   * The install argv that committed currentVersion (target: command): the downgrade check finds
   * the same device under another Firmware name by it (installed-versions.ts). `spec` cannot serve:
   * it is the last attempt's, which a failing attempt may have replaced.
   */
  currentInstall?: string[];
  /** The version the current (or last) attempt installs. */
  targetVersion?: string;
  /** Identity of the attempt's artifact: a changed sha256 is a new attempt even at the same version. */
  targetSha256?: string;
  target?: 'agent' | 'command';
  progress?: { bytes: number; total: number };
  /** Why the last attempt failed or rolled back (stable code + message). */
  lastError?: { reason: string; message: string };
  /** Starts of the agent seen in HealthCheck (invariant 2). */
  healthBoots?: number;
  /** target: agent — the slot being tried and the one to return to. */
  slots?: { trying: string; previous?: string };
  /** The spec of the attempt, snapshotted when it started: install and rollback use it even if the resource changes. */
  spec?: FirmwareSpec;
  /** Readings still queued when the drain ended (they stay in the durable outbox). */
  drained?: { queued: number; at: string };
  /** ISO time of the last transition. */
  since?: string;
  /**
   * Downloading, but the last attempts failed and it is retrying (kept in memory, not persisted):
   * since when, how many attempts in a row, and the last error.
   */
  stalled?: { since: string; attempts: number; message: string };
}

export function initialRecord(): OtaRecord {
  return { version: 1, phase: 'Idle' };
}

export { writeFileDurable, fsyncDir };

/** The persisted record of one Firmware resource on this node. */
export class OtaStateFile {
  readonly file: string;
  private current: OtaRecord;

  constructor(readonly dir: string) {
    this.file = path.join(dir, 'state.json');
    this.current = OtaStateFile.read(this.file) ?? initialRecord();
  }

  static read(file: string): OtaRecord | undefined {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = JSON.parse(text) as OtaRecord;
    if (!PHASES.includes(parsed.phase)) throw new Error(`${file}: unknown phase ${JSON.stringify(parsed.phase)}`);
    return parsed;
  }

  get record(): Readonly<OtaRecord> {
    return this.current;
  }

  /** Moves to a phase (durably, before the caller starts its action). */
  transition(phase: Phase, change: Partial<Omit<OtaRecord, 'version' | 'phase'>> = {}): OtaRecord {
    if (!NEXT[this.current.phase].includes(phase)) throw new Error(`OTA: illegal transition ${this.current.phase} → ${phase}`);
    return this.write({ ...this.current, ...change, phase, since: new Date().toISOString(), stalled: undefined });
  }

  /** Changes facts without a transition (progress); durable as well, since it is cheap and rare. */
  patch(change: Partial<Omit<OtaRecord, 'version' | 'phase'>>): OtaRecord {
    return this.write({ ...this.current, ...change });
  }

  private write(next: OtaRecord): OtaRecord {
    // `stalled` describes this run's link, not the update: never persisted.
    const { stalled: _stalled, ...durable } = next;
    writeFileDurable(this.file, JSON.stringify(durable, null, 2));
    this.current = next;
    return next;
  }
}
