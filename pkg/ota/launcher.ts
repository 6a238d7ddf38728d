// The launcher: the process a service manager starts for `sensorlet run` in standalone mode with
// self-update (`--self-update`, or whenever `<stateDir>/ota/active` names a slot). Node has no
// exec(), so the launcher stays as a small supervisor: it starts the agent as a child — the build
// `active` names, or its own installed build — with the same argv and stdio, forwards SIGTERM,
// SIGINT and SIGHUP to it, and:
//   - child exits with RESTART_EXIT_CODE (75): the agent drained and asks to be started again →
//     read `active` again and start what it names (the new build, or the previous one on rollback);
//   - a trial build exits otherwise (crash, exit at start-up), or is not committed within its
//     trialTimeoutMs (hangs): count a boot; after MAX_TRIAL_BOOTS, or on the timeout, return to
//     `previous`, record `fellBack` in `active` (the previous build's coordinator reads it and
//     reports RolledBack), and start the previous build;
//   - any other exit: the launcher exits with the child's code (the service manager restarts it).
// The child gets SENSORLET_LAUNCHED=<launcher pid> (the guard: it never becomes a launcher itself)
// and SENSORLET_SLOT. The launcher itself is always the installed build: like a bootloader, it is
// not replaced by an OTA of the agent, so a broken build cannot break the way back.
// The starts of a trial are counted in `active` before the child is spawned, so a kill -9 of the
// whole service (launcher and agent) during a trial still counts towards MAX_TRIAL_BOOTS.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import {
  entryPointOf, LAUNCHED_ENV, MAX_TRIAL_BOOTS, readActive, RESTART_EXIT_CODE, SLOT_ENV, writeActive, type ActiveRecord, type Slot,
} from './slots.js';
import { setBoundedTimeout } from '../observability/clock.js';

/** Grace between SIGTERM and SIGKILL for a hung trial build. */
const KILL_GRACE_MS = 10_000;
/** A pause before starting a crashed trial build again (no hot loop). */
const CRASH_PAUSE_MS = 500;
/** An upper bound on restarts per launcher life that are not trials (a buggy restart loop). */
const MAX_RESTARTS = 1000;

export function isLaunchedChild(): boolean {
  return Boolean(process.env[LAUNCHED_ENV]);
}

/** Whether `sensorlet run` should run as the launcher rather than as the agent. */
export function shouldLaunch(stateDir: string, selfUpdate: boolean): boolean {
  if (isLaunchedChild()) return false;
  return selfUpdate || (readActive(stateDir)?.slot ?? null) !== null;
}

type Log = (message: string, fields?: Record<string, unknown>) => void;

const defaultLog: Log = (message, fields) => process.stderr.write(`${JSON.stringify({ time: Date.now(), component: 'launcher', msg: message, ...fields })}\n`);

/** Runs the launcher loop; resolves with the exit code the launcher should exit with. */
export async function runLauncher(options: { stateDir: string; argv: string[]; log?: Log }): Promise<number> {
  const log = options.log ?? defaultLog;
  let child: ChildProcess | undefined;
  let stopping: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal !== 'SIGHUP') stopping = signal;
    child?.kill(signal);
  };
  const handlers = (['SIGTERM', 'SIGINT', 'SIGHUP'] as const).map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    for (let starts = 0; starts < MAX_RESTARTS; starts++) {
      if (stopping) return 0;
      let active = readActive(options.stateDir);
      if (active?.slot && !existsSync(entryPointOf(options.stateDir, active.slot))) {
        log('the active slot holds no build; starting the previous one', { slot: active.slot });
        active = fallBack(options.stateDir, active, 'the slot holds no build');
      }
      if (active?.slot && active.state === 'trial') {
        if (active.boots >= MAX_TRIAL_BOOTS) {
          active = fallBack(options.stateDir, active, `the new build did not stay up: ${active.boots} starts ended abnormally or were cut`);
        } else {
          active = { ...active, boots: active.boots + 1 };
          writeActive(options.stateDir, active);
        }
      }
      const slot = active?.slot ?? null;
      const entry = entryPointOf(options.stateDir, slot);
      log('starting the agent', { slot: slot ?? 'installed', entry, trial: active?.state === 'trial' });
      child = spawn(process.execPath, [...process.execArgv, entry, ...options.argv], {
        stdio: 'inherit',
        env: { ...process.env, [LAUNCHED_ENV]: String(process.pid), [SLOT_ENV]: slot ?? '' },
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child!.once('exit', (code, signal) => resolve({ code, signal })));
      let hung = false;
      let timer: NodeJS.Timeout | undefined;
      if (active?.slot && active.state === 'trial' && active.trialTimeoutMs) {
        const trial = active;
        const check = () => {
          const now = readActive(options.stateDir);
          if (now?.slot !== trial.slot || now.state !== 'trial') return; // committed or rolled back by the build
          hung = true;
          log('the new build was not committed in time; stopping it', { slot: trial.slot, timeoutMs: trial.trialTimeoutMs });
          child?.kill('SIGTERM');
          setTimeout(() => child?.kill('SIGKILL'), KILL_GRACE_MS).unref();
        };
        timer = setBoundedTimeout(check, active.trialTimeoutMs);
      }
      const { code, signal } = await exited;
      if (timer) clearTimeout(timer);
      child = undefined;
      if (stopping) return code === RESTART_EXIT_CODE ? 0 : code ?? 128 + (constants.signals[signal ?? 'SIGTERM'] ?? 15);
      if (code === RESTART_EXIT_CODE) {
        log('the agent asked to be started again', {});
        continue;
      }
      const now = readActive(options.stateDir);
      if (now?.slot && now.slot === slot && now.state === 'trial') {
        if (hung) {
          fallBack(options.stateDir, now, `the new build was not healthy within ${now.trialTimeoutMs} ms`);
        } else {
          log('the new build exited during its trial', { slot, code, signal, boots: now.boots });
          await new Promise((resolve) => setTimeout(resolve, CRASH_PAUSE_MS));
        }
        continue;
      }
      log('the agent exited', { code, signal });
      return code ?? 128 + (constants.signals[signal ?? 'SIGTERM'] ?? 15);
    }
    log('too many restarts; giving up', { max: MAX_RESTARTS });
    return 1;
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}

function fallBack(stateDir: string, active: ActiveRecord, reason: string): ActiveRecord {
  const next: ActiveRecord = {
    slot: active.previous,
    state: 'good',
    previous: null,
    boots: 0,
    fellBack: { from: active.slot as Slot, reason, at: new Date().toISOString() },
  };
  writeActive(stateDir, next);
  return next;
}

/**
 * In the agent started by a launcher: calls `onGone` when the launcher disappears (kill -9 of the
 * launcher alone), so no agent is left running unsupervised next to the one a new launcher starts.
 */
export function watchLauncher(onGone: () => void, intervalMs = 1000): void {
  const launcher = Number(process.env[LAUNCHED_ENV]);
  if (!launcher) return;
  const timer = setInterval(() => {
    if (process.ppid !== launcher) {
      clearInterval(timer);
      onGone();
    }
  }, intervalMs);
  timer.unref();
}
