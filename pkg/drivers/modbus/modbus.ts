// The Modbus driver: coils, discrete inputs, holding and input registers over TCP or RTU, with
// modbus-serial (see README for why). One connection per TCP endpoint and one per RTU bus is shared
// by every Sensor that names it, and requests on it run one at a time: Modbus has no pipelining on
// a serial bus, and many TCP gateways mishandle concurrent transactions.
import { lazyRequire } from '../../api/lazy-require.js';
import type { ModbusRTU as ModbusClient } from 'modbus-serial/ModbusRTU.js';
import type { FieldError, Sensor } from '../../api/resource.js';
import type { Sample } from '../../api/reading.js';
import { SensorletError, messageOf } from '../../api/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Driver, DriverContext, DriverFactory } from '../driver.js';
import { registerDriver } from '../registry.js';
import { checkSerialDevice } from '../device-path.js';
import { SerialQueue, abortError, raceAbort } from '../serialize.js';
import { scaleValue } from '../scale.js';

export type ModbusConfig = NonNullable<Sensor['spec']['driver']['modbus']>;
type RegisterType = NonNullable<ModbusConfig['type']>;

// modbus-serial is CommonJS; its default export is the client class itself.
const modbusSerial = lazyRequire<new () => ModbusClient>('modbus-serial');

const WORDS: Record<RegisterType, number> = { int16: 1, uint16: 1, int32: 2, uint32: 2, float32: 2 };
const FUNCTION_NAMES = { 1: 'read coils', 2: 'read discrete inputs', 3: 'read holding registers', 4: 'read input registers' } as const;
/** Protocol limits per request (Modbus application protocol v1.1b3, 6.1–6.4). */
const MAX_BITS = 2000;
const MAX_REGISTERS = 125;

/** Where a link goes: the part of a Sensor's or an Actuator's modbus config that names the device. */
export type ModbusEndpoint = Pick<ModbusConfig, 'tcp' | 'rtu'>;

/**
 * One TCP connection or RTU bus, shared by reference count through the agent's shared map by every
 * Sensor and Actuator that names it: its queue is what keeps a write from interleaving with a read.
 */
export class ModbusLink {
  readonly queue = new SerialQueue();
  references = 0;
  private client: ModbusClient | undefined;

  constructor(
    readonly key: string,
    private readonly config: ModbusEndpoint,
    private readonly logger: Logger,
  ) {}

  /** The open client, connecting first if needed. Called inside the queue. */
  async connected(timeoutMs: number): Promise<ModbusClient> {
    if (this.client?.isOpen) return this.client;
    await this.disconnect();
    const ModbusRTU = modbusSerial();
    const client = new ModbusRTU();
    try {
      if (this.config.tcp) {
        await client.connectTCP(this.config.tcp.host, { port: this.config.tcp.port ?? 502, timeout: timeoutMs });
      } else {
        const rtu = this.config.rtu!;
        await client.connectRTUBuffered(rtu.port, {
          baudRate: rtu.baudRate ?? 9600,
          dataBits: (rtu.dataBits ?? 8) as 8,
          parity: rtu.parity ?? 'none',
          stopBits: (rtu.stopBits ?? 1) as 1,
        });
      }
    } catch (error) {
      client.close(() => undefined);
      throw connectError(this.key, error);
    }
    this.logger.info({ link: this.key }, 'modbus link open');
    this.client = client;
    return client;
  }

  async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client?.isOpen) await new Promise<void>((resolve) => client.close(() => resolve()));
  }
}

function connectError(key: string, error: unknown): SensorletError {
  const message = messageOf(error) || String((error as { errno?: string }).errno ?? error);
  const errno = (error as { code?: string; errno?: string }).code ?? (error as { errno?: string }).errno;
  if (errno === 'ECONNREFUSED') return new SensorletError('ConnectionRefused', `${key}: connection refused`, { cause: error });
  if (errno === 'ETIMEDOUT' || /timed? ?out/i.test(message)) return new SensorletError('Timeout', `${key}: connect timed out`, { cause: error });
  if (/no such file|ENOENT|cannot open/i.test(message)) return new SensorletError('PortNotFound', `${key}: ${message}`, { cause: error });
  return new SensorletError('ConnectionFailed', `${key}: ${message}`, { cause: error });
}

