// The serial driver: text or binary frames from a device on a serial port, pushed by the device
// (`mode: stream`) or answered to a request written each interval (`mode: request`). Sensors naming
// the same port share it (see shared-port.ts); frames nobody claims are counted as bad.
import type { FieldError } from '../../api/resource.js';
import type { Sample } from '../../api/reading.js';
import type { Sensor } from '../../api/resource.js';
import { SensorletError } from '../../api/errors.js';
import type { Driver, DriverContext, DriverFactory, StreamHandlers } from '../driver.js';
import { registerDriver } from '../registry.js';
import { checkSerialDevice } from '../device-path.js';
import { createTextParser, validatePattern } from '../text-values.js';
import { abortError, raceAbort } from '../serialize.js';
import { FIELD_SIZE, readField, type FieldType } from './binary-fields.js';
import { CHECKSUM_SIZE } from './checksum.js';
import { describeUntrusted } from '../../api/untrusted.js';
import { frameHub, type FrameConsumer, type FrameHub } from './frame-hub.js';
import { BinaryFramer, TextFramer, type BinaryLayout, type Framer } from './framer.js';
import { acquireSharedPort, releaseSharedPort, type LineSettings, type SharedSerialPort } from './shared-port.js';
import { scaleValue } from '../scale.js';

export type SerialConfig = NonNullable<Sensor['spec']['driver']['serial']>;
type BinaryConfig = NonNullable<SerialConfig['frame']['binary']>;

const DEFAULT_MAX_LENGTH = 65_536;

/** Parses one frame: a sample, undefined when the frame is not for this Sensor, or a thrown BadFrame. */
type FrameParser = (bytes: Buffer) => Sample | undefined;

function binaryLayout(binary: BinaryConfig, maxLength: number): BinaryLayout {
  return {
    start: binary.start ? Buffer.from(binary.start, 'hex') : undefined,
    size: binary.size,
    lengthField: binary.lengthField && { byteOffset: binary.lengthField.byteOffset, type: binary.lengthField.type ?? 'uint8', adjust: binary.lengthField.adjust ?? 0 },
    checksum: binary.checksum && { type: binary.checksum.type, from: binary.checksum.from ?? 0 },
    maxLength,
  };
}

function createBinaryParser(binary: BinaryConfig): FrameParser {
  const checksumWidth = binary.checksum ? CHECKSUM_SIZE[binary.checksum.type] : 0;
  const single = binary.fields.length === 1 && binary.fields[0].name === 'value';
  return (frame) => {
    const values: Record<string, number> = {};
    for (const field of binary.fields) {
      const type = field.type as FieldType;
      if (field.byteOffset + FIELD_SIZE[type] > frame.length - checksumWidth) {
        throw new SensorletError('BadFrame', `frame of ${frame.length} bytes is too short for field ${field.name} at ${field.byteOffset}`);
      }
      values[field.name] = scaleValue(readField(frame, field.byteOffset, type), field.scale, field.offset);
    }
    return single ? { value: values.value } : { values };
  };
}

function frameParser(config: SerialConfig): FrameParser {
  if (config.frame.binary) return createBinaryParser(config.frame.binary);
  const parseText = createTextParser({ pattern: config.frame.pattern, scale: config.scale, offset: config.offset });
  // A CR before the LF delimiter is line noise, not data.
  return (bytes) => parseText(bytes.toString('utf8').replace(/\r$/, ''));
}

function framing(config: SerialConfig): { key: string; create: () => Framer } {
  const maxLength = config.frame.maxLength ?? DEFAULT_MAX_LENGTH;
  if (config.frame.binary) {
    const layout = binaryLayout(config.frame.binary, maxLength);
    return { key: `binary:${JSON.stringify(layout)}`, create: () => new BinaryFramer(layout) };
  }
  const delimiter = config.frame.delimiter ?? '\n';
  return { key: `text:${JSON.stringify(delimiter)}:${maxLength}`, create: () => new TextFramer(delimiter, maxLength) };
}

function lineSettings(config: SerialConfig): LineSettings {
  return {
    path: config.port,
    baudRate: config.baudRate ?? 9600,
    dataBits: (config.dataBits ?? 8) as LineSettings['dataBits'],
    parity: config.parity ?? 'none',
    stopBits: (config.stopBits ?? 1) as LineSettings['stopBits'],
  };
}

function requestBytes(config: SerialConfig): Buffer | undefined {
  if (!config.request) return undefined;
  return config.request.hex !== undefined ? Buffer.from(config.request.hex, 'hex') : Buffer.from(config.request.text ?? '', 'utf8');
}

