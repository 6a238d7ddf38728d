// The `run` flags that make up the operator policy (pkg/policy), and their parsing. Every flag here
// has a Helm value (helm/sensorlet/values.yaml) and a line in README's "Security model" table.
import path from 'node:path';
import type { Command } from 'commander';
import { defaultPolicy, type OperatorPolicy } from '../../pkg/policy/policy.js';

export function addPolicyOptions(command: Command): Command {
  return command
    .option('--allow-command-driver', 'let Sensors run executables with the command driver (off: a manifest alone must never run code)')
    .option('--command-allowlist <paths...>', 'with --allow-command-driver: the only executables that may run')
    .option('--credentials-dir <dirs...>', 'folders whose files Sinks may use as usernameFrom.file / passwordFrom.file (broker credentials); none by default')
    .option('--admin-token-file <file>', 'admin API: bearer tokens (one per line, 16+ characters) required for everything but /healthz and /readyz; needed on a non-loopback --admin-addr')
    .option('--admin-token-review', 'admin API, cluster mode: also accept ServiceAccount tokens that TokenReview authenticates and SubjectAccessReview allows (like kube-rbac-proxy)')
    .option('--admin-insecure-no-auth', 'admin API: serve a non-loopback --admin-addr to anyone who can reach it, without authentication');
}

export function policyFromOptions(options: Record<string, unknown>): OperatorPolicy {
  const policy = defaultPolicy();
  policy.drivers.allowCommandDriver = options.allowCommandDriver === true;
  policy.drivers.commandAllowlist = (options.commandAllowlist as string[] | undefined) ?? [];
  policy.sinks.credentialDirs = ((options.credentialsDir as string[] | undefined) ?? []).map((dir) => path.resolve(dir));
  policy.admin.tokenFile = options.adminTokenFile as string | undefined;
  policy.admin.tokenReview = options.adminTokenReview === true;
  policy.admin.insecureNoAuth = options.adminInsecureNoAuth === true;
  return policy;
}
