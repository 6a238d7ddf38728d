// The `run` flags that make up the operator policy (pkg/policy), and their parsing. Every flag here
// has a Helm value (helm/sensorlet/values.yaml) and a line in README's "Security model" table.
import type { Command } from 'commander';
import { defaultPolicy, type OperatorPolicy } from '../../pkg/policy/policy.js';

export function addPolicyOptions(command: Command): Command {
  return command
    .option('--allow-command-driver', 'let Sensors run executables with the command driver (off: a manifest alone must never run code)')
    .option('--command-allowlist <paths...>', 'with --allow-command-driver: the only executables that may run')
    .option('--allow-firmware-commands', 'let Firmware with target: command run its install and rollback programs (off: a manifest alone must never run code)')
    .option('--firmware-command-allowlist <paths...>', 'with --allow-firmware-commands: the only programs install and rollback commands may run (exact paths)')
    .option('--firmware-trust-dir <dir>', 'standalone: the folder of PEM public keys that verify Firmware (signature.keyRef.name → DIR/<name>.pem)')
    .option('--firmware-trust-secret <name>', "cluster mode: the Secret in the agent's namespace whose <name>.pem entries verify Firmware")
    .option('--agent-namespace <ns>', "cluster mode: the agent's own namespace (default: $POD_NAMESPACE, else the service account's)");
}

export function policyFromOptions(options: Record<string, unknown>): OperatorPolicy {
  const policy = defaultPolicy();
  policy.drivers.allowCommandDriver = options.allowCommandDriver === true;
  policy.drivers.commandAllowlist = (options.commandAllowlist as string[] | undefined) ?? [];
  policy.firmware.allowCommands = options.allowFirmwareCommands === true;
  policy.firmware.commandAllowlist = (options.firmwareCommandAllowlist as string[] | undefined) ?? [];
  policy.firmware.trustDir = options.firmwareTrustDir as string | undefined;
  policy.firmware.trustSecret = options.firmwareTrustSecret as string | undefined;
  policy.firmware.agentNamespace = (options.agentNamespace as string | undefined) || process.env.POD_NAMESPACE || undefined;
  return policy;
}
