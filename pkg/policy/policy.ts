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

/** What Firmware resources may do: run install programs, and which keys verify what they install. */
export interface FirmwarePolicy {
  /** Firmware with `target: command` may run its install and rollback programs. */
  allowCommands: boolean;
  /** With allowCommands: the only programs (exact paths) install and rollback commands may run; empty means any. */
  commandAllowlist: string[];
  /** Standalone trust store: a folder of PEM public keys, `<name>.pem`, named by `signature.keyRef.name`. */
  trustDir?: string;
  /** Cluster trust store: a Secret in the agent's own namespace whose `<name>.pem` entries are the keys. */
  trustSecret?: string;
  /** The agent's own namespace (where trustSecret is read); else POD_NAMESPACE, else the service account's. */
  agentNamespace?: string;
}

export interface OperatorPolicy {
  drivers: DriverPolicy;
  firmware: FirmwarePolicy;
}

/** The policy of an agent started with no policy flags: nothing beyond the safe defaults. */
export function defaultPolicy(): OperatorPolicy {
  return {
    drivers: { allowCommandDriver: false, commandAllowlist: [] },
    firmware: { allowCommands: false, commandAllowlist: [] },
  };
}

/** A refusal message that tells the operator which flag would allow what was refused. */
export function refusal(what: string, flag: string): string {
  return `${what}; only the operator can allow it (${flag})`;
}