export function createSerialDriver(config: SerialConfig, context: DriverContext): Driver {
  const logger = context.logger.child({ driver: 'serial', port: config.port });
  checkSerialDevice(config.port, context.policy, 'spec.driver.serial.port');
  const parse = frameParser(config);
  const { key, create } = framing(config);
  const port: SharedSerialPort = acquireSharedPort(context.shared, lineSettings(config), logger);
  const hub: FrameHub = frameHub(port, key, create);
  const counters = { frames: 0, badFrames: 0, unmatchedFrames: 0 };
  let closed = false;
  const request = requestBytes(config);
  let consumer: FrameConsumer | undefined;
  let stopWatchdog: (() => void) | undefined;

  const close = async () => {
    if (closed) return;
    closed = true;
    await releaseSharedPort(context.shared, port);
  };
  const stats = () => ({ ...counters });

  // --- request/response --------------------------------------------------------------------------

  function exchange(signal: AbortSignal): Promise<Sample[]> {
    let lastProblem: SensorletError | undefined;
    const task = port.requests.run(async () => {
      if (signal.aborted) throw abortError(signal, config.port);
      if (!port.isOpen) throw port.error ?? new SensorletError('PortNotFound', `${config.port} is not open`);
      hub.framer.reset(); // a late or partial reply to an earlier request is not this one's
      const reply = new Promise<Sample>((resolve, reject) => {
        hub.requester = {
          frame(bytes) {
            counters.frames++;
            try {
              const sample = parse(bytes);
              if (sample) resolve(sample);
              else {
                // Maybe an echo or a stray line: keep waiting, but say so if nothing better comes.
                counters.unmatchedFrames++;
                lastProblem = new SensorletError('NoMatch', `reply (${describeUntrusted(bytes)}) did not match the pattern`);
              }
            } catch (error) {
              counters.badFrames++;
              reject(error);
            }
            return true;
          },
          bad(error) {
            counters.badFrames++;
            if (error.code === 'ChecksumMismatch') reject(error);
            else lastProblem = error;
          },
          state(state) {
            if (!state.up) reject(state.error);
          },
        };
      });
      reply.catch(() => undefined);
      try {
        await port.write(request!);
        return [{ ...(await raceAbort(reply, signal, config.port)), time: context.clock.now() }];
      } finally {
        hub.requester = undefined;
      }
    });
    // The wait for the port (another Sensor's exchange) is bounded by the same signal.
    return raceAbort(task, signal, config.port).catch((error) => {
      if (error instanceof SensorletError && error.code === 'Timeout' && lastProblem) throw lastProblem;
      throw error;
    });
  }

  // --- streaming ---------------------------------------------------------------------------------


  function subscribe(handlers: StreamHandlers): void {
    let failing = false;
    let lastGood = context.clock.now();
    const fail = (error: SensorletError) => {
      failing = true;
      handlers.fail(error);
    };
    consumer = {
      frame(bytes) {
        let sample: Sample | undefined;
        try {
          sample = parse(bytes);
        } catch (error) {
          counters.badFrames++;
          fail(error as SensorletError);
          return true;
        }
        if (!sample) return false;
        counters.frames++;
        lastGood = context.clock.now();
        if (failing) {
          failing = false;
          handlers.recovered();
        }
        handlers.emit([{ ...sample, time: lastGood }]);
        return true;
      },
      bad(error) {
        counters.badFrames++;
        fail(error);
      },
      state(state) {
        if (!state.up) fail(state.error);
      },
    };
    hub.consumers.add(consumer);
    if (!port.isOpen && port.error && port.error.message !== 'port not opened yet') fail(port.error);

    // A device that goes quiet is a fault too: no frame for a few intervals means Timeout.
    const staleAfterMs = Math.max(3 * context.intervalMs, context.timeoutMs);
    const watchdog = setInterval(() => {
      if (!failing && context.clock.now() - lastGood > staleAfterMs) {
        fail(new SensorletError('Timeout', `no frame from ${config.port} for ${staleAfterMs} ms`));
      }
    }, Math.min(1_000, staleAfterMs));
    watchdog.unref();
    stopWatchdog = () => clearInterval(watchdog);
  }

  if ((config.mode ?? 'stream') === 'request') return { read: exchange, close, stats };
  return {
    stream: subscribe,
    async close() {
      stopWatchdog?.();
      if (consumer) hub.consumers.delete(consumer);
      await close();
    },
    stats,
  };
}

function validateSerial(config: SerialConfig, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const error = (field: string, message: string) => errors.push({ path: `${path}.${field}`, message, reason: 'InvalidSpec' });
  const mode = config.mode ?? 'stream';
  if (mode === 'request' && !config.request) error('request', 'mode request needs a request (text or hex) to write');
  if (mode === 'stream' && config.request) error('request', 'a request is only written in mode request');
  const binary = config.frame.binary;
  if (!binary) {
    errors.push(...validatePattern(config.frame.pattern, `${path}.frame.pattern`));
    return errors;
  }
  if (config.frame.pattern !== undefined) error('frame.pattern', 'pattern applies to text frames; binary frames use fields');
  const maxLength = config.frame.maxLength ?? DEFAULT_MAX_LENGTH;
  const checksumWidth = binary.checksum ? CHECKSUM_SIZE[binary.checksum.type] : 0;
  const startLength = binary.start ? binary.start.length / 2 : 0;
  if (binary.size !== undefined && binary.size > maxLength) error('frame.binary.size', `size ${binary.size} exceeds frame.maxLength ${maxLength}`);
  if (binary.size !== undefined && binary.size < startLength + checksumWidth) error('frame.binary.size', `size ${binary.size} cannot hold the start bytes and the checksum`);
  if (binary.checksum && binary.size !== undefined && (binary.checksum.from ?? 0) > binary.size - checksumWidth) {
    error('frame.binary.checksum.from', `from ${binary.checksum.from} is past the checksum at ${binary.size - checksumWidth}`);
  }
  const names = new Set<string>();
  binary.fields.forEach((field, index) => {
    const width = FIELD_SIZE[field.type as FieldType];
    if (names.has(field.name)) error(`frame.binary.fields[${index}].name`, `duplicate field name ${field.name}`);
    names.add(field.name);
    if (binary.size !== undefined && field.byteOffset + width > binary.size - checksumWidth) {
      error(`frame.binary.fields[${index}].byteOffset`, `${field.type} at ${field.byteOffset} does not fit in a ${binary.size}-byte frame${checksumWidth ? ` before its ${checksumWidth}-byte checksum` : ''}`);
    }
  });
  return errors;
}

export const serialDriver: DriverFactory<SerialConfig> = {
  name: 'serial',
  validate: validateSerial,
  create: createSerialDriver,
};

registerDriver(serialDriver);
