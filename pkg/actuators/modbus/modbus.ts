// Writes a coil (function 5) or holding registers (6 for one register, 16 for more) over Modbus TCP
// or RTU, and reads them back (functions 1 and 3). Registers carry the same typed encoding the
// Sensor driver decodes (int16/uint16/int32/uint32/float32, word order), with scale and offset
// applied inversely, and read-back compares the raw registers, so 21.5 with scale 0.1 is in sync
// exactly when the device holds 215. The connection is the one the Sensors naming the same device
// use, and every request goes through its queue: a write never interleaves with a read.
import type { Actuator, FieldError } from '../../api/resource.js';
import { SensorletError } from '../../api/errors.js';
import { checkSerialDevice } from '../../drivers/device-path.js';
import { abortError, raceAbort } from '../../drivers/serialize.js';
import {
  acquireModbusLink,
  decodeRegisters,
  encodeRegisters,
  modbusRequestError,
  registerWords,
  releaseModbusLink,
} from '../../drivers/modbus/modbus.js';
import type { ActuatorContext, ActuatorDriver, ActuatorDriverFactory, ActuatorValue, DeclaredValue, ReadBack } from '../actuator.js';
import { registerActuatorDriver } from '../registry.js';

export type ModbusActuatorConfig = NonNullable<Actuator['spec']['driver']['modbus']>;
type RegisterType = NonNullable<ModbusActuatorConfig['type']>;

const RANGES: Record<RegisterType, [number, number] | undefined> = {
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  float32: undefined,
};

interface Encoding {
  type: RegisterType;
  wordOrder: 'bigEndian' | 'littleEndian';
  scale: number;
  offset: number;
}

function encodingOf(config: ModbusActuatorConfig): Encoding {
  return { type: config.type ?? 'uint16', wordOrder: config.wordOrder ?? 'bigEndian', scale: config.scale ?? 1, offset: config.offset ?? 0 };
}

/** The device's number for a manifest value: (value - offset) / scale, rounded for integer types. */
function rawNumber(value: number, encoding: Encoding): number {
  const raw = (value - encoding.offset) / encoding.scale;
  return encoding.type === 'float32' ? raw : Math.round(raw);
}

/** The raw registers that hold `value`. Throws when a value does not fit its type (validation prevents it). */
export function registersFor(value: ActuatorValue, encoding: Encoding): number[] {
  const values = (Array.isArray(value) ? value : [Number(value)]).map((each) => rawNumber(each, encoding));
  return encodeRegisters(values, encoding.type, encoding.wordOrder);
}

/** The manifest value raw registers stand for: the inverse of registersFor. */
export function valueOf(registers: number[], encoding: Encoding, block: boolean): ActuatorValue {
  const values = decodeRegisters(registers, encoding.type, encoding.wordOrder).map((raw) => {
    const value = raw * encoding.scale + encoding.offset;
    // float32 carries about 7 significant digits; more would print representation noise.
    return Number(value.toPrecision(encoding.type === 'float32' ? 7 : 12));
  });
  return block ? values : values[0];
}

function sameRegisters(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((word, index) => word === b[index]);
}

