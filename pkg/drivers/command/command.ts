// The command driver: runs an executable with an argv array — never through a shell — and parses
// its stdout. It is refused unless the agent itself was started with --allow-command-driver (and,
// when an allowlist is given, the executable is on it): in cluster mode anyone who may create a
// Sensor would otherwise run code on every device. A manifest alone can never enable it.
import { execFile } from 'node:child_process';
import type { FieldError, Sensor } from '../../api/resource.js';
import type { Sample } from '../../api/reading.js';
import { SensorletError, messageOf } from '../../api/errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import type { Driver, DriverContext, DriverFactory } from '../driver.js';
import { registerDriver } from '../registry.js';
import { createTextParser, validatePattern } from '../text-values.js';
import { abortError } from '../serialize.js';
import { commandRefusal } from '../../policy/commands.js';

export type CommandConfig = NonNullable<Sensor['spec']['driver']['command']>;

/** Output beyond this is a misbehaving command, not a reading. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

export function createCommandDriver(config: CommandConfig, context: DriverContext): Driver {
  const [executable, ...args] = config.argv;
  const refusal = commandRefusal(executable, context.policy);
  // Refused up front (terminal: the runner does not retry; only restarting the agent with the flag
  // can change it), and again on every read in case a caller ignores that.
  if (refusal) throw new SensorletError('CommandNotAllowed', refusal, { terminal: true });
  const parse = createTextParser(config);
  return {
    async read(signal: AbortSignal): Promise<Sample[]> {
      // Checked on every read, not only at creation: nothing runs without the agent's permission.
      if (refusal) throw new SensorletError('CommandNotAllowed', refusal, { terminal: true });
      if (signal.aborted) throw abortError(signal, executable);
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(
          executable,
          args,
          { shell: false, signal, timeout: context.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, encoding: 'utf8', windowsHide: true },
          (error, out, stderr) => {
            if (!error) return resolve(out);
            if (signal.aborted) return reject(abortError(signal, executable));
            const code = (error as NodeJS.ErrnoException).code;
            if (code === 'ENOENT' || code === 'EACCES') {
              return reject(new SensorletError('CommandFailed', `${executable} cannot run: ${messageOf(error)}`, { cause: error }));
            }
            // From here on no `cause`: execFile's error quotes the program's stdout and stderr.
            if ((error as { killed?: boolean }).killed) {
              return reject(new SensorletError('Timeout', `${executable} did not finish within ${context.timeoutMs} ms`));
            }
            if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
              return reject(new SensorletError('CommandFailed', `${executable} wrote more than ${MAX_OUTPUT_BYTES} bytes`));
            }
            // The program's output is never quoted: its arguments are the manifest's, and with
            // `cat /etc/shadow` stderr and stdout would carry the file into status and logs.
            const detail = stderr.length > 0 ? ` (stderr: ${describeUntrusted(stderr)})` : '';
            reject(new SensorletError('CommandFailed', `${executable} exited with ${typeof code === 'number' ? code : (error as { signal?: string }).signal ?? code}${detail}`));
          },
        );
      });
      const sample = parse(stdout);
      if (!sample) throw new SensorletError('NoMatch', `output of ${executable} (${describeUntrusted(stdout)}) did not match the pattern`);
      return [{ ...sample, time: context.clock.now() }];
    },
    async close() {},
  };
}

export const commandDriver: DriverFactory<CommandConfig> = {
  name: 'command',
  validate(config, path): FieldError[] {
    const errors = validatePattern(config.pattern, `${path}.pattern`);
    if (config.argv[0] === '') errors.push({ path: `${path}.argv[0]`, message: 'the executable must not be empty', reason: 'InvalidSpec' });
    return errors;
  },
  create: createCommandDriver,
};

registerDriver(commandDriver);
