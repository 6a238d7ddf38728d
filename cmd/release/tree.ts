// A file tree to be archived: paths (relative, no leading slash) to entries, every parent folder
// present, listed in byte order of their paths so that the archive does not depend on the order
// files were added or found.
import { copyFileSync, chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TarEntry } from './tar.js';

export class Tree {
  private readonly entries = new Map<string, TarEntry>();

  dir(target: string, mode = 0o755, owner: { uid?: number; gid?: number } = {}): this {
    const clean = target.replace(/\/$/, '');
    this.parents(clean);
    this.entries.set(clean, { type: 'dir', path: clean, mode, ...owner });
    return this;
  }

  file(target: string, source: string, mode?: number): this {
    this.parents(target);
    const executable = (statSync(source).mode & 0o111) !== 0;
    this.entries.set(target, { type: 'file', path: target, source, mode: mode ?? (executable ? 0o755 : 0o644) });
    return this;
  }

  data(target: string, data: string | Buffer, mode = 0o644): this {
    this.parents(target);
    this.entries.set(target, { type: 'data', path: target, data: Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'), mode });
    return this;
  }

  symlink(target: string, linkTo: string): this {
    this.parents(target);
    this.entries.set(target, { type: 'symlink', path: target, target: linkTo });
    return this;
  }

  /**
   * Adds a folder from disk under `target`, skipping what `keep` refuses (relative paths). Symlinks
   * stay symlinks; files get `fileMode`, or 0755/0644 by their execute bit.
   */
  copy(target: string, source: string, fileMode?: number, keep: (relative: string, isDir: boolean) => boolean = () => true): this {
    const walk = (relative: string) => {
      const from = path.join(source, relative);
      for (const name of readdirSync(from).sort()) {
        const child = relative ? `${relative}/${name}` : name;
        const stat = lstatSync(path.join(source, child));
        if (!keep(child, stat.isDirectory())) continue;
        const to = `${target}/${child}`;
        if (stat.isSymbolicLink()) this.symlink(to, readlinkSync(path.join(source, child)));
        else if (stat.isDirectory()) {
          this.dir(to);
          walk(child);
        } else if (stat.isFile()) this.file(to, path.join(source, child), fileMode);
      }
    };
    this.dir(target);
    walk('');
    return this;
  }

  /** An entry as it is (from another tree's list()). */
  add(entry: TarEntry): this {
    this.parents(entry.path);
    this.entries.set(entry.path, entry);
    return this;
  }

  /** Another tree's entries in this one (the other tree's win on a clash). */
  merge(other: Tree): this {
    for (const entry of other.list()) this.add(entry);
    return this;
  }

  has(target: string): boolean {
    return this.entries.has(target.replace(/\/$/, ''));
  }

  list(): TarEntry[] {
    return [...this.entries.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  }

  /** Writes the tree out as real files (for dpkg-deb), with the entries' modes and owners. */
  materialize(root: string): void {
    for (const entry of this.list()) {
      const to = path.join(root, entry.path);
      if (entry.type === 'dir') mkdirSync(to, { recursive: true });
      else if (entry.type === 'symlink') symlinkSync(entry.target, to);
      else if (entry.type === 'file') copyFileSync(entry.source, to);
      else writeFileSync(to, entry.data);
      if (entry.type !== 'symlink') {
        chmodSync(to, entry.mode);
        if (entry.uid || entry.gid) chownSync(to, entry.uid ?? 0, entry.gid ?? 0);
      }
    }
  }

  private parents(target: string): void {
    const parts = target.split('/');
    for (let index = 1; index < parts.length; index++) {
      const parent = parts.slice(0, index).join('/');
      if (!this.entries.has(parent)) this.entries.set(parent, { type: 'dir', path: parent, mode: 0o755 });
    }
  }
}
