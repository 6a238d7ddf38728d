#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=512 --v8-pool-size=2
// The sensorlet CLI: run, validate, get, crds, cert inspect, firmware statement/sign, outbox stats.
import { statSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import yaml from 'js-yaml';
import { buildAllCrds } from '../../pkg/api/crds.js';
import { defaultDeviceId, defaultStateDir, startAgent, type Agent } from '../../pkg/agent/agent.js';
import { applyMemoryPolicy } from '../../pkg/agent/memory-policy.js';
import { FlagError } from '../../pkg/api/errors.js';
import { parseHostPort } from '../../pkg/admin/server.js';
import { describeKinds, getCommand } from './get.js';
import { isLaunchedChild, runLauncher, shouldLaunch, watchLauncher } from '../../pkg/ota/launcher.js';
import { RESTART_EXIT_CODE, SlotUpdater } from '../../pkg/ota/slots.js';
import { validateCommand } from './validate.js';
import { addPolicyOptions, PolicyFlagError, policyFromOptions } from './policy-flags.js';
import { buildInfo } from '../../pkg/api/version.js';

const DEFAULT_ADMIN_ADDR = '127.0.0.1:9470';
/** Well inside Kubernetes' default 30 s grace period (a clean stop takes well under 2 s). */
const STOP_DEADLINE_MS = 10_000;
/** Exit status of a usage error (a flag or argument the command cannot work with), as with most CLIs. */
const USAGE_EXIT_CODE = 2;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const build = buildInfo();
const program = new Command('sensorlet')
  .description('Declarative data collection for edge devices.')
  .version(`sensorlet ${build.version} (commit ${build.commit})`, '-V, --version', 'print the version and the commit it was built from')
  // Commander's own usage errors (an unknown option, a missing value) exit 2 like ours; help exits 0.
  .exitOverride((error: CommanderError) => {
    process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT_CODE);
  });

/** An operator's mistake on the command line: one line naming the flag, exit 2, no stack trace. */
function usageError(message: string): never {
  console.error(`error: ${message}`);
  process.exit(USAGE_EXIT_CODE);
}

