// Small state files written atomically: a temp file, renamed over the target, so a crash leaves
// the old or the new version, never half of one. `durable` adds the fsyncs that make the new
// version survive a power cut too (file, then the folder that records the rename).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';

export function writeFileAtomic(file: string, content: string | Buffer, options: { durable?: boolean } = {}): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    if (options.durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
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
