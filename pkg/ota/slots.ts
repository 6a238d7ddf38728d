// A/B slots of agent builds for `target: agent` (standalone mode), and the `active` file the
// launcher (launcher.ts) reads to know which build to start.
//
//   <stateDir>/ota/slots/a/   one build: package.json, dist/, schemas/, node_modules → installed copy's
//   <stateDir>/ota/slots/b/   the other build
//   <stateDir>/ota/active     JSON, written durably (temp + fsync + rename + dir fsync):
//       { slot: "b" | "a" | null,         null: the installed build (the one the service runs)
//         state: "trial" | "good",        trial: not committed yet; the launcher counts its starts
//         previous: "a" | null,           where a failed trial returns to
//         boots, trialTimeoutMs, trialStartedAt,
//         fellBack?: { from, reason } }   set by the launcher when it gave up on a trial
//
// Invariants:
// - The running slot is never written to; install() writes the other one (unpacked next to it as
//   `<slot>.new`, then renamed), so the previous build stays whole as the fallback.
// - A trial slot becomes "good" only through commit() (the new build's own health check passed).
//   Until then the launcher returns to `previous` when the build exits abnormally MAX_TRIAL_BOOTS
//   times or is not committed within trialTimeoutMs (it hangs), and records why in `fellBack`.
// - A kill -9 at any point leaves `active` naming either the old build or the trial one; the
//   trial one is bounded by the two rules above, so the device always ends on a build that runs.
import { existsSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../api/schemas.js';
import { bundleVersion, decodeBundle, ENTRY_POINT, writeBundle } from './bundle.js';
import { OtaError } from './errors.js';
import { fsyncDir, writeFileDurable } from './state.js';
import type { AgentUpdater } from './coordinator.js';

export const SLOTS = ['a', 'b'] as const;
export type Slot = (typeof SLOTS)[number];

/** The exit code with which the agent asks its launcher to start it again (from `active`). */
export const RESTART_EXIT_CODE = 75;
/** Starts of a trial build that end abnormally before the launcher gives up on it. */
export const MAX_TRIAL_BOOTS = 3;
/** Set by the launcher on its child: the launcher's pid (also the guard against launching again). */
export const LAUNCHED_ENV = 'SENSORLET_LAUNCHED';
/** Set by the launcher on its child: the slot it runs, empty for the installed build. */
export const SLOT_ENV = 'SENSORLET_SLOT';

export interface ActiveRecord {
  slot: Slot | null;
  state: 'trial' | 'good';
  previous: Slot | null;
  boots: number;
  trialTimeoutMs?: number;
  trialStartedAt?: string;
  fellBack?: { from: Slot; reason: string; at: string };
}

/** The package root of the running code (holds package.json, dist/, schemas/). */
export const RUNNING_ROOT = PACKAGE_ROOT;

export function slotsDir(stateDir: string): string {
  return path.join(stateDir, 'ota', 'slots');
}

export function slotDir(stateDir: string, slot: Slot): string {
  return path.join(slotsDir(stateDir), slot);
}

export function activeFile(stateDir: string): string {
  return path.join(stateDir, 'ota', 'active');
}

export function readActive(stateDir: string): ActiveRecord | undefined {
  let text: string;
  try {
    text = readFileSync(activeFile(stateDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const record = JSON.parse(text) as ActiveRecord;
    if (record.slot !== null && !SLOTS.includes(record.slot)) return undefined;
    return record;
  } catch {
    // Written by rename, so never torn; an unreadable file is someone else's edit: run the installed build.
    return undefined;
  }
}

export function writeActive(stateDir: string, record: ActiveRecord): void {
  writeFileDurable(activeFile(stateDir), JSON.stringify(record, null, 2));
}

/** The entry point the launcher starts for a slot (null: the installed build, i.e. the launcher's own). */
export function entryPointOf(stateDir: string, slot: Slot | null): string {
  return slot ? path.join(slotDir(stateDir, slot), ...ENTRY_POINT.split('/')) : path.join(RUNNING_ROOT, ...ENTRY_POINT.split('/'));
}

/** Version and slot of the running build. */
export function runningBuild(): { version: string; slot: Slot | undefined } {
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(path.join(RUNNING_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    // a build without package.json still runs; its version is unknown
  }
  const slot = process.env[SLOT_ENV];
  return { version, slot: slot && (SLOTS as readonly string[]).includes(slot) ? (slot as Slot) : undefined };
}

export interface SlotUpdaterOptions {
  stateDir: string;
  /** Stops the agent cleanly (drivers, sinks, outboxes persisted) and exits with RESTART_EXIT_CODE. */
  restart(): Promise<void>;
}

/** AgentUpdater over the A/B slots, for an agent started by the launcher. */
export class SlotUpdater implements AgentUpdater {
  private readonly build = runningBuild();

  constructor(private readonly options: SlotUpdaterOptions) {}

  runningVersion(): string {
    return this.build.version;
  }

  runningSlot(): string | undefined {
    return this.build.slot;
  }

  async install(file: string, version: string): Promise<{ slot: string; previous?: string }> {
    const entries = decodeBundle(readFileSync(file));
    const declared = bundleVersion(entries);
    if (declared !== version) throw new OtaError('SlotInvalid', `the artifact holds version ${declared}, spec.version is ${version}`);
    const running = this.build.slot;
    const target: Slot = running === 'a' ? 'b' : running === 'b' ? 'a' : this.freeSlot();
    const dir = slotDir(this.options.stateDir, target);
    const staging = `${dir}.new`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    writeBundle(entries, staging);
    // The code is the bundle's; the dependencies are the installed copy's (see bundle.ts).
    symlinkSync(realpathSync(path.join(RUNNING_ROOT, 'node_modules')), path.join(staging, 'node_modules'), 'dir');
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    fsyncDir(path.dirname(dir));
    return { slot: target, previous: running };
  }

  activate(slot: string | undefined, options: { trialTimeoutMs?: number } = {}): void {
    const current = readActive(this.options.stateDir);
    if (slot === undefined || slot === this.build.slot || options.trialTimeoutMs === undefined) {
      // Returning to a build that ran before (rollback), or naming the running one: it is good.
      writeActive(this.options.stateDir, { slot: (slot as Slot | undefined) ?? null, state: 'good', previous: null, boots: 0 });
      return;
    }
    if (!(SLOTS as readonly string[]).includes(slot)) throw new OtaError('SlotInvalid', `no slot ${JSON.stringify(slot)}`);
    if (!existsSync(entryPointOf(this.options.stateDir, slot as Slot))) throw new OtaError('SlotInvalid', `slot ${slot} holds no build`);
    const same = current?.slot === slot && current.state === 'trial';
    writeActive(this.options.stateDir, {
      slot: slot as Slot,
      state: 'trial',
      previous: this.build.slot ?? null,
      boots: same ? current.boots : 0,
      trialTimeoutMs: options.trialTimeoutMs,
      trialStartedAt: new Date().toISOString(),
    });
  }

  commit(slot: string): void {
    const current = readActive(this.options.stateDir);
    if (current?.slot === slot && current.state === 'good') return;
    writeActive(this.options.stateDir, { slot: slot as Slot, state: 'good', previous: current?.slot === slot ? current.previous : null, boots: 0 });
  }

  trialFailure(slot: string): { reason: string } | undefined {
    const current = readActive(this.options.stateDir);
    return current?.fellBack?.from === slot && current.slot !== slot ? { reason: current.fellBack.reason } : undefined;
  }

  async restart(): Promise<void> {
    await this.options.restart();
    // The process exits in restart(); nothing after it runs.
    await new Promise(() => {});
  }

  /** Running the installed build: use the slot that is not the fallback of a good active slot. */
  private freeSlot(): Slot {
    const current = readActive(this.options.stateDir);
    return current?.slot === 'a' ? 'b' : 'a';
  }
}
