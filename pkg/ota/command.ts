// Runs install and rollback commands: argv only (never a shell), `{file}` substituted, bounded by a
// timeout, output kept short for status messages. Whether one may run at all is the operator's
// call (installCommandRefusal), checked before anything is downloaded and again right before it runs.
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { refusal, type FirmwarePolicy } from '../policy/policy.js';
import { describeUntrusted } from '../api/untrusted.js';
import { setBoundedTimeout } from '../observability/clock.js';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
}

const OUTPUT_LIMIT = 4096;

const shown = (text: string) => JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);

function statePaths(stateDir: string): string[] {
  const paths = [path.resolve(stateDir)];
  try {
    paths.push(realpathSync(stateDir));
  } catch {
    // not created yet: the resolved path is the one
  }
  return paths;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/**
 * Why `argv` (spec.install.command or spec.rollback.command, named by `field`) may not run under
 * the operator's policy, or undefined when it may. Exact path match on the allowlist, like the
 * command driver's: a basename match would let /tmp/x/flash pass for /usr/sbin/flash. No argument
 * may name a file in the state dir — it holds downloads, cut-short ones among them; `{file}` is the
 * one way to hand the verified artifact to the program.
 */
export function installCommandRefusal(argv: readonly string[], field: string, policy: FirmwarePolicy, stateDir: string): string | undefined {
  if (!policy.allowCommands) return refusal(`${field}: Firmware install and rollback commands are disabled`, '--allow-firmware-commands');
  const program = argv[0] ?? '';
  if (policy.commandAllowlist.length > 0 && !policy.commandAllowlist.includes(program)) {
    return refusal(`${field}[0] ${shown(program)} is not on the firmware command allowlist (${policy.commandAllowlist.join(', ')})`, '--firmware-command-allowlist');
  }
  const state = statePaths(stateDir);
  for (const [index, arg] of argv.entries()) {
    const named = [arg, ...arg.split('=').slice(1)].filter((part) => part.includes('/')).map((part) => path.resolve(part));
    if (state.some((dir) => arg.includes(dir) || named.some((file) => isInside(file, dir)))) {
      return `${field}[${index}] names a path in the agent's state dir, which only the agent writes; use {file} for the verified artifact`;
    }
  }
  return undefined;
}

export function substitute(argv: readonly string[], vars: Record<string, string>): string[] {
  return argv.map((arg) => arg.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? vars[name] : whole)));
}

export function runCommand(argv: readonly string[], options: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const child = spawn(argv[0], argv.slice(1), { shell: false, stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const timer = setBoundedTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, output: error.message, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output: output.trim(), timedOut });
    });
  });
}

export function describeFailure(argv: readonly string[], result: CommandResult): string {
  const how = result.timedOut ? 'timed out' : result.signal ? `was killed by ${result.signal}` : result.code === null ? 'could not start' : `exited with ${result.code}`;
  // The program's output is not quoted (it may print what it read, the artifact or the device):
  // its size says whether it said anything; the operator reads it by running the program.
  return `${argv[0]} ${how}${result.output ? ` (output: ${describeUntrusted(result.output)})` : ''}`;
}
