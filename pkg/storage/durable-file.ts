// Small state files written atomically: a temp file, renamed over the target, so a crash leaves
// the old or the new version, never half of one. `durable` adds the fsyncs that make the new
// version survive a power cut too (file, then the folder that records the rename).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';

export function writeFileAtomic(file: string, content: string | Buffer, options: { durable?: boolean } = {}): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, 'w');
    try {
      const data = typeof content === 'string' ? Buffer.from(content) : content;
      // A full disk takes part of a write without an error: a short file must never replace the old one.
      for (let offset = 0; offset < data.length; ) {
        const written = writeSync(fd, data, offset, data.length - offset);
        if (written === 0) throw Object.assign(new Error(`ENOSPC: no space left on device, write ${temp}`), { code: 'ENOSPC' });
        offset += written;
      }
      if (options.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch (error) {
    // A half-written temp file on a full disk would hold on to the very space that is missing.
    try {
      rmSync(temp, { force: true });
    } catch {
      // the original error is the one to report
    }
    throw error;
  }
  if (options.durable) fsyncDir(path.dirname(file));
}

/** temp + fsync + rename + fsync of the folder: survives a power cut. */
export function writeFileDurable(file: string, content: string | Buffer): void {
  writeFileAtomic(file, content, { durable: true });
}

/** Some file systems cannot fsync a directory; the rename is then as durable as they allow. */
function cannotSyncDirectory(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'EPERM';
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch (error) {
    if (!cannotSyncDirectory(error)) throw error;
  } finally {
    closeSync(fd);
  }
}

/** fsyncDir off the event loop, for paths that must not block it (the outbox's group commit). */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    if (!cannotSyncDirectory(error)) throw error;
  } finally {
    await handle.close();
  }
}

export function readJsonFile<T>(file: string, fallback: T): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return fallback;
  }
}

/**
 * Errors that say the storage under the state dir refuses writes (full, read-only, failing
 * hardware, quota) rather than that the program did something wrong: they are reported as a
 * condition and retried, never allowed to stop the agent.
 */
const STORAGE_ERROR_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EFBIG', 'EACCES', 'EPERM', 'ENOENT']);

export function isStorageError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && STORAGE_ERROR_CODES.has(code);
}

/** A CamelCase condition reason for a storage error. */
export function storageReason(error: unknown): string {
  switch ((error as NodeJS.ErrnoException | null)?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return 'NoSpaceLeft';
    case 'EROFS':
      return 'ReadOnlyFilesystem';
    case 'EACCES':
    case 'EPERM':
      return 'PermissionDenied';
    case 'EIO':
      return 'IOError';
    default:
      return 'StorageWriteFailed';
  }
}
