// The `run` flags that make up the operator policy (pkg/policy), and their parsing. Every flag here
// has a Helm value (helm/sensorlet/values.yaml) and a line in README's "Security model" table.
import type { Command } from 'commander';
import { defaultPolicy, type OperatorPolicy } from '../../pkg/policy/policy.js';

export function addPolicyOptions(command: Command): Command {
  return command
    .option('--allow-command-driver', 'let Sensors run executables with the command driver (off: a manifest alone must never run code)')
    .option('--command-allowlist <paths...>', 'with --allow-command-driver: the only executables that may run')
    .option('--allow-manifest-links-outside', 'follow symbolic links in the manifests folder that lead out of it (off: a manifest author could link any file the agent can read)');
}

export function policyFromOptions(options: Record<string, unknown>): OperatorPolicy {
  const policy = defaultPolicy();
  policy.drivers.allowCommandDriver = options.allowCommandDriver === true;
  policy.drivers.commandAllowlist = (options.commandAllowlist as string[] | undefined) ?? [];
  policy.manifests.allowLinksOutside = options.allowManifestLinksOutside === true;
  return policy;
}