function linkKey(config: ModbusEndpoint): string {
  return config.tcp ? `modbus:tcp:${config.tcp.host}:${config.tcp.port ?? 502}` : `modbus:rtu:${config.rtu!.port}`;
}

/** The agent-wide link to the device `config` names, created on first use; release it when done. */
export function acquireModbusLink(shared: Map<string, unknown>, config: ModbusEndpoint, logger: Logger): ModbusLink {
  const key = linkKey(config);
  let link = shared.get(key) as ModbusLink | undefined;
  if (!link) shared.set(key, (link = new ModbusLink(key, config, logger)));
  link.references++;
  return link;
}

/** Drops one reference; the last one closes the connection (after the requests queued on it). */
export async function releaseModbusLink(shared: Map<string, unknown>, link: ModbusLink): Promise<void> {
  if (--link.references > 0) return;
  if (shared.get(link.key) === link) shared.delete(link.key);
  await link.queue.run(() => link.disconnect());
}

/** Modbus exception codes (application protocol v1.1b3, 7) by the names the specification gives them. */
const EXCEPTION_NAMES: Record<number, string> = {
  1: 'IllegalFunction',
  2: 'IllegalDataAddress',
  3: 'IllegalDataValue',
  4: 'ServerDeviceFailure',
  5: 'Acknowledge',
  6: 'ServerDeviceBusy',
  8: 'MemoryParityError',
  10: 'GatewayPathUnavailable',
  11: 'GatewayTargetDeviceFailedToRespond',
};

export function modbusExceptionName(code: number): string {
  return EXCEPTION_NAMES[code] ?? `Exception${code}`;
}

/**
 * A failed request as a SensorletError: a Modbus exception (the device answered no), a timeout, or
 * a link that is unusable (then it is closed, to reconnect with the next request).
 */
export function modbusRequestError(error: unknown, what: string, timeoutMs: number, link: ModbusLink): SensorletError {
  if (error instanceof SensorletError) return error;
  const modbusCode = (error as { modbusCode?: number }).modbusCode;
  if (modbusCode !== undefined) {
    return new SensorletError('ModbusException', `${what}: Modbus exception ${modbusExceptionName(modbusCode)} (${modbusCode})`, { cause: error });
  }
  const errno = (error as { errno?: string }).errno;
  if (errno === 'ETIMEDOUT') return new SensorletError('Timeout', `${what}: no response within ${timeoutMs} ms`, { cause: error });
  void link.disconnect();
  return new SensorletError('DeviceGone', `${what}: ${messageOf(error) || errno}`, { cause: error });
}

/** Encodes typed values into raw 16-bit registers: the exact inverse of decodeRegisters. */
export function encodeRegisters(values: number[], type: RegisterType, wordOrder: 'bigEndian' | 'littleEndian'): number[] {
  const registers: number[] = [];
  const bytes = Buffer.alloc(4);
  for (const value of values) {
    switch (type) {
      case 'int16':
        bytes.writeInt16BE(value, 0);
        registers.push(bytes.readUInt16BE(0));
        continue;
      case 'uint16':
        bytes.writeUInt16BE(value, 0);
        registers.push(bytes.readUInt16BE(0));
        continue;
      case 'int32':
        bytes.writeInt32BE(value, 0);
        break;
      case 'uint32':
        bytes.writeUInt32BE(value, 0);
        break;
      case 'float32':
        bytes.writeFloatBE(value, 0);
        break;
    }
    const high = bytes.readUInt16BE(0);
    const low = bytes.readUInt16BE(2);
    registers.push(...(wordOrder === 'bigEndian' ? [high, low] : [low, high]));
  }
  return registers;
}

/** Registers one value of `type` takes. */
export function registerWords(type: RegisterType): number {
  return WORDS[type];
}

/** Decodes raw 16-bit registers into typed values; exact, since it goes through the bytes. */
export function decodeRegisters(registers: number[], type: RegisterType, wordOrder: 'bigEndian' | 'littleEndian'): number[] {
  const words = WORDS[type];
  const values: number[] = [];
  const bytes = Buffer.alloc(4);
  for (let i = 0; i + words <= registers.length; i += words) {
    if (words === 1) {
      bytes.writeUInt16BE(registers[i] & 0xffff, 0);
      values.push(type === 'int16' ? bytes.readInt16BE(0) : bytes.readUInt16BE(0));
      continue;
    }
    const [high, low] = wordOrder === 'bigEndian' ? [registers[i], registers[i + 1]] : [registers[i + 1], registers[i]];
    bytes.writeUInt16BE(high & 0xffff, 0);
    bytes.writeUInt16BE(low & 0xffff, 2);
    values.push(type === 'int32' ? bytes.readInt32BE(0) : type === 'uint32' ? bytes.readUInt32BE(0) : bytes.readFloatBE(0));
  }
  return values;
}

