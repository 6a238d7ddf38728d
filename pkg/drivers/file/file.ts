// The file driver: a number read from a file, typically sysfs
// (/sys/class/thermal/thermal_zone0/temp holds millidegrees). Reads are bounded in size, since a
// misconfigured path could name a huge log file.
import { open } from 'node:fs/promises';
import type { FieldError, Sensor } from '../../api/resource.js';
import type { Sample } from '../../api/reading.js';
import { SensorletError, messageOf } from '../../api/errors.js';
import type { Driver, DriverContext, DriverFactory } from '../driver.js';
import { registerDriver } from '../registry.js';
import { createTextParser, excerpt, validatePattern } from '../text-values.js';
import { abortError } from '../serialize.js';

export type FileConfig = NonNullable<Sensor['spec']['driver']['file']>;

/** sysfs attributes are at most a page; 64 KiB leaves room for small status files. */
export const MAX_FILE_BYTES = 64 * 1024;

export function createFileDriver(config: FileConfig, context: DriverContext): Driver {
  const parse = createTextParser(config);
  return {
    async read(signal: AbortSignal): Promise<Sample[]> {
      if (signal.aborted) throw abortError(signal, config.path);
      let text: string;
      try {
        const handle = await open(config.path, 'r');
        try {
          const buffer = Buffer.alloc(MAX_FILE_BYTES);
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
          text = buffer.subarray(0, bytesRead).toString('utf8');
        } finally {
          await handle.close();
        }
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') throw new SensorletError('FileNotFound', `${config.path} does not exist`, { cause: error });
        if (code === 'EACCES' || code === 'EPERM') throw new SensorletError('PermissionDenied', `${config.path}: ${messageOf(error)}`, { cause: error });
        // sysfs answers EIO/ENODATA when the sensor behind the attribute fails.
        throw new SensorletError('ReadFailed', `${config.path}: ${messageOf(error)}`, { cause: error });
      }
      if (signal.aborted) throw abortError(signal, config.path);
      const sample = parse(text);
      if (!sample) throw new SensorletError('NoMatch', `${config.path}: content did not match the pattern: ${JSON.stringify(excerpt(text))}`);
      return [{ ...sample, time: context.clock.now() }];
    },
    async close() {},
  };
}

export const fileDriver: DriverFactory<FileConfig> = {
  name: 'file',
  validate(config, path): FieldError[] {
    return validatePattern(config.pattern, `${path}.pattern`);
  },
  create: createFileDriver,
};

registerDriver(fileDriver);
