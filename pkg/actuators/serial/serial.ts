// Writes a command to a device on a serial port ({value} rendered into it) and, with `reply`, waits
// for the answer that confirms it: a line that does not match reply.pattern is ReadBackMismatch, and
// a `value` group is what the device says it now holds. The port is the agent's one shared port for
// that device path (the Sensors' too), and the exchange runs in the port's request queue, so a
// command never interleaves with a Sensor's request and its reply.
import type { Actuator, FieldError } from '../../api/resource.js';
import { SensorletError } from '../../api/errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import { compilePattern } from '../../api/pattern.js';
import { checkSerialDevice } from '../../drivers/device-path.js';
import { abortError, raceAbort } from '../../drivers/serialize.js';
import { validatePattern } from '../../drivers/text-values.js';
import { frameHub } from '../../drivers/serial/frame-hub.js';
import { TextFramer } from '../../drivers/serial/framer.js';
import { acquireSharedPort, releaseSharedPort, type LineSettings } from '../../drivers/serial/shared-port.js';
import type { ActuatorContext, ActuatorDriver, ActuatorDriverFactory, DeclaredValue, ReadBack } from '../actuator.js';
import { registerActuatorDriver } from '../registry.js';
import { renderValue, scalarValues, textReadBack } from '../values.js';

export type SerialActuatorConfig = NonNullable<Actuator['spec']['driver']['serial']>;

const DEFAULT_REPLY_MAX_LENGTH = 1024;

export function renderCommand(template: string, value: string): string {
  return template.split('{value}').join(value);
}

function hasValueGroup(pattern: string | undefined): boolean {
  if (pattern === undefined) return false;
  try {
    return compilePattern(pattern).groupIndex.value !== undefined;
  } catch {
    return false;
  }
}

export function createSerialActuator(config: SerialActuatorConfig, context: ActuatorContext): ActuatorDriver {
  checkSerialDevice(config.port, context.policy, 'spec.driver.serial.port');
  const settings: LineSettings = {
    path: config.port,
    baudRate: config.baudRate ?? 9600,
    dataBits: (config.dataBits ?? 8) as LineSettings['dataBits'],
    parity: config.parity ?? 'none',
    stopBits: (config.stopBits ?? 1) as LineSettings['stopBits'],
  };
  const port = acquireSharedPort(context.shared, settings, context.logger.child({ driver: 'serial', port: config.port }));
  const reply = config.reply;
  const delimiter = reply?.delimiter ?? '\n';
  const maxLength = reply?.maxLength ?? DEFAULT_REPLY_MAX_LENGTH;
  // The same framing key as a text Sensor with this delimiter and length: they share one framer.
  const hub = frameHub(port, `text:${JSON.stringify(delimiter)}:${maxLength}`, () => new TextFramer(delimiter, maxLength));
  const pattern = reply ? compilePattern(reply.pattern) : undefined;
  const valueGroup = pattern?.groupIndex.value;
  const asBoolean = typeof context.spec.desired === 'boolean';
  let closed = false;

  /** The confirmation a reply line gives, or ReadBackMismatch. */
  const confirm = (line: string, sent: string): ReadBack => {
    const groups = pattern!.exec(line);
    if (!groups) throw new SensorletError('ReadBackMismatch', `${config.port}: the reply (${describeUntrusted(line)}) did not match reply.pattern`);
    if (valueGroup === undefined) return { value: Number(sent), holds: () => true };
    const raw = Number(groups[valueGroup] ?? '');
    if (!Number.isFinite(raw)) throw new SensorletError('ReadBackMismatch', `${config.port}: the reply's value group is not a number`);
    return textReadBack(raw, config, asBoolean);
  };

  return {
    async write(value, signal) {
      const text = renderValue(value, config);
      const bytes = Buffer.from(renderCommand(config.command, text), 'utf8');
      const task = port.requests.run(async () => {
        if (signal.aborted || closed) throw abortError(signal, config.port);
        if (!port.isOpen) throw port.error ?? new SensorletError('DeviceGone', `${config.port} is not open`);
        if (!reply) {
          await port.write(bytes);
          return undefined;
        }
        hub.framer.reset(); // a late answer to an earlier exchange is not this one's
        const answer = new Promise<ReadBack>((resolve, reject) => {
          hub.requester = {
            frame(frame) {
              try {
                resolve(confirm(frame.toString('utf8').replace(/\r$/, ''), text));
              } catch (error) {
                reject(error);
              }
              return true;
            },
            bad(error) {
              reject(new SensorletError('ReadBackMismatch', `${config.port}: ${error.message}`));
            },
            state(state) {
              if (!state.up) reject(state.error);
            },
          };
        });
        answer.catch(() => undefined);
        try {
          await port.write(bytes);
          return await raceAbort(answer, signal, `${config.port} reply`);
        } finally {
          hub.requester = undefined;
        }
      });
      return raceAbort(task, signal, config.port);
    },
    async close() {
      if (closed) return;
      closed = true;
      await releaseSharedPort(context.shared, port);
    },
  };
}

function validateSerialActuator(config: SerialActuatorConfig, path: string, values: DeclaredValue[]): FieldError[] {
  const errors = scalarValues(values, 'serial');
  if (!config.command.includes('{value}')) errors.push({ path: `${path}.command`, message: 'must contain {value}, where the value is written', reason: 'InvalidSpec' });
  if (config.scale === 0) errors.push({ path: `${path}.scale`, message: 'must not be 0', reason: 'InvalidSpec' });
  if (config.reply) errors.push(...validatePattern(config.reply.pattern, `${path}.reply.pattern`).filter((error) => !/needs a named group/.test(error.message)));
  return errors;
}

export const serialActuator: ActuatorDriverFactory<SerialActuatorConfig> = {
  name: 'serial',
  canReadBack: (config) => hasValueGroup(config.reply?.pattern),
  validate: validateSerialActuator,
  create: createSerialActuator,
};

registerActuatorDriver(serialActuator);
