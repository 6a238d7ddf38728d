// The `run` flags that make up the operator policy (pkg/policy), and their parsing. Every flag here
// has a Helm value (helm/sensorlet/values.yaml) and a line in README's "Security model" table.
import path from 'node:path';
import type { Command } from 'commander';
import { parseDuration } from '../../pkg/api/units.js';
import {
  DEFAULT_FILE_ALLOW_PREFIXES,
  DEFAULT_MAX_READINGS_PER_SECOND,
  DEFAULT_MIN_INTERVAL_MS,
  DEFAULT_MIN_TIMEOUT_MS,
  defaultPolicy,
  type OperatorPolicy,
} from '../../pkg/policy/policy.js';

export function addPolicyOptions(command: Command): Command {
  return command
    .option('--allow-command-driver', 'let Sensors run executables with the command driver (off: a manifest alone must never run code)')
    .option('--command-allowlist <paths...>', 'with --allow-command-driver: the only executables that may run')
    .option(
      '--file-allow-prefix <paths...>',
      `the only files and folders the file driver may read, by real path; replaces the default (${DEFAULT_FILE_ALLOW_PREFIXES.join(' ')}). ` +
        'Secrets, key material, per-process /proc entries and the state dir stay refused',
    )
    .option('--min-interval <duration>', 'the shortest spec.interval a Sensor may use', `${DEFAULT_MIN_INTERVAL_MS}ms`)
    .option('--min-timeout <duration>', 'the shortest spec.timeout a Sensor may use', `${DEFAULT_MIN_TIMEOUT_MS}ms`)
    .option('--max-readings-per-second <n>', 'the most readings one Sensor may produce per second', String(DEFAULT_MAX_READINGS_PER_SECOND));
}

/** The policy the flags describe; throws an Error naming the flag when a value is unusable. */
export function policyFromOptions(options: Record<string, unknown>): OperatorPolicy {
  const policy = defaultPolicy();
  policy.drivers.allowCommandDriver = options.allowCommandDriver === true;
  policy.drivers.commandAllowlist = (options.commandAllowlist as string[] | undefined) ?? [];
  const prefixes = options.fileAllowPrefix as string[] | undefined;
  if (prefixes !== undefined) {
    for (const prefix of prefixes) {
      if (!path.isAbsolute(prefix)) throw new Error(`--file-allow-prefix ${JSON.stringify(prefix)} must be an absolute path`);
    }
    policy.drivers.fileAllowPrefixes = prefixes;
  }
  policy.drivers.minIntervalMs = durationFlag('--min-interval', options.minInterval, DEFAULT_MIN_INTERVAL_MS);
  policy.drivers.minTimeoutMs = durationFlag('--min-timeout', options.minTimeout, DEFAULT_MIN_TIMEOUT_MS);
  const rate = options.maxReadingsPerSecond === undefined ? DEFAULT_MAX_READINGS_PER_SECOND : Number(options.maxReadingsPerSecond);
  if (!Number.isInteger(rate) || rate < 1) throw new Error(`--max-readings-per-second ${JSON.stringify(options.maxReadingsPerSecond)} must be a whole number of at least 1`);
  policy.drivers.maxReadingsPerSecond = rate;
  return policy;
}

function durationFlag(flag: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(String(value));
  } catch (error) {
    throw new Error(`${flag}: ${(error as Error).message}`);
  }
  // Zero would be no bound at all: a Sensor polling in a tight loop.
  if (!(ms > 0)) throw new Error(`${flag} ${JSON.stringify(value)} must be greater than 0`);
  return ms;
}