export function createModbusActuator(config: ModbusActuatorConfig, context: ActuatorContext): ActuatorDriver {
  if (config.rtu) checkSerialDevice(config.rtu.port, context.policy, 'spec.driver.modbus.rtu.port');
  const link = acquireModbusLink(context.shared, config, context.logger.child({ driver: 'modbus' }));
  const coils = (config.table ?? 'holdingRegisters') === 'coils';
  const unitId = config.unitId ?? 1;
  const encoding = encodingOf(config);
  const desired = context.spec.desired as unknown as ActuatorValue;
  const block = Array.isArray(desired);
  const registerCount = (block ? desired.length : 1) * registerWords(encoding.type);
  let closed = false;

  /** One request on the shared link, in its queue, bounded by the link's own timeout and by `signal`. */
  const request = <T>(what: string, signal: AbortSignal, run: (client: Awaited<ReturnType<typeof link.connected>>) => Promise<T>): Promise<T> => {
    const where = `${link.key} unit ${unitId} ${what} at ${config.address}`;
    const task = link.queue.run(async () => {
      if (signal.aborted || closed) throw abortError(signal, where);
      const client = await link.connected(context.timeoutMs);
      client.setID(unitId);
      client.setTimeout(context.timeoutMs);
      try {
        return await run(client);
      } catch (error) {
        throw modbusRequestError(error, where, context.timeoutMs, link);
      }
    });
    return raceAbort(task, signal, where);
  };

  const coilReadBack = (bit: boolean): ReadBack => ({ value: bit, holds: (wanted) => Boolean(wanted) === bit });
  const registerReadBack = (registers: number[]): ReadBack => ({
    value: valueOf(registers, encoding, block),
    holds: (wanted) => sameRegisters(registers, registersFor(wanted, encoding)),
  });

  return {
    async write(value, signal) {
      if (coils) {
        await request('write coil', signal, (client) => client.writeCoil(config.address, Boolean(value)));
        return undefined;
      }
      const registers = registersFor(value, encoding);
      if (registers.length !== registerCount) {
        throw new SensorletError('InvalidValue', `${registers.length} registers to write where spec.desired takes ${registerCount}`, { terminal: true });
      }
      if (registers.length === 1) await request('write holding register', signal, (client) => client.writeRegister(config.address, registers[0]));
      else await request('write holding registers', signal, (client) => client.writeRegisters(config.address, registers));
      return undefined;
    },
    async read(signal) {
      if (coils) return coilReadBack(await request('read coil', signal, async (client) => Boolean((await client.readCoils(config.address, 1)).data[0])));
      return registerReadBack(await request('read holding registers', signal, async (client) => (await client.readHoldingRegisters(config.address, registerCount)).data.slice(0, registerCount)));
    },
    async close() {
      if (closed) return;
      closed = true;
      await releaseModbusLink(context.shared, link);
    },
  };
}

function validateModbusActuator(config: ModbusActuatorConfig, path: string, values: DeclaredValue[]): FieldError[] {
  const errors: FieldError[] = [];
  const error = (at: string, message: string) => errors.push({ path: at, message, reason: 'InvalidSpec' });
  const coils = (config.table ?? 'holdingRegisters') === 'coils';
  if (coils) {
    for (const field of ['type', 'wordOrder', 'scale', 'offset'] as const) {
      if (config[field] !== undefined && !(field === 'scale' && config.scale === 1) && !(field === 'offset' && config.offset === 0)) {
        error(`${path}.${field}`, 'a coil is one bit; type, wordOrder, scale and offset apply to holding registers');
      }
    }
    for (const { path: at, value } of values) if (typeof value !== 'boolean') error(at, `a coil takes true or false (got ${JSON.stringify(value)})`);
    return errors;
  }
  const encoding = encodingOf(config);
  if (encoding.scale === 0) error(`${path}.scale`, 'must not be 0: the written value is (value - offset) / scale');
  const range = RANGES[encoding.type];
  const desired = values.find((each) => each.path === 'spec.desired')?.value;
  for (const { path: at, value } of values) {
    if (typeof value === 'boolean') {
      error(at, 'holding registers take numbers; true/false is for table: coils');
      continue;
    }
    if (desired !== undefined && Array.isArray(value) !== Array.isArray(desired) || (Array.isArray(value) && Array.isArray(desired) && value.length !== desired.length)) {
      error(at, `must have the shape of spec.desired (${Array.isArray(desired) ? `a list of ${desired.length}` : 'one number'}): both write the same registers`);
      continue;
    }
    if (encoding.scale === 0) continue;
    const numbers = Array.isArray(value) ? value : [value];
    for (const [index, number] of numbers.entries()) {
      const raw = rawNumber(number, encoding);
      const where = Array.isArray(value) ? `${at}[${index}]` : at;
      if (range && (raw < range[0] || raw > range[1])) error(where, `${number} is ${raw} on the device, outside ${encoding.type} (${range[0]} to ${range[1]})`);
      if (!range && !Number.isFinite(Math.fround(raw))) error(where, `${number} does not fit a float32`);
    }
  }
  const count = Array.isArray(desired) ? desired.length : 1;
  const registers = count * registerWords(encoding.type);
  if (registers > 123) error('spec.desired', `${registers} registers exceed the 123 one write request may carry`);
  if (config.address + registers > 65_536) error(`${path}.address`, `address ${config.address} + ${registers} registers runs past 65535`);
  return errors;
}

export const modbusActuator: ActuatorDriverFactory<ModbusActuatorConfig> = {
  name: 'modbus',
  canReadBack: () => true,
  validate: validateModbusActuator,
  create: createModbusActuator,
};

registerActuatorDriver(modbusActuator);
