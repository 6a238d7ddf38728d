// Runs install and rollback commands: argv only (never a shell), `{file}` substituted, bounded by a
// timeout, output kept short for status messages.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
}

const OUTPUT_LIMIT = 4096;

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
    const timer = setTimeout(() => {
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
  return `${argv[0]} ${how}${result.output ? `: ${result.output.slice(-300)}` : ''}`;
}
