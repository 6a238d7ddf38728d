// The `run` flags that make up the operator policy (pkg/policy), and their parsing. Every flag here
// has a Helm value (helm/sensorlet/values.yaml) and a line in README's "Security model" table.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import yaml from 'js-yaml';
import { parseDuration } from '../../pkg/api/units.js';
import {
  ACTUATOR_DRIVER_NAMES,
  DEFAULT_CERTIFICATE_DIRECTORY,
  DEFAULT_FILE_ALLOW_PREFIXES,
  DEFAULT_SERIAL_ALLOW_PREFIXES,
  DEFAULT_MAX_READINGS_PER_SECOND,
  DEFAULT_MIN_INTERVAL_MS,
  DEFAULT_MIN_TIMEOUT_MS,
  defaultPolicy,
  type OperatorPolicy,
} from '../../pkg/policy/policy.js';

/** A flag value the agent cannot start with; main prints it on one line and exits 2 (a usage error). */
export class PolicyFlagError extends Error {}

export function addPolicyOptions(command: Command): Command {
  return command
    .option('--allow-command-driver', 'let Sensors run executables with the command driver (off: a manifest alone must never run code)')
    .option('--command-allowlist <paths...>', 'with --allow-command-driver: the only executables that may run')
    .option('--tenant-grant <grants...>', 'NAMESPACE=TENANT[,TENANT...]: Certificates in NAMESPACE may present these tenants (repeatable; none granted by default)')
    .option('--tenant-grants-file <file>', 'YAML map NAMESPACE: [TENANT, ...], added to --tenant-grant')
    .option('--certificate-dir <dirs...>', `the only folders Certificates (and Sink tls.caFile) may read files from (default ${DEFAULT_CERTIFICATE_DIRECTORY})`)
    .option('--allow-identity-patterns', "let Certificates set spec.identity patterns (which part of the SAN is the tenant); off: only the default SPIFFE pattern")
    .option('--pkcs11-module <paths...>', 'the only PKCS#11 modules a Certificate may load (pkcs11.module); none by default')
    .option('--secret-namespaces <namespaces...>', "cluster mode: the only namespaces whose Secrets Certificates' secretRef may read (default: the agent's namespace)")
    .option('--allow-firmware-commands', 'let Firmware with target: command run its install and rollback programs (off: a manifest alone must never run code)')
    .option('--allow-firmware-downgrade', 'let a Firmware install a version older than the installed one (off: an older signed build may carry flaws fixed since)')
    .option('--firmware-command-allowlist <paths...>', 'with --allow-firmware-commands: the only programs install and rollback commands may run (exact paths)')
    .option('--firmware-trust-dir <dir>', 'standalone: the folder of PEM public keys that verify Firmware (signature.keyRef.name → DIR/<name>.pem)')
    .option('--firmware-trust-secret <name>', "cluster mode: the Secret in the agent's namespace whose <name>.pem entries verify Firmware")
    .option('--agent-namespace <ns>', "cluster mode: the agent's own namespace (default: $POD_NAMESPACE, else the service account's)")
    .option(
      '--file-allow-prefix <paths...>',
      `the only files and folders the file driver may read, by real path; replaces the default (${DEFAULT_FILE_ALLOW_PREFIXES.join(' ')}). ` +
        'Secrets, key material, per-process /proc entries and the state dir stay refused',
    )
    .option(
      '--file-write-allow-prefix <paths...>',
      'the only files and folders Actuators with the file driver may write, by real path (none by default). ' +
        'The paths --file-allow-prefix can never allow stay refused',
    )
    .option(
      '--allow-actuator-drivers <drivers...>',
      `let Actuators with these drivers write to devices (${ACTUATOR_DRIVER_NAMES.join(', ')}; comma-separated or repeated; none by default). ` +
        'file and command also need --file-write-allow-prefix and --allow-command-driver',
    )
    .option(
      '--serial-allow-prefix <prefixes...>',
      `the only device names the serial and Modbus RTU drivers may open, by real path; replaces the default (${DEFAULT_SERIAL_ALLOW_PREFIXES.join(' ')})`,
    )
    .option('--min-interval <duration>', 'the shortest spec.interval a Sensor may use', `${DEFAULT_MIN_INTERVAL_MS}ms`)
    .option('--min-timeout <duration>', 'the shortest spec.timeout a Sensor may use', `${DEFAULT_MIN_TIMEOUT_MS}ms`)
    .option('--max-readings-per-second <n>', 'the most readings one Sensor may produce per second', String(DEFAULT_MAX_READINGS_PER_SECOND))
    .option('--allow-manifest-links-outside', 'follow symbolic links in the manifests folder that lead out of it (off: a manifest author could link any file the agent can read)')
    .option('--credentials-dir <dirs...>', 'folders whose files Sinks may use as usernameFrom.file / passwordFrom.file (broker credentials); none by default')
    .option('--admin-token-file <file>', 'admin API: bearer tokens (one per line, 16+ characters) required for everything but /healthz and /readyz; needed on a non-loopback --admin-addr')
    .option('--admin-token-review', 'admin API, cluster mode: also accept ServiceAccount tokens that TokenReview authenticates and SubjectAccessReview allows (like kube-rbac-proxy)')
    .option('--admin-insecure-no-auth', 'admin API: serve a non-loopback --admin-addr to anyone who can reach it, without authentication');
}