/** The `run` flags checked before anything starts, so a typo is one clear line rather than a failure later. */
function checkRunFlags(options: { manifests?: string; kubeconfig?: string; stateDir: string; adminAddr: string; logLevel: string }): void {
  const kindOf = (file: string) => {
    try {
      return statSync(file).isDirectory() ? 'folder' : 'file';
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(error as NodeJS.ErrnoException).code})`;
    }
  };
  if (options.manifests !== undefined) {
    const found = kindOf(options.manifests);
    if (found === 'missing') usageError(`--manifests ${options.manifests}: no such folder`);
    if (found !== 'folder') usageError(`--manifests ${options.manifests}: not a folder (${found}); give the folder that holds the manifests`);
  }
  if (options.kubeconfig !== undefined) {
    const found = kindOf(options.kubeconfig);
    if (found !== 'file') usageError(`--kubeconfig ${options.kubeconfig}: ${found === 'missing' ? 'no such file' : `not a readable file (${found})`}`);
  }
  const stateDir = kindOf(options.stateDir);
  if (stateDir !== 'folder' && stateDir !== 'missing') usageError(`--state-dir ${options.stateDir}: not a folder (${stateDir})`);
  if (!LOG_LEVELS.includes(options.logLevel)) usageError(`--log-level ${JSON.stringify(options.logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`);
  try {
    parseHostPort(options.adminAddr);
  } catch (error) {
    usageError((error as Error).message);
  }
}

const run = program
  .command('run')
  .description('run the agent on a manifests folder, or against a Kubernetes API server')
  .option('--manifests <dir>', 'standalone mode: watch this folder of manifests')
  .option('--kubeconfig <file>', 'cluster mode: connect with this kubeconfig')
  .option('--in-cluster', 'cluster mode: use the pod service account')
  .option('--namespace <ns>', 'cluster mode: watch only this namespace')
  .option('--state-dir <dir>', 'where outboxes, sequence counters and status are kept', defaultStateDir())
  .option('--admin-addr <host:port>', 'admin API address', DEFAULT_ADMIN_ADDR)
  .option('--device-id <id>', 'this device, as named in readings and topics', defaultDeviceId())
  .option('--node-name <name>', 'this agent in status.nodes[] (Kubernetes: the node name)')
  .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
  .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'pretty']).default('json'))
  .option('--self-update', 'standalone: run under a launcher so that a Firmware with target: agent can update this agent (A/B slots in the state dir)');
addPolicyOptions(run).action(async (options) => {
    const modes = [options.manifests, options.kubeconfig, options.inCluster].filter(Boolean).length;
    if (modes !== 1) usageError('give exactly one of --manifests DIR, --kubeconfig FILE, --in-cluster');
    if (options.selfUpdate && !options.manifests) usageError('--self-update needs --manifests (in a cluster the DaemonSet image updates the agent)');
    checkRunFlags(options);
    let restarting: Promise<void> | undefined;
    const agentUpdater =
      options.manifests && isLaunchedChild()
        ? new SlotUpdater({
            stateDir: options.stateDir,
            // Drained by the coordinator already; stop() seals and persists the rest, then the launcher starts the active build.
            restart: () => (restarting ??= agent.stop().then(() => process.exit(RESTART_EXIT_CODE), () => process.exit(RESTART_EXIT_CODE))),
          })
        : undefined;
    let policy;
    try {
      policy = policyFromOptions(options);
    } catch (error) {
      if (error instanceof PolicyFlagError) usageError(error.message);
      throw error;
    }
    // The device id goes into topics: a level separator or wildcard there would forge other topics.
    if (/[+#/\u0000]/.test(options.deviceId)) usageError(`--device-id ${JSON.stringify(options.deviceId)} must not contain +, #, / or NUL`);
    // Self-update: this process becomes the launcher and runs the agent (the active build) as its
    // child; see pkg/ota/launcher.ts.
    if (options.manifests && shouldLaunch(options.stateDir, options.selfUpdate ?? false)) {
      process.exit(await runLauncher({ stateDir: options.stateDir, argv: process.argv.slice(2) }));
    }
    applyMemoryPolicy();
    // Signals are handled from here on, so that one arriving while the agent starts (a slow folder,
    // an initial sync) stops it as soon as it is up, with the usual flush, instead of killing it.
    let stopRequested = false;
    let stopping = false;
    let started: Agent | undefined;
    const stop = () => {
      if (!stopRequested) {
        stopRequested = true;
        // A backstop (also for a start-up that never finishes): every stop step is bounded, so this
        // fires only on a defect, and says so.
        setTimeout(() => {
          console.error(`error: the agent did not stop within ${STOP_DEADLINE_MS / 1000}s of the signal; exiting without a complete flush`);
          process.exit(1);
        }, STOP_DEADLINE_MS).unref();
      }
      if (!started || stopping || restarting) return;
      stopping = true;
      started.stop().then(
        () => process.exit(0),
        (error) => {
          console.error(`error while stopping: ${String(error)}`);
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    const agent: Agent = await startAgent({
      manifests: options.manifests,
      kubeconfig: options.kubeconfig,
      inCluster: options.inCluster,
      namespace: options.namespace,
      stateDir: options.stateDir,
      adminAddr: options.adminAddr,
      deviceId: options.deviceId,
      nodeName: options.nodeName ?? options.deviceId,
      logLevel: options.logLevel,
      logFormat: options.logFormat,
      policy,
      agentUpdater,
    }).catch((error: Error) => {
      // A flag the agent cannot start with is a usage error (2); anything else a failure (1).
      if (error instanceof FlagError) usageError(error.message);
      console.error(`error: ${error.message}`);
      process.exit(1);
    });
    started = agent;
    if (stopRequested) stop();
    // The agent logs every reload, and a failed one (with its reason): nothing more to do here.
    process.on('SIGHUP', () => void agent.reload('SIGHUP').catch(() => undefined));
    if (agentUpdater) watchLauncher(stop);
  });

program
  .command('validate')
  .description('validate manifests; prints FILE[:LINE]: KIND/NAME: FIELD.PATH: message per error')
  .argument('<paths...>', 'files or folders')
  .option('--allow-manifest-links-outside', 'follow symbolic links that lead out of a folder given (as `run` does with the same flag)')
  .action(async (paths: string[], options: { allowManifestLinksOutside?: boolean }) => {
    process.exitCode = await validateCommand(paths, { allowLinksOutside: options.allowManifestLinksOutside === true });
  });

program
  .command('get')
  .description('show resources of a running agent, kubectl-style')
  .argument('[kind]', 'which kind (any of its names below, any case); all kinds when left out')
  .argument('[name]')
  .addOption(new Option('-o, --output <format>').choices(['wide', 'yaml', 'json']))
  .option('-w, --watch', 'keep watching: print again whenever something shown changes (Ctrl-C ends)')
  .option('--admin-addr <host:port>', 'admin API address of the agent', DEFAULT_ADMIN_ADDR)
  .option('--token-file <file>', 'bearer token for an admin API that needs one (the agent\'s --admin-token-file, or a Kubernetes token)')
  .addHelpText('after', `\nKinds (plural, then the other names accepted):\n${describeKinds().replace(/^/gm, '  ')}`)
  .action(async (kind, name, options) => {
    process.exitCode = await getCommand(options.adminAddr, kind, name, { output: options.output, tokenFile: options.tokenFile, watch: options.watch === true });
  });

program
  .command('crds')
  .description('print the CustomResourceDefinitions')
  .action(() => {
    process.stdout.write(buildAllCrds().map((crd) => yaml.dump(crd, { noRefs: true, lineWidth: -1 })).join('---\n'));
  });

const cert = program.command('cert').description('certificate tools');
cert
  .command('inspect')
  .description('subject, SANs, tenant, device, validity and chain of a PEM or PKCS#12 file')
  .argument('<file>')
  .option('--password-env <var>', 'environment variable holding the PKCS#12 password')
  .option('--ca-file <file>', 'verify the chain against this CA')
  .option('--key-file <file>', 'PEM: check that this private key belongs to the certificate')
  .action(async (file, options) => {
    const { inspectCommand } = await import('./cert-inspect.js');
    process.exitCode = await inspectCommand(file, options);
  });

const firmware = program.command('firmware').description('Firmware signing: the statement a signature covers, and signing it');
firmware
  .command('statement')
  .description('print the canonical statement (version, target, install/rollback argv, artifact SHA-256 and size) to sign elsewhere')
  .argument('<manifest>', 'a file with one Firmware')
  .requiredOption('--artifact <file>', 'the artifact the Firmware installs')
  .action(async (manifest, options) => {
    const { statementCommand } = await import('./firmware-sign.js');
    process.exitCode = await statementCommand(manifest, options);
  });
firmware
  .command('sign')
  .description('sign the statement of each Firmware in the manifest; prints the manifest with sha256, size and signature filled in')
  .argument('<manifest>', 'a file with Firmware resources')
  .requiredOption('--artifact <file>', 'the artifact they install')
  .requiredOption('--key <file>', 'PEM private key: Ed25519 or EC P-256')
  .option('--key-name <name>', "the public key's name in the agents' trust store (default: the manifest's signature.keyRef.name)")
  .action(async (manifest, options) => {
    const { signCommand } = await import('./firmware-sign.js');
    process.exitCode = await signCommand(manifest, options);
  });

const outbox = program.command('outbox').description('outbox tools');
outbox
  .command('stats')
  .description('queue depth, age and drops of every sink outbox; works with the agent stopped')
  .option('--state-dir <dir>', 'the agent state dir', defaultStateDir())
  .option('-o, --output <format>', 'json for machine reading')
  .action(async (options) => {
    const { outboxStatsCommand } = await import('./outbox-stats.js');
    process.exitCode = await outboxStatsCommand(options.stateDir, options.output);
  });

await program.parseAsync(process.argv);
