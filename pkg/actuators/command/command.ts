// Runs a program (never a shell) with {value} replaced in its arguments; exit status 0 is a
// successful write. Only under the operator's command policy (--allow-command-driver, and
// --command-allowlist when given), exactly as for the command Sensor driver: a manifest alone never
// runs code. A program cannot be read back: use readBack source sensor to confirm through a Sensor.
import { execFile } from 'node:child_process';
import type { Actuator, FieldError } from '../../api/resource.js';
import { SensorletError, messageOf } from '../../api/errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import { abortError } from '../../drivers/serialize.js';
import { commandRefusal } from '../../policy/commands.js';
import type { ActuatorContext, ActuatorDriver, ActuatorDriverFactory, DeclaredValue } from '../actuator.js';
import { registerActuatorDriver } from '../registry.js';
import { renderValue, scalarValues } from '../values.js';

export type CommandActuatorConfig = NonNullable<Actuator['spec']['driver']['command']>;

/** A setter prints little; more is a misbehaving program, and it is never quoted anyway. */
const MAX_OUTPUT_BYTES = 64 * 1024;

export function createCommandActuator(config: CommandActuatorConfig, context: ActuatorContext): ActuatorDriver {
  const [executable] = config.argv;
  const refusal = commandRefusal(executable, context.policy);
  if (refusal) throw new SensorletError('CommandNotAllowed', refusal, { terminal: true });
  return {
    async write(value, signal) {
      if (signal.aborted) throw abortError(signal, executable);
      const text = renderValue(value, config);
      const [program, ...args] = config.argv.map((arg) => arg.split('{value}').join(text));
      await new Promise<void>((resolve, reject) => {
        execFile(program, args, { shell: false, signal, timeout: context.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true }, (error, _stdout, stderr) => {
          if (!error) return resolve();
          if (signal.aborted) return reject(abortError(signal, executable));
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' || code === 'EACCES') return reject(new SensorletError('CommandFailed', `${executable} cannot run: ${messageOf(error)}`));
          if ((error as { killed?: boolean }).killed) return reject(new SensorletError('Timeout', `${executable} did not finish within ${context.timeoutMs} ms`));
          // Output is counted, never quoted (see the command Sensor driver).
          const detail = stderr.length > 0 ? ` (stderr: ${describeUntrusted(String(stderr))})` : '';
          reject(new SensorletError('CommandFailed', `${executable} exited with ${typeof code === 'number' ? code : (error as { signal?: string }).signal ?? code}${detail}`));
        });
      });
      return undefined;
    },
    async close() {},
  };
}

export const commandActuator: ActuatorDriverFactory<CommandActuatorConfig> = {
  name: 'command',
  canReadBack: () => false,
  validate(config, at, values: DeclaredValue[]): FieldError[] {
    const errors = scalarValues(values, 'command');
    if (config.argv[0] === '') errors.push({ path: `${at}.argv[0]`, message: 'the executable must not be empty', reason: 'InvalidSpec' });
    if (config.argv[0]?.includes('{value}')) errors.push({ path: `${at}.argv[0]`, message: 'the value may go into arguments, never into the executable', reason: 'InvalidSpec' });
    if (!config.argv.some((arg) => arg.includes('{value}'))) errors.push({ path: `${at}.argv`, message: 'no argument contains {value}, where the value is passed', reason: 'InvalidSpec' });
    if (config.scale === 0) errors.push({ path: `${at}.scale`, message: 'must not be 0', reason: 'InvalidSpec' });
    return errors;
  },
  create: createCommandActuator,
};

registerActuatorDriver(commandActuator);
