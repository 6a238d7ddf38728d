// The file driver: a number read from a file, typically sysfs
// (/sys/class/thermal/thermal_zone0/temp holds millidegrees). Only files the operator's policy
// allows are read (see pkg/policy/file-paths.ts), and reads are bounded in size, since a misconfigured path
// could name a huge log file.
//
// Race-free path check at each read: the path is resolved (realpath) and checked first, so nothing
// outside the policy is even opened in the ordinary case; then the resolved path is opened with
// O_NOFOLLOW, and the path of what was actually opened is read back from /proc/self/fd/N and
// checked again before a byte is read. A symlink swapped in between (in an allowed folder, or for a
// folder along the way) therefore cannot redirect the read: the kernel's own name for the open file
// is what is judged. A file with several hard links is refused, since a hard link has no "real"
// path to judge, and only regular files are read (no FIFOs, sockets or devices).
import { constants } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { FieldError, Sensor } from '../../api/resource.js';
import type { Sample } from '../../api/reading.js';
import { SensorletError, messageOf } from '../../api/errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import type { Driver, DriverContext, DriverFactory } from '../driver.js';
import { registerDriver } from '../registry.js';
import { createTextParser, validatePattern } from '../text-values.js';
import { abortError } from '../serialize.js';
import { filePathPolicy } from '../../policy/file-paths.js';

export type FileConfig = NonNullable<Sensor['spec']['driver']['file']>;

/** sysfs attributes are at most a page; 64 KiB leaves room for small status files. */
export const MAX_FILE_BYTES = 64 * 1024;

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

export function createFileDriver(config: FileConfig, context: DriverContext): Driver {
  const parse = createTextParser(config);
  const policy = filePathPolicy(context.policy);
  const shown = config.path;
  const notAllowed = (why: string) => new SensorletError('PathNotAllowed', why);
  const notAFile = `${shown} is not a regular file; the file driver reads only files (no devices, FIFOs or sockets)`;

  /** Opens the file when its real path is allowed; throws PathNotAllowed (nothing read) otherwise. */
  async function openAllowed(): Promise<FileHandle> {
    const resolved = await realpath(path.resolve(config.path));
    const before = policy.refusal(resolved, shown);
    if (before) throw notAllowed(before);
    // Opening a device or a FIFO can have effects of its own (a tty raises DTR): not even that.
    if (!(await stat(resolved)).isFile()) throw notAllowed(notAFile);
    const handle = await open(resolved, OPEN_FLAGS);
    try {
      const openedPath = await readlink(`/proc/self/fd/${handle.fd}`).catch((error: unknown) => {
        throw new SensorletError('ReadFailed', `${shown}: cannot confirm which file was opened (/proc/self/fd: ${messageOf(error)})`, { cause: error });
      });
      const after = policy.refusal(openedPath, shown);
      if (after) throw notAllowed(after);
      const opened = await handle.stat();
      if (!opened.isFile()) throw notAllowed(notAFile);
      if (opened.nlink > 1) throw notAllowed(`${shown} has ${opened.nlink} hard links; the file driver reads only files with one`);
      return handle;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  return {
    async read(signal: AbortSignal): Promise<Sample[]> {
      if (signal.aborted) throw abortError(signal, config.path);
      let text: string;
      try {
        const handle = await openAllowed();
        try {
          const buffer = Buffer.alloc(MAX_FILE_BYTES);
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
          text = buffer.subarray(0, bytesRead).toString('utf8');
        } finally {
          await handle.close();
        }
      } catch (error) {
        if (error instanceof SensorletError) throw error;
        const code = (error as NodeJS.ErrnoException).code;
        // A path that cannot be resolved is judged as written, so that "does not exist" and
        // "permission denied" never answer questions about files outside the policy.
        const unresolved = policy.refusal(path.resolve(config.path), shown);
        if (unresolved) throw notAllowed(unresolved);
        if (code === 'ENOENT' || code === 'ENOTDIR') throw new SensorletError('FileNotFound', `${config.path} does not exist`, { cause: error });
        if (code === 'EACCES' || code === 'EPERM') throw new SensorletError('PermissionDenied', `${config.path}: permission denied`, { cause: error });
        // A symlink loop, or the resolved path was replaced by a symlink between the check and the open.
        if (code === 'ELOOP') throw notAllowed(`${shown}: too many symlinks, or one appeared while the file was opened`);
        // sysfs answers EIO/ENODATA when the sensor behind the attribute fails.
        throw new SensorletError('ReadFailed', `${config.path}: ${code ?? messageOf(error)}`, { cause: error });
      }
      if (signal.aborted) throw abortError(signal, config.path);
      const sample = parse(text);
      // The path passed the operator's policy, so a short harmless preview helps find a wrong pattern.
      if (!sample) throw new SensorletError('NoMatch', `${config.path}: content (${describeUntrusted(text, { preview: true })}) did not match the pattern`);
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