export function createModbusDriver(config: ModbusConfig, context: DriverContext): Driver {
  if (config.rtu) checkSerialDevice(config.rtu.port, context.policy, 'spec.driver.modbus.rtu.port');
  const logger = context.logger.child({ driver: 'modbus' });
  const shared = acquireModbusLink(context.shared, config, logger);
  const key = shared.key;

  const fn = (config.function ?? 3) as 1 | 2 | 3 | 4;
  const unitId = config.unitId ?? 1;
  const count = config.count ?? 1;
  const type: RegisterType = config.type ?? 'uint16';
  const wordOrder = config.wordOrder ?? 'bigEndian';
  const scale = config.scale ?? 1;
  const offset = config.offset ?? 0;
  const bits = fn === 1 || fn === 2;
  const stride = bits ? 1 : WORDS[type];
  const what = `${key} unit ${unitId} ${FUNCTION_NAMES[fn]} at ${config.address}`;
  let closed = false;

  async function transact(client: ModbusClient): Promise<number[]> {
    client.setID(unitId);
    client.setTimeout(context.timeoutMs);
    switch (fn) {
      case 1:
        return (await client.readCoils(config.address, count)).data.slice(0, count).map(Number);
      case 2:
        return (await client.readDiscreteInputs(config.address, count)).data.slice(0, count).map(Number);
      case 3:
        return decodeRegisters((await client.readHoldingRegisters(config.address, count * stride)).data, type, wordOrder);
      case 4:
        return decodeRegisters((await client.readInputRegisters(config.address, count * stride)).data, type, wordOrder);
    }
  }

  const requestError = (error: unknown) => modbusRequestError(error, what, context.timeoutMs, shared);

  return {
    async read(signal: AbortSignal): Promise<Sample[]> {
      const task = shared.queue.run(async () => {
        if (signal.aborted || closed) throw abortError(signal, what);
        const client = await shared.connected(context.timeoutMs);
        try {
          return await transact(client);
        } catch (error) {
          throw requestError(error);
        }
      });
      // The modbus-serial timeout bounds the transaction itself, so the queue never stays stuck.
      const raw = await raceAbort(task, signal, what);
      const time = context.clock.now();
      const values = raw.map((value) => (bits ? value : scaleValue(value, scale, offset)));
      if (values.length === 1) return [{ value: values[0], time }];
      const named: Record<string, number> = {};
      values.forEach((value, index) => (named[String(config.address + index * stride)] = value));
      return [{ values: named, time }];
    },
    async close() {
      if (closed) return;
      closed = true;
      await releaseModbusLink(context.shared, shared);
    },
  };
}

function validateModbus(config: ModbusConfig, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const fn = config.function ?? 3;
  const count = config.count ?? 1;
  const bits = fn === 1 || fn === 2;
  const quantity = bits ? count : count * WORDS[config.type ?? 'uint16'];
  const limit = bits ? MAX_BITS : MAX_REGISTERS;
  if (quantity > limit) {
    errors.push({ path: `${path}.count`, message: `${quantity} ${bits ? 'bits' : 'registers'} exceed the ${limit} one request may read`, reason: 'InvalidSpec' });
  }
  if (config.address + quantity > 65_536) {
    errors.push({ path: `${path}.address`, message: `address ${config.address} + ${quantity} runs past 65535`, reason: 'InvalidSpec' });
  }
  if (bits && (config.type !== undefined || config.wordOrder !== undefined)) {
    errors.push({ path: `${path}.${config.type !== undefined ? 'type' : 'wordOrder'}`, message: 'coils and discrete inputs are bits; type and wordOrder apply to registers', reason: 'InvalidSpec' });
  }
  return errors;
}

export const modbusDriver: DriverFactory<ModbusConfig> = {
  name: 'modbus',
  validate: validateModbus,
  create: createModbusDriver,
};

registerDriver(modbusDriver);