/** The policy the flags describe; throws an Error naming the flag when a value is unusable. */
export function policyFromOptions(options: Record<string, unknown>): OperatorPolicy {
  const policy = defaultPolicy();
  policy.drivers.allowCommandDriver = options.allowCommandDriver === true;
  policy.drivers.commandAllowlist = (options.commandAllowlist as string[] | undefined) ?? [];

  const certificates = policy.certificates;
  const directories = options.certificateDir as string[] | undefined;
  if (directories) certificates.directories = directories.map((dir) => path.resolve(dir));
  certificates.allowIdentityPatterns = options.allowIdentityPatterns === true;
  certificates.pkcs11Modules = ((options.pkcs11Module as string[] | undefined) ?? []).map((file) => path.resolve(file));
  const secretNamespaces = options.secretNamespaces as string[] | undefined;
  if (secretNamespaces) {
    for (const namespace of secretNamespaces) checkName(namespace, 'namespace', '--secret-namespaces');
    certificates.secretNamespaces = secretNamespaces;
  }
  for (const grant of (options.tenantGrant as string[] | undefined) ?? []) {
    const at = grant.indexOf('=');
    if (at <= 0) throw new PolicyFlagError(`--tenant-grant ${JSON.stringify(grant)}: expected NAMESPACE=TENANT[,TENANT...]`);
    addGrant(certificates.tenantGrants, grant.slice(0, at), grant.slice(at + 1).split(','), '--tenant-grant');
  }
  const grantsFile = options.tenantGrantsFile as string | undefined;
  if (grantsFile) {
    for (const [namespace, tenants] of Object.entries(readGrantsFile(grantsFile))) addGrant(certificates.tenantGrants, namespace, tenants, `--tenant-grants-file ${grantsFile}`);
  }
  policy.firmware.allowCommands = options.allowFirmwareCommands === true;
  policy.firmware.allowDowngrade = options.allowFirmwareDowngrade === true;
  policy.firmware.commandAllowlist = (options.firmwareCommandAllowlist as string[] | undefined) ?? [];
  policy.firmware.trustDir = options.firmwareTrustDir as string | undefined;
  policy.firmware.trustSecret = options.firmwareTrustSecret as string | undefined;
  policy.firmware.agentNamespace = (options.agentNamespace as string | undefined) || process.env.POD_NAMESPACE || undefined;

  const prefixes = options.fileAllowPrefix as string[] | undefined;
  if (prefixes !== undefined) {
    for (const prefix of prefixes) {
      if (!path.isAbsolute(prefix)) throw new PolicyFlagError(`--file-allow-prefix ${JSON.stringify(prefix)} must be an absolute path`);
    }
    policy.drivers.fileAllowPrefixes = prefixes;
  }
  const writePrefixes = (options.fileWriteAllowPrefix as string[] | undefined) ?? [];
  for (const prefix of writePrefixes) {
    if (!path.isAbsolute(prefix)) throw new PolicyFlagError(`--file-write-allow-prefix ${JSON.stringify(prefix)} must be an absolute path`);
  }
  policy.drivers.fileWritePrefixes = writePrefixes;
  const actuatorDrivers = ((options.allowActuatorDrivers as string[] | undefined) ?? []).flatMap((value) => value.split(',')).map((name) => name.trim()).filter((name) => name !== '');
  for (const name of actuatorDrivers) {
    if (!ACTUATOR_DRIVER_NAMES.includes(name)) throw new PolicyFlagError(`--allow-actuator-drivers ${JSON.stringify(name)} is not an actuator driver: use ${ACTUATOR_DRIVER_NAMES.join(', ')}`);
  }
  policy.drivers.actuatorDrivers = [...new Set(actuatorDrivers)];
  const serialPrefixes = options.serialAllowPrefix as string[] | undefined;
  if (serialPrefixes !== undefined) {
    for (const prefix of serialPrefixes) {
      if (!path.isAbsolute(prefix)) throw new PolicyFlagError(`--serial-allow-prefix ${JSON.stringify(prefix)} must be an absolute path`);
    }
    policy.drivers.serialAllowPrefixes = serialPrefixes;
  }
  policy.drivers.minIntervalMs = durationFlag('--min-interval', options.minInterval, DEFAULT_MIN_INTERVAL_MS);
  policy.drivers.minTimeoutMs = durationFlag('--min-timeout', options.minTimeout, DEFAULT_MIN_TIMEOUT_MS);
  const rate = options.maxReadingsPerSecond === undefined ? DEFAULT_MAX_READINGS_PER_SECOND : Number(options.maxReadingsPerSecond);
  if (!Number.isInteger(rate) || rate < 1) throw new PolicyFlagError(`--max-readings-per-second ${JSON.stringify(options.maxReadingsPerSecond)} must be a whole number of at least 1`);
  policy.drivers.maxReadingsPerSecond = rate;
  policy.manifests.allowLinksOutside = options.allowManifestLinksOutside === true;
  policy.sinks.credentialDirs = ((options.credentialsDir as string[] | undefined) ?? []).map((dir) => path.resolve(dir));
  policy.admin.tokenFile = options.adminTokenFile as string | undefined;
  policy.admin.tokenReview = options.adminTokenReview === true;
  policy.admin.insecureNoAuth = options.adminInsecureNoAuth === true;
  return policy;
}

