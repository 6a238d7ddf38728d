// Writes a value to a sysfs-style file (a GPIO line's value, a PWM duty cycle, a backlight's
// brightness) and reads it back from the same file. Writing is more dangerous than reading, so it
// has its own operator allowance: only files whose real path lies under --file-write-allow-prefix
// (none by default) are written, and the paths no flag can open for the file driver (secrets, key
// material, /proc of any process, the agent's state) stay refused. The check is made as the file
// driver makes it: on the real path before opening, then on the kernel's own name for the opened
// file (/proc/self/fd/N) before a byte is written, so a symlink swapped in between cannot redirect
// the write. Files are opened without O_CREAT (a missing attribute is FileNotFound, nothing is
// created) and without following a final symlink; only regular files with one link are written.
import { constants } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Actuator, FieldError } from '../../api/resource.js';
import { SensorletError, messageOf } from '../../api/errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import { abortError } from '../../drivers/serialize.js';
import { FilePathPolicy, WRITE_ACCESS } from '../../policy/file-paths.js';
import type { ActuatorContext, ActuatorDriver, ActuatorDriverFactory, DeclaredValue } from '../actuator.js';
import { registerActuatorDriver } from '../registry.js';
import { renderValue, scalarValues, textReadBack } from '../values.js';

export type FileActuatorConfig = NonNullable<Actuator['spec']['driver']['file']>;

/** A sysfs attribute is at most a page. */
const MAX_READ_BACK_BYTES = 4096;
const COMMON_FLAGS = constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

const policies = new WeakMap<object, FilePathPolicy>();

export function createFileActuator(config: FileActuatorConfig, context: ActuatorContext): ActuatorDriver {
  let policy = policies.get(context.policy);
  if (!policy) policies.set(context.policy, (policy = new FilePathPolicy(context.policy, WRITE_ACCESS, context.policy.fileWritePrefixes)));
  const judge = policy;
  const shown = config.path;
  const notAllowed = (why: string) => new SensorletError('PathNotAllowed', why, { terminal: true });
  // Refused up front when the path as written is outside the policy: nothing is opened at all.
  const upfront = judge.refusal(path.resolve(config.path), shown);
  if (upfront) throw notAllowed(upfront);
  const asBoolean = typeof context.spec.desired === 'boolean';

  async function openAllowed(flags: number): Promise<FileHandle> {
    let handle: FileHandle;
    try {
      const resolved = await realpath(path.resolve(config.path));
      const before = judge.refusal(resolved, shown);
      if (before) throw notAllowed(before);
      if (!(await stat(resolved)).isFile()) throw notAllowed(`${shown} is not a regular file; the file actuator driver writes only files (no devices, FIFOs or sockets)`);
      handle = await open(resolved, flags | COMMON_FLAGS);
    } catch (error) {
      throw fileError(error);
    }
    try {
      const opened = await readlink(`/proc/self/fd/${handle.fd}`);
      const after = judge.refusal(opened, shown);
      if (after) throw notAllowed(after);
      const facts = await handle.stat();
      if (!facts.isFile() || facts.nlink > 1) throw notAllowed(`${shown} is not a regular file with one link`);
      return handle;
    } catch (error) {
      await handle.close();
      throw fileError(error);
    }
  }

  function fileError(error: unknown): SensorletError {
    if (error instanceof SensorletError) return error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return new SensorletError('DeviceGone', `${shown} does not exist`, { cause: error });
    if (code === 'EACCES' || code === 'EPERM') return new SensorletError('PermissionDenied', `${shown}: permission denied`, { cause: error });
    if (code === 'ELOOP') return notAllowed(`${shown}: too many symlinks, or one appeared while the file was opened`);
    // sysfs answers EINVAL for a value the attribute does not take, EIO when the device behind it fails.
    return new SensorletError('WriteFailed', `${shown}: ${code ?? messageOf(error)}`, { cause: error });
  }

  return {
    async write(value, signal) {
      if (signal.aborted) throw abortError(signal, shown);
      const bytes = Buffer.from(`${renderValue(value, config)}\n`, 'utf8');
      const handle = await openAllowed(constants.O_WRONLY);
      try {
        // Truncated after the write, not on open: nothing changes before the opened file was judged.
        await handle.write(bytes, 0, bytes.length, 0);
        await handle.truncate(bytes.length).catch(() => undefined); // sysfs attributes have no length to cut
      } catch (error) {
        throw fileError(error);
      } finally {
        await handle.close();
      }
      return undefined;
    },
    async read(signal) {
      if (signal.aborted) throw abortError(signal, shown);
      const handle = await openAllowed(constants.O_RDONLY);
      let text: string;
      try {
        const buffer = Buffer.alloc(MAX_READ_BACK_BYTES);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
        text = buffer.subarray(0, bytesRead).toString('utf8');
      } catch (error) {
        throw fileError(error);
      } finally {
        await handle.close();
      }
      const raw = Number(text.trim());
      if (text.trim() === '' || !Number.isFinite(raw)) {
        throw new SensorletError('ReadBackMismatch', `${shown} holds ${describeUntrusted(text, { preview: true })}, not a number`);
      }
      return textReadBack(raw, config, asBoolean);
    },
    async close() {},
  };
}

export const fileActuator: ActuatorDriverFactory<FileActuatorConfig> = {
  name: 'file',
  canReadBack: () => true,
  validate(config, at, values: DeclaredValue[]): FieldError[] {
    const errors = scalarValues(values, 'file');
    if (config.scale === 0) errors.push({ path: `${at}.scale`, message: 'must not be 0', reason: 'InvalidSpec' });
    return errors;
  },
  create: createFileActuator,
};

registerActuatorDriver(fileActuator);
