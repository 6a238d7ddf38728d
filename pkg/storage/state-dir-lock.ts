// One agent per state dir: two agents sharing outboxes and sequence counters would hand out the
// same sequence numbers and delete each other's chunks.
//
// Node has no flock(), so the lock is a symbolic link, `<stateDir>/agent.lock`, whose target text
// names the holder: `pid=<pid>;start=<ticks>;boot=<boot id>;host=<hostname>` (the scheme of Emacs'
// lock files). symlink() creates it atomically or fails with EEXIST, like open(O_CREAT|O_EXCL), but
// it also works on a full disk: a short link target lives in the inode (ext4, tmpfs, xfs), where a
// file holding the pid would need a data block that a full disk does not have.
//
// A lock whose holder is gone is stale and is taken over: a kill -9'd agent leaves one behind. The
// holder is alive when its pid exists, with the same process start time (/proc/<pid>/stat, so a
// reused pid does not count), since the same boot (/proc/sys/kernel/random/boot_id, so a lock that
// survived a reboot does not count). Limits, accepted: agents in different pid namespaces (two
// containers sharing a hostPath) cannot see each other's pids, so the second one takes the lock
// over; and two agents breaking the same stale lock in the same instant can both win.
// On a read-only state dir no lock can be taken (nor anything else written): the agent runs
// unlocked and says so.
import { readFileSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SensorletError } from '../api/errors.js';
import { isStorageError } from './durable-file.js';

export const LOCK_FILE = 'agent.lock';

interface Holder {
  pid: number;
  start?: string;
  boot?: string;
  host?: string;
}

export interface StateDirLock {
  /** False when the dir refused the lock (read-only): the agent runs unlocked. */
  readonly held: boolean;
  /** Why it is not held, or which stale lock it replaced. */
  readonly note?: string;
  release(): void;
}

export function acquireStateDirLock(stateDir: string): StateDirLock {
  const file = path.join(stateDir, LOCK_FILE);
  const token = describe(currentHolder());
  let replaced: string | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      symlinkSync(token, file);
      return heldLock(file, token, replaced ? `replaced the stale lock of ${replaced}` : undefined);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        if (isStorageError(error)) return { held: false, note: `cannot create ${file}: ${(error as Error).message}`, release() {} };
        throw error;
      }
    }
    let text: string;
    try {
      text = readlinkSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw new SensorletError('StateDirLocked', `state dir ${stateDir} is locked by ${file}, which is not a lock this agent wrote (${(error as Error).message}); remove it if no agent uses the dir`);
    }
    const holder = parse(text);
    if (holder && isAlive(holder)) {
      throw new SensorletError(
        'StateDirLocked',
        `state dir ${stateDir} is in use by another sensorlet agent (pid ${holder.pid}${holder.host ? ` on ${holder.host}` : ''}); stop it or give this one another --state-dir`,
      );
    }
    replaced = holder ? `pid ${holder.pid}` : `unreadable ${JSON.stringify(text.slice(0, 40))}`;
    try {
      unlinkSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      if (isStorageError(error)) return { held: false, note: `cannot replace the stale lock ${file}: ${(error as Error).message}`, release() {} };
      throw error;
    }
  }
  throw new SensorletError('StateDirLocked', `state dir ${stateDir}: could not take ${file} (other agents keep starting on it)`);
}

function heldLock(file: string, token: string, note: string | undefined): StateDirLock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      // Only our own: a lock taken over by someone else (after we were presumed dead) stays theirs.
      if (readlinkSync(file) === token) unlinkSync(file);
    } catch {
      // Gone already, or the disk refuses: the next start finds it stale.
    }
  };
  process.on('exit', release);
  return { held: true, note, release };
}

function currentHolder(): Holder {
  return { pid: process.pid, start: startTimeOf(process.pid), boot: bootId(), host: os.hostname() };
}

function describe(holder: Holder): string {
  return [`pid=${holder.pid}`, `start=${holder.start ?? ''}`, `boot=${holder.boot ?? ''}`, `host=${holder.host ?? ''}`].join(';');
}

function parse(text: string): Holder | undefined {
  const fields = new Map(
    text.split(';').map((part) => {
      const at = part.indexOf('=');
      return [part.slice(0, at), part.slice(at + 1)] as const;
    }),
  );
  const pid = Number(fields.get('pid'));
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, start: fields.get('start') || undefined, boot: fields.get('boot') || undefined, host: fields.get('host') || undefined };
}

function isAlive(holder: Holder): boolean {
  const boot = bootId();
  if (holder.boot && boot && holder.boot !== boot) return false;
  if (holder.pid === process.pid) return false; // a lock from an earlier life of this pid (a restarted container's pid 1)
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = statOf(holder.pid);
  // A killed agent whose parent is gone stays a zombie until an init reaps it, and some container
  // inits never do: it holds nothing any more.
  if (stat?.state === 'Z' || stat?.state === 'X') return false;
  return !(holder.start && stat?.start && holder.start !== stat.start);
}

/** Fields 3 (state) and 22 (start time in clock ticks since boot) of /proc/<pid>/stat. Undefined off Linux. */
function statOf(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], start: fields[19] };
  } catch {
    return undefined;
  }
}

function startTimeOf(pid: number): string | undefined {
  return statOf(pid)?.start;
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}
