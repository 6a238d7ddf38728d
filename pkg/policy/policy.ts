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
  /**
   * The file actuator driver writes only files whose real path is one of these or lies under one of
   * them (`--file-write-allow-prefix`; none by default: writing is more dangerous than reading).
   * fileDenyPrefixes apply to writing too.
   */
  fileWritePrefixes: string[];
  /**
   * The actuator drivers whose Actuators may write at all (`--allow-actuator-drivers`; none by
   * default: reading a device never changes it, writing does). file and command also need their own
   * flags (--file-write-allow-prefix, --allow-command-driver).
   */
  actuatorDrivers: string[];
  /**
   * Device name prefixes the serial and Modbus RTU drivers may open, judged by real path
   * (`--serial-allow-prefix`): serial lines, never terminals (/dev/pts/N, /dev/ttyN, the console).
   */
  serialAllowPrefixes: string[];
  /** The shortest spec.interval a Sensor may ask for, in ms (`--min-interval`). */
  minIntervalMs: number;
  /** The shortest spec.timeout a Sensor may ask for, in ms (`--min-timeout`). */
  minTimeoutMs: number;
  /** The most readings one Sensor may produce per second (`--max-readings-per-second`). */
  maxReadingsPerSecond: number;
}

/**
 * Certificate material and the tenants it may present. A Certificate names files, environment
 * variables, a PKCS#11 module or (cluster mode) a Secret; each is read only where the operator said
 * so, and the identity it yields is used only if its tenant was granted to the Certificate's namespace.
 */
export interface CertificatePolicy {
  /**
   * Certificates may set their own `spec.identity` patterns (which SAN part is the tenant); off, only
   * the default SPIFFE pattern is used (`--allow-identity-patterns`).
   */
  allowIdentityPatterns: boolean;
  /** Folders whose files Certificates (and Sinks' `tls.caFile`) may read; symlinks must not lead out. */
  directories: string[];
  /** PKCS#11 modules (shared libraries the agent loads: code) a Certificate may name in `pkcs11.module`. */
  pkcs11Modules: string[];
  /**
   * Namespace → the tenants its Certificates may present. A namespace that is not listed may present
   * none: with no grant at all, only connections without a client certificate work.
   */
  tenantGrants: Map<string, Set<string>>;
  /**
   * Cluster mode: the namespaces whose Secrets `spec.secretRef` may read. Unset: the agent's own
   * namespace (where the operator keeps its Secrets).
   */
  secretNamespaces?: string[];
}

/** What Firmware resources may do: run install programs, and which keys verify what they install. */
export interface FirmwarePolicy {
  /** Firmware with `target: command` may run its install and rollback programs. */
  allowCommands: boolean;
  /**
   * A Firmware may install a version older than the one installed (see pkg/ota/version-order.ts).
   * Off: an older build the vendor once signed may carry flaws fixed since.
   */
  allowDowngrade?: boolean;
  /** With allowCommands: the only programs (exact paths) install and rollback commands may run; empty means any. */
  commandAllowlist: string[];
  /** Standalone trust store: a folder of PEM public keys, `<name>.pem`, named by `signature.keyRef.name`. */
  trustDir?: string;
  /** Cluster trust store: a Secret in the agent's own namespace whose `<name>.pem` entries are the keys. */
  trustSecret?: string;
  /** The agent's own namespace (where trustSecret is read); else POD_NAMESPACE, else the service account's. */
  agentNamespace?: string;
}

/** What the manifests folder source may read. */
export interface ManifestsPolicy {
  /** Follow symbolic links whose target lies outside the manifests folder. */
  allowLinksOutside: boolean;
}

/** What Sinks may read to connect. */
export interface SinkPolicy {
  /** Folders whose files usernameFrom.file / passwordFrom.file may name; empty: no file at all. */
  credentialDirs: string[];
}

/** Who may use the admin API beyond /healthz and /readyz (pkg/admin/auth.ts). */
export interface AdminPolicy {
  /** Bearer tokens, one per line; when set, required on every address. */
  tokenFile?: string;
  /** Cluster mode: also accept tokens the API server's TokenReview authenticates (and SubjectAccessReview allows). */
  tokenReview: boolean;
  /** Serve a non-loopback address with no authentication at all: the operator's explicit choice. */
  insecureNoAuth: boolean;
}

export interface OperatorPolicy {
  drivers: DriverPolicy;
  certificates: CertificatePolicy;
  firmware: FirmwarePolicy;
  manifests: ManifestsPolicy;
  sinks: SinkPolicy;
  admin: AdminPolicy;
}

/** Where Certificate files may live when the operator names no --certificate-dir. */
export const DEFAULT_CERTIFICATE_DIRECTORY = '/etc/sensorlet/pki';

/**
 * `passwordFrom.env` / `pinFrom.env` (and every other `…From.env`) may read only variables with this
 * prefix: the agent's environment also holds what a manifest must never see (cloud credentials,
 * service tokens), so the operator exposes a secret to manifests by naming it SENSORLET_SECRET_….
 */
export const SECRET_ENV_PREFIX = 'SENSORLET_SECRET_';

/** Whether the operator granted `tenant` to `namespace`. */
export function tenantGranted(policy: CertificatePolicy, namespace: string, tenant: string): boolean {
  return policy.tenantGrants.get(namespace)?.has(tenant) ?? false;
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

/** The device names of serial lines on Linux boards: UARTs, USB adapters, modems, Bluetooth serial. */
export const DEFAULT_SERIAL_ALLOW_PREFIXES = [
  '/dev/ttyS',
  '/dev/ttyUSB',
  '/dev/ttyACM',
  '/dev/ttyAMA',
  '/dev/ttyO',
  '/dev/ttymxc',
  '/dev/ttySAC',
  '/dev/ttyTHS',
  '/dev/ttyLP',
  '/dev/ttyXRUSB',
  '/dev/rfcomm',
  '/dev/serial/',
];

/** The values --allow-actuator-drivers takes: the built-in actuator drivers. */
export const ACTUATOR_DRIVER_NAMES: readonly string[] = ['modbus', 'serial', 'file', 'command'];

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
      fileWritePrefixes: [],
      actuatorDrivers: [],
      serialAllowPrefixes: [...DEFAULT_SERIAL_ALLOW_PREFIXES],
      minIntervalMs: DEFAULT_MIN_INTERVAL_MS,
      minTimeoutMs: DEFAULT_MIN_TIMEOUT_MS,
      maxReadingsPerSecond: DEFAULT_MAX_READINGS_PER_SECOND,
    },
    certificates: { directories: [DEFAULT_CERTIFICATE_DIRECTORY], pkcs11Modules: [], tenantGrants: new Map(), allowIdentityPatterns: false },
    firmware: { allowCommands: false, allowDowngrade: false, commandAllowlist: [] },
    manifests: { allowLinksOutside: false },
    sinks: { credentialDirs: [] },
    admin: { tokenReview: false, insecureNoAuth: false },
  };
}

/** A refusal message that tells the operator which flag would allow what was refused. */
export function refusal(what: string, flag: string): string {
  return `${what}; only the operator can allow it (${flag})`;
}
