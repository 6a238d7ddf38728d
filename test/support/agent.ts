// Runs the real `sensorlet run` CLI as a child process, as a user would, and talks to its admin API.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { freePort, waitFor } from './ports.js';

export const CLI = path.join(PACKAGE_ROOT, 'dist', 'cmd', 'sensorlet', 'main.js');
/** The Node flags every shipped launcher uses (npm start, the bin's shebang, the DaemonSet). */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=512', '--v8-pool-size=2'];
/** Extra Node flags for every agent a test or bench starts, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile one. */
const EXTRA_AGENT_NODE_FLAGS = (process.env.SENSORLET_AGENT_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);

export interface AgentProcessOptions {
  /** Folder mode. Omit it for cluster mode and pass `--kubeconfig FILE --node-name N` in extraArgs. */
  manifests?: string;
  stateDir?: string;
  deviceId?: string;
  extraArgs?: string[];
  /** The CLI to run (default: this build's bundle). */
  cli?: string;
  env?: NodeJS.ProcessEnv;
  /** Run the agent as this user and group (the test runs as root; file modes bind other users only). */
  user?: { uid: number; gid: number };
  /** A program that runs the agent's command line (e.g. setpriv with capabilities dropped). */
  wrapper?: string[];
  /** The host the admin API binds (default 127.0.0.1); the test always connects through 127.0.0.1. */
  adminHost?: string;
  /** Sent as `Authorization: Bearer` by resources(), metrics() and reload(). */
  adminToken?: string;
  /** How long start() waits for /readyz (default 15 s; thousands of resources take longer). */
  readyTimeoutMs?: number;
}

/** The operator policy flags a test agent is started with (see cmd/sensorlet/policy-flags.ts). */
export interface TestPolicy {
  /** --certificate-dir: where the test's key material lives (a test PKI's dir, a SoftHSM cert dir...). */
  certificateDirs?: string[];
  /** --tenant-grant NAMESPACE=TENANT,...: which namespace may present which tenant. */
  tenantGrants?: Record<string, string[]>;
  /** --pkcs11-module */
  pkcs11Modules?: string[];
  /** --secret-namespaces */
  secretNamespaces?: string[];
  /** --allow-actuator-drivers: the actuator drivers that may write (none by default). */
  actuatorDrivers?: string[];
}

/** The `sensorlet run` arguments for a TestPolicy, to put in `extraArgs`. */
export function policyArgs(policy: TestPolicy): string[] {
  return [
    ...(policy.certificateDirs?.length ? ['--certificate-dir', ...policy.certificateDirs] : []),
    ...Object.entries(policy.tenantGrants ?? {}).flatMap(([namespace, tenants]) => [`--tenant-grant=${namespace}=${tenants.join(',')}`]),
    ...(policy.pkcs11Modules?.length ? ['--pkcs11-module', ...policy.pkcs11Modules] : []),
    ...(policy.secretNamespaces?.length ? ['--secret-namespaces', ...policy.secretNamespaces] : []),
    ...(policy.actuatorDrivers?.length ? [`--allow-actuator-drivers=${policy.actuatorDrivers.join(',')}`] : []),
  ];
}

export interface ListedResource {
  kind: string;
  metadata: { name: string; namespace: string; generation: number; labels?: Record<string, string> };
  spec: any;
  status: { nodes: { name: string; observedGeneration?: number; conditions: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[]; [fact: string]: any }[] };
}

export class AgentProcess {
  stdout = '';
  stderr = '';
  private stdoutListeners: ((chunk: string) => void)[] = [];
  readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly adminAddr: string,
    readonly stateDir: string,
    private readonly adminToken?: string,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      for (const listener of this.stdoutListeners) listener(chunk);
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(options: AgentProcessOptions): Promise<AgentProcess> {
    const stateDir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), 'sensorlet-state-'));
    const port = await freePort();
    const adminAddr = `127.0.0.1:${port}`;
    const adminHost = options.adminHost ?? '127.0.0.1';
    const args = [
      ...AGENT_NODE_FLAGS,
      ...EXTRA_AGENT_NODE_FLAGS,
      options.cli ?? CLI, 'run',
      ...(options.manifests !== undefined ? ['--manifests', options.manifests] : []),
      '--state-dir', stateDir,
      '--admin-addr', `${adminHost.includes(':') ? `[${adminHost}]` : adminHost}:${port}`,
      '--device-id', options.deviceId ?? 'test-device',
      '--log-level', 'info',
      ...(options.extraArgs ?? []),
    ];
    // Its own process group: with --self-update the child is a launcher whose agent is a grandchild,
    // and kill() (SIGKILL cannot be forwarded) must take both down, as a power cut would.
    const [command, ...commandArgs] = [...(options.wrapper ?? []), process.execPath, ...args];
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, detached: true, ...options.user });
    const agent = new AgentProcess(child, adminAddr, stateDir, options.adminToken);
    try {
      await waitFor(async () => (await fetch(`http://${adminAddr}/readyz`)).ok, { timeoutMs: options.readyTimeoutMs ?? 15_000, what: 'agent ready' });
    } catch (error) {
      // A child left running keeps the test runner waiting on its pipes for ever.
      await agent.kill();
      throw new Error(`${(error as Error).message} (stderr: ${agent.stderr.slice(-2000)}; stdout: ${agent.stdout.slice(-2000)})`);
    }
    return agent;
  }

  onStdout(listener: (chunk: string) => void): void {
    this.stdoutListeners.push(listener);
  }

  /** The Authorization header for the admin API, when the agent was given a token. */
  get adminHeaders(): Record<string, string> {
    return this.adminToken ? { authorization: `Bearer ${this.adminToken}` } : {};
  }

  async resources(): Promise<ListedResource[]> {
    const response = await fetch(`http://${this.adminAddr}/api/v1/resources`, { headers: this.adminHeaders });
    return ((await response.json()) as { items: ListedResource[] }).items;
  }

  async resource(kind: string, name: string): Promise<ListedResource | undefined> {
    return (await this.resources()).find((item) => item.kind === kind && item.metadata.name === name);
  }

  async condition(kind: string, name: string, type: string) {
    return (await this.resource(kind, name))?.status.nodes[0]?.conditions.find((condition) => condition.type === type);
  }

  /** Waits until a condition has the given status (and reason, when given). */
  async waitForCondition(kind: string, name: string, type: string, status: string, reason?: string, timeoutMs = 10_000) {
    try {
      return await waitFor(
        async () => {
          const condition = await this.condition(kind, name, type);
          return condition && condition.status === status && (!reason || condition.reason === reason) ? condition : undefined;
        },
        { timeoutMs, what: `${kind}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}` },
      );
    } catch (error) {
      // The state at the deadline, not at the start of the wait.
      const now = await this.condition(kind, name, type).catch(() => undefined);
      throw new Error(`${(error as Error).message}; now: ${JSON.stringify(now)}`);
    }
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://${this.adminAddr}/metrics`, { headers: this.adminHeaders })).text();
  }

  async reload(): Promise<void> {
    await fetch(`http://${this.adminAddr}/reload`, { method: 'POST', headers: this.adminHeaders });
  }

  /** SIGTERM: the agent must flush, persist and exit 0. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    return this.exited;
  }

  /** kill -9 of the whole process group (launcher and agent): no chance to flush. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
    await this.exited;
  }
}
