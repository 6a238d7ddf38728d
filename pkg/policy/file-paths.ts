// Which files the file driver may read, and the file actuator driver may write. A manifest names a
// path; the operator decides which real paths may be read (`--file-allow-prefix`, default sysfs and a few /proc statistics), and some are
// never readable whatever the operator allowed: secrets, key material, per-process /proc entries
// (environ, mem, cmdline, fd/, root/ — of the agent itself too) and the agent's state dir.
//
// Every decision is about the REAL path, so a symlink in an allowed folder that points at
// /etc/shadow is refused. See file.ts for how the check is made race-free at each read.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { refusal, type DriverPolicy } from './policy.js';

/** /proc/<pid>/..., /proc/self/..., /proc/thread-self/...: another process's (or our own) memory, environment, files. */
const PER_PROCESS_PROC = /^\/proc\/(?:self|thread-self|[0-9]+)(?:\/|$)/;
/** File names that hold key material, wherever they are. */
const KEY_MATERIAL_NAME = /(?:\.(?:key|pem|p12|pfx|jks|keystore|kdbx)|^id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?)$/i;

/** `candidate` is `prefix` itself or lies under it; never a partial name match (/sys vs /system). */
export function isUnder(candidate: string, prefix: string): boolean {
  const base = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return candidate === base || candidate.startsWith(base === '/' ? '/' : `${base}/`);
}

/** Each prefix as given (made absolute) and, when it exists, as its real path (/var/run -> /run). */
function bothForms(prefixes: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const prefix of prefixes) {
    const normal = path.resolve(prefix);
    forms.add(normal);
    try {
      forms.add(realpathSync(normal));
    } catch {
      // Not there (yet): the given form is all there is to compare with.
    }
  }
  return [...forms];
}

/** What a policy decides on: reading (the file driver) or writing (the file actuator driver). */
export interface FileAccess {
  /** Words for messages: "the file driver may read". */
  who: string;
  verb: 'read' | 'written';
  /** The flag that lists the allowed prefixes. */
  flag: string;
}

const READ_ACCESS: FileAccess = { who: 'the file driver', verb: 'read', flag: '--file-allow-prefix' };
export const WRITE_ACCESS: FileAccess = { who: 'the file actuator driver', verb: 'written', flag: '--file-write-allow-prefix' };

export class FilePathPolicy {
  private readonly allowed: string[];
  private readonly denied: string[];

  /** `allowed` replaces policy.fileAllowPrefixes (the write prefixes); the denied prefixes always apply. */
  constructor(policy: Pick<DriverPolicy, 'fileAllowPrefixes' | 'fileDenyPrefixes'>, private readonly access: FileAccess = READ_ACCESS, allowed = policy.fileAllowPrefixes) {
    this.allowed = bothForms(allowed);
    this.denied = bothForms(policy.fileDenyPrefixes);
  }

  /**
   * Why the file at `realPath` (absolute, symlinks resolved) may not be read, or undefined when it
   * may. `shown` is what the manifest named, for the message: the real path is not echoed.
   */
  refusal(realPath: string, shown: string): string | undefined {
    if (PER_PROCESS_PROC.test(realPath) || KEY_MATERIAL_NAME.test(path.basename(realPath)) || this.denied.some((prefix) => isUnder(realPath, prefix))) {
      const never = this.access.verb === 'read' ? 'never readable by' : 'never written by';
      return `${shown} is ${never} ${this.access.who} (secrets, key material, process memory and environment, or the agent's own state), and ${this.access.flag} cannot allow it`;
    }
    if (!this.allowed.some((prefix) => isUnder(realPath, prefix))) {
      const may = this.access.verb === 'read' ? 'may read' : 'may write';
      return refusal(`${shown} is outside the paths ${this.access.who} ${may}`, this.access.flag);
    }
    return undefined;
  }
}

const cache = new WeakMap<object, FilePathPolicy>();

/** One compiled policy per agent policy object: prefixes are resolved once, not at every read. */
export function filePathPolicy(policy: DriverPolicy): FilePathPolicy {
  let compiled = cache.get(policy);
  if (!compiled) cache.set(policy, (compiled = new FilePathPolicy(policy)));
  return compiled;
}
