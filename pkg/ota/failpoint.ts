// A fault-injection seam for the kill -9 tests, in the spirit of etcd's gofail failpoints.
//
//   SENSORLET_OTA_PAUSE_IN=Verifying:5000[,RollingBack:3000...]   (phase name : milliseconds)
//
// makes the coordinator wait that long each time it is about to run the action of a listed phase:
// AFTER the phase's record was durably written (and reported as status) and BEFORE the action
// starts. A kill -9 during the pause therefore leaves exactly what a crash at that point leaves,
// which turns the short Verifying, Restarting and RollingBack windows into ones a test can hit
// (test/integration/ota-command.test.ts, ota-agent.test.ts). The variable is read once per process;
// unset (the only case in production) the seam does nothing and costs one map lookup per phase.
// A malformed value throws, so a typo in a test cannot silently turn the pause off.
import { PHASES, type Phase } from './state.js';

export const PAUSE_ENV = 'SENSORLET_OTA_PAUSE_IN';

let pauses: ReadonlyMap<Phase, number> | undefined;

/** Parses `Phase:ms[,Phase:ms...]`; throws on an unknown phase or a bad duration. */
export function parsePauses(value: string | undefined): ReadonlyMap<Phase, number> {
  const parsed = new Map<Phase, number>();
  for (const item of (value ?? '').split(',').map((part) => part.trim()).filter(Boolean)) {
    const match = /^([A-Za-z]+):(\d+)$/.exec(item);
    if (!match || !PHASES.includes(match[1] as Phase)) {
      throw new Error(`${PAUSE_ENV}: ${JSON.stringify(item)} is not <phase>:<milliseconds> with a phase of ${PHASES.join(', ')}`);
    }
    parsed.set(match[1] as Phase, Number(match[2]));
  }
  return parsed;
}

/** How long the failpoint holds `phase` before its action (0: not set). */
export function pauseFor(phase: Phase): number {
  pauses ??= parsePauses(process.env[PAUSE_ENV]);
  return pauses.get(phase) ?? 0;
}
