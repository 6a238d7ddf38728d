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
  sinks: SinkPolicy;
  admin: AdminPolicy;
}

/** The policy of an agent started with no policy flags: nothing beyond the safe defaults. */
export function defaultPolicy(): OperatorPolicy {
  return {
    drivers: { allowCommandDriver: false, commandAllowlist: [] },
    sinks: { credentialDirs: [] },
    admin: { tokenReview: false, insecureNoAuth: false },
  };
}

/** A refusal message that tells the operator which flag would allow what was refused. */
export function refusal(what: string, flag: string): string {
  return `${what}; only the operator can allow it (${flag})`;
}