function durationFlag(flag: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  let ms: number;
  try {
    ms = parseDuration(String(value));
  } catch (error) {
    throw new PolicyFlagError(`${flag}: ${(error as Error).message}`);
  }
  // Zero would be no bound at all: a Sensor polling in a tight loop.
  if (!(ms > 0)) throw new PolicyFlagError(`${flag} ${JSON.stringify(value)} must be greater than 0`);
  return ms;
}

function readGrantsFile(file: string): Record<string, string[]> {
  let parsed: unknown;
  try {
    parsed = yaml.load(readFileSync(file, 'utf8'), { schema: yaml.FAILSAFE_SCHEMA });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A file the agent cannot read says which way (ENOENT, EACCES); a YAML error gives its first line.
    throw new PolicyFlagError(`--tenant-grants-file ${file}: ${code === 'ENOENT' ? 'no such file' : code ? `cannot be read (${code})` : `${(error as Error).name}: ${(error as Error).message.split('\n')[0]}`}`);
  }
  if (parsed === undefined || parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new PolicyFlagError(`--tenant-grants-file ${file}: expected a map NAMESPACE: [TENANT, ...]`);
  const grants: Record<string, string[]> = {};
  for (const [namespace, tenants] of Object.entries(parsed as Record<string, unknown>)) {
    const list = typeof tenants === 'string' ? tenants.split(',') : tenants;
    if (!Array.isArray(list) || !list.every((tenant) => typeof tenant === 'string')) {
      throw new PolicyFlagError(`--tenant-grants-file ${file}: ${namespace}: expected a list of tenants`);
    }
    grants[namespace] = list as string[];
  }
  return grants;
}

function addGrant(grants: Map<string, Set<string>>, namespace: string, tenants: string[], flag: string): void {
  checkName(namespace, 'namespace', flag);
  const granted = grants.get(namespace) ?? new Set<string>();
  for (const raw of tenants) {
    const tenant = raw.trim();
    checkName(tenant, 'tenant', flag);
    granted.add(tenant);
  }
  grants.set(namespace, granted);
}

/** Namespaces and tenants are DNS labels (a tenant becomes part of topics and ACL user names). */
function checkName(value: string, what: string, flag: string): void {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)) throw new PolicyFlagError(`${flag}: ${JSON.stringify(value)} is not a valid ${what} (a DNS label)`);
}
