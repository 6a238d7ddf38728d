#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=512 --v8-pool-size=2
// The sensorlet CLI: run, validate, get, crds, cert inspect, outbox stats.
import { Command, Option } from 'commander';
import yaml from 'js-yaml';
import { buildAllCrds } from '../../pkg/api/crds.js';
import { defaultDeviceId, defaultStateDir, startAgent, type Agent } from '../../pkg/agent/agent.js';
import { applyMemoryPolicy } from '../../pkg/agent/memory-policy.js';
import { SensorletError } from '../../pkg/api/errors.js';
import { getCommand } from './get.js';
import { isLaunchedChild, runLauncher, shouldLaunch, watchLauncher } from '../../pkg/ota/launcher.js';
import { RESTART_EXIT_CODE, SlotUpdater } from '../../pkg/ota/slots.js';
import { validateCommand } from './validate.js';
import { addPolicyOptions, policyFromOptions } from './policy-flags.js';

const DEFAULT_ADMIN_ADDR = '127.0.0.1:9470';
const program = new Command('sensorlet').description('Declarative data collection for edge devices.').showHelpAfterError();

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
    if (modes !== 1) program.error('error: give exactly one of --manifests DIR, --kubeconfig FILE, --in-cluster');
    if (options.selfUpdate && !options.manifests) program.error('error: --self-update needs --manifests (in a cluster the DaemonSet image updates the agent)');
    let restarting: Promise<void> | undefined;
    const agentUpdater =
      options.manifests && isLaunchedChild()
        ? new SlotUpdater({
            stateDir: options.stateDir,
            // Drained by the coordinator already; stop() seals and persists the rest, then the launcher starts the active build.
            restart: () => (restarting ??= agent.stop().then(() => process.exit(RESTART_EXIT_CODE), () => process.exit(RESTART_EXIT_CODE))),
          })
        : undefined;
    // The device id goes into topics: a level separator or wildcard there would forge other topics.
    if (/[+#/\u0000]/.test(options.deviceId)) program.error(`error: --device-id ${JSON.stringify(options.deviceId)} must not contain +, #, / or NUL`);
    // Self-update: this process becomes the launcher and runs the agent (the active build) as its
    // child; see pkg/ota/launcher.ts.
    if (options.manifests && shouldLaunch(options.stateDir, options.selfUpdate ?? false)) {
      process.exit(await runLauncher({ stateDir: options.stateDir, argv: process.argv.slice(2) }));
    }
    applyMemoryPolicy();
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
      policy: policyFromOptions(options),
      agentUpdater,
    }).catch((error: unknown) => {
      // A known refusal (the state dir is locked, ...) is one line, not a stack trace.
      if (error instanceof SensorletError) {
        console.error(`error: ${error.message}`);
        process.exit(1);
      }
      throw error;
    });
    let stopping = false;
    const stop = () => {
      if (stopping || restarting) return;
      stopping = true;
      agent.stop().then(
        () => process.exit(0),
        (error) => {
          console.error(`error while stopping: ${String(error)}`);
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => void agent.reload());
    if (agentUpdater) watchLauncher(stop);
  });

program
  .command('validate')
  .description('validate manifests; prints FILE[:LINE]: KIND/NAME: FIELD.PATH: message per error')
  .argument('<paths...>', 'files or folders')
  .action(async (paths: string[]) => {
    process.exitCode = await validateCommand(paths);
  });

program
  .command('get')
  .description('show resources of a running agent, kubectl-style')
  .argument('[kind]', 'sensor, sink or certificate')
  .argument('[name]')
  .addOption(new Option('-o, --output <format>').choices(['wide', 'yaml', 'json']))
  .option('--admin-addr <host:port>', 'admin API address of the agent', DEFAULT_ADMIN_ADDR)
  .action(async (kind, name, options) => {
    process.exitCode = await getCommand(options.adminAddr, kind, name, options.output);
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
