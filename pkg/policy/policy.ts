// The operator's policy: everything only the person who installs and starts the agent may unlock
// (running programs, reading files, key material, tenants, network exposure). It comes from
// command-line flags (mirrored by the Helm values and manifests/deploy) and never from a manifest:
// whoever can write a manifest describes what to collect and where to send it, within this policy.
// Anything a manifest asks for outside it is refused with a reason that names the flag that would
// allow it (see `refusal`), and nothing runs and nothing is read.

/** What the Sensor drivers may do. */
export interface DriverPolicy {
  allowCommandDriver: boolean;
  /** With allowCommandDriver: the executables that may run; empty means any. */
  commandAllowlist: string[];
  /**
   * The file driver reads only files whose real path (symlinks resolved) is one of these or lies
   * under one of them (`--file-allow-prefix`). A prefix names a file or a whole folder; it never
   * matches part of a name (`/sys` does not allow `/system`).
   */
  fileAllowPrefixes: string[];
  /**
   * Never readable by the file driver, whatever fileAllowPrefixes says: secrets, key material, the
   * agent's own state. The agent adds its state dir; every other part of the policy that names a
   * folder of key material (trust stores, certificate folders) adds it here too.
   */
  fileDenyPrefixes: string[];
  /** The shortest spec.interval a Sensor may ask for, in ms (`--min-interval`). */
  minIntervalMs: number;
  /** The shortest spec.timeout a Sensor may ask for, in ms (`--min-timeout`). */
  minTimeoutMs: number;
  /** The most readings one Sensor may produce per second (`--max-readings-per-second`). */
  maxReadingsPerSecond: number;
}

export interface OperatorPolicy {
  drivers: DriverPolicy;
}

/**
 * What the file driver may read with no flag: sysfs (hwmon, thermal, power supply, network
 * statistics) and a few system-wide /proc statistics. Per-process /proc entries are not among them.
 */
export const DEFAULT_FILE_ALLOW_PREFIXES: readonly string[] = [
  '/sys/',
  '/proc/loadavg',
  '/proc/uptime',
  '/proc/meminfo',
  '/proc/stat',
  '/proc/vmstat',
  '/proc/diskstats',
  '/proc/pressure/',
];

/**
 * Never readable by the file driver, even under a prefix the operator allowed: credentials and key
 * material, kernel memory and debug interfaces. Per-process /proc entries (environ, mem, cmdline,
 * fd/, root/ of any process, /proc/self included) are refused by pattern in pkg/drivers/file.
 */
export const ALWAYS_DENIED_FILE_PREFIXES: readonly string[] = [
  '/var/run/secrets/',
  '/run/secrets/',
  '/etc/shadow',
  '/etc/gshadow',
  '/etc/sudoers',
  '/etc/ssh/',
  '/etc/ssl/private/',
  '/etc/sensorlet/',
  '/root/',
  '/proc/kcore',
  '/proc/kmsg',
  '/proc/keys',
  '/proc/key-users',
  '/proc/kallsyms',
  '/proc/sysrq-trigger',
  '/sys/firmware/efi/efivars/',
  '/sys/kernel/debug/',
  '/sys/kernel/security/',
  '/sys/kernel/tracing/',
  '/sys/kernel/config/',
  // Reading it blocks while wakeup events are in progress, holding a libuv thread.
  '/sys/power/wakeup_count',
];

export const DEFAULT_MIN_INTERVAL_MS = 10;
export const DEFAULT_MIN_TIMEOUT_MS = 10;
export const DEFAULT_MAX_READINGS_PER_SECOND = 1000;

/** The policy of an agent started with no policy flags: nothing beyond the safe defaults. */
export function defaultPolicy(): OperatorPolicy {
  return {
    drivers: {
      allowCommandDriver: false,
      commandAllowlist: [],
      fileAllowPrefixes: [...DEFAULT_FILE_ALLOW_PREFIXES],
      fileDenyPrefixes: [...ALWAYS_DENIED_FILE_PREFIXES],
      minIntervalMs: DEFAULT_MIN_INTERVAL_MS,
      minTimeoutMs: DEFAULT_MIN_TIMEOUT_MS,
      maxReadingsPerSecond: DEFAULT_MAX_READINGS_PER_SECOND,
    },
  };
}

/** A refusal message that tells the operator which flag would allow what was refused. */
export function refusal(what: string, flag: string): string {
  return `${what}; only the operator can allow it (${flag})`;
}
