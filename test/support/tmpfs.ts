// A small, real, size-limited filesystem for full-disk and read-only tests: a tmpfs mounted by the
// test (CI runs as root) and unmounted by it in every outcome.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export class Tmpfs {
  private mounted = true;
  private constructor(readonly dir: string) {}

  /** Fails loudly (never skips) when the test cannot mount: full-disk cases need root. */
  static mount(size: string): Tmpfs {
    assert.equal(process.getuid?.(), 0, 'this test mounts a tmpfs and needs root (CI runs as root)');
    const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
    const tmpfs = new Tmpfs(dir);
    // A test that times out never reaches its finally: the mount must not outlive the test process.
    process.once('exit', () => tmpfs.unmount());
    return tmpfs;
  }

  /** Writes `name` until the filesystem is full (ENOSPC); returns its path and size. */
  fill(name = 'filler'): { file: string; bytes: number } {
    const file = path.join(this.dir, name);
    const fd = openSync(file, 'w');
    const block = Buffer.alloc(64 * 1024, 0x55);
    let bytes = 0;
    try {
      for (let size = block.length; size >= 1; ) {
        try {
          bytes += writeSync(fd, block, 0, size);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          size = Math.floor(size / 2); // the last pages: until not even one byte fits
        }
      }
    } finally {
      closeSync(fd);
    }
    return { file, bytes };
  }

  remount(mode: 'ro' | 'rw'): void {
    execFileSync('mount', ['-o', `remount,${mode}`, this.dir]);
  }

  unmount(): void {
    if (!this.mounted) return;
    this.mounted = false;
    try {
      execFileSync('mount', ['-o', 'remount,rw', this.dir]);
    } catch {
      // not mounted read-only
    }
    try {
      execFileSync('umount', [this.dir]);
    } catch {
      execFileSync('umount', ['-l', this.dir]); // a process still holding a file: detach now, free on close
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
