// Rotation: watch the directories of a Certificate's files, not the files themselves, because
// cert-manager, Kubernetes Secret volumes and `mv new old` replace files by rename, which detaches a
// watch on the old inode. Bursts of events (cert then key) are debounced into one callback.
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { CertificateSpec } from '../api/resource.js';
import { certificateFiles } from './load.js';

export interface CertificateWatch {
  close(): void;
}

export interface WatchOptions {
  /** Quiet time after the last event before onChange fires; default 200 ms. */
  debounceMs?: number;
  /** Called when a directory cannot be watched (e.g. it does not exist yet). */
  onError?: (error: Error) => void;
}

export function watchCertificateFiles(spec: CertificateSpec, onChange: (changedFiles: string[]) => void, options: WatchOptions = {}): CertificateWatch {
  const files = certificateFiles(spec).map((file) => path.resolve(file));
  const byDirectory = new Map<string, Set<string>>();
  for (const file of files) {
    const dir = path.dirname(file);
    if (!byDirectory.has(dir)) byDirectory.set(dir, new Set());
    byDirectory.get(dir)!.add(path.basename(file));
  }

  const changed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    timer = undefined;
    if (closed) return;
    const list = [...changed];
    changed.clear();
    onChange(list);
  };

  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDirectory) {
    try {
      const watcher = watch(dir, { persistent: false }, (_event, filename) => {
        // Kubernetes Secret volumes swap a `..data` symlink; any such name means "everything changed".
        const name = filename?.toString();
        if (name && !names.has(name) && !name.startsWith('..')) return;
        for (const file of name && names.has(name) ? [path.join(dir, name)] : [...names].map((n) => path.join(dir, n))) changed.add(file);
        if (timer) clearTimeout(timer);
        timer = setTimeout(fire, options.debounceMs ?? 200);
      });
      watcher.on('error', (error) => options.onError?.(error));
      watchers.push(watcher);
    } catch (error) {
      options.onError?.(error as Error);
    }
  }

  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}
