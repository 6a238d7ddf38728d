// The folder source: every *.yaml, *.yml and *.json under a directory, watched. Each file is one
// origin: a change re-reads only that file, and the store works out which resources changed.
import { readFile } from 'node:fs/promises';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../observability/logger.js';
import { isManifestFile, parseManifestText, readManifestFiles } from './manifest-parser.js';
import type { ResourceSource, SourceListener } from './source.js';

/** Editors save in bursts (truncate, write, rename); wait for the burst to end, well within 500 ms. */
const SETTLE_MS = 60;

export function createDirectorySource(dir: string, logger: Logger): ResourceSource {
  let listener: SourceListener | undefined;
  let watcher: FSWatcher | undefined;
  const known = new Set<string>();
  let stopped = false;
  const pending = new Map<string, NodeJS.Timeout>();

  const load = async (file: string): Promise<void> => {
    if (stopped) return;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return unload(file);
      throw error;
    }
    if (stopped) return; // the agent is shutting down: a change now would reconcile into stopped runners
    known.add(file);
    listener!.replace(file, parseManifestText(file, text));
  };

  const unload = (file: string): void => {
    if (!known.delete(file)) return;
    listener!.replace(file, []);
  };

  const schedule = (file: string): void => {
    if (!isManifestFile(file)) return;
    clearTimeout(pending.get(file));
    pending.set(
      file,
      setTimeout(() => {
        pending.delete(file);
        load(file).catch((error) => logger.error({ file, err: String(error) }, 'could not read manifest file'));
      }, SETTLE_MS),
    );
  };

  const resync = async (): Promise<void> => {
    const files = await readManifestFiles(dir);
    for (const file of files) await load(file);
    if (stopped) return;
    for (const file of [...known]) if (!files.includes(file)) unload(file);
  };

  return {
    async start(target) {
      listener = target;
      await resync();
      watcher = chokidar.watch(dir, {
        ignoreInitial: true,
        ignored: (file) => /(^|[/\\])\.[^/\\]/.test(file.slice(dir.length)),
      });
      watcher.on('add', schedule).on('change', schedule).on('unlink', schedule);
      watcher.on('error', (error) => logger.error({ err: String(error) }, 'manifest watcher failed'));
      await new Promise<void>((resolve) => watcher!.once('ready', () => resolve()));
      listener.synced();
    },
    resync,
    async stop() {
      stopped = true;
      for (const timer of pending.values()) clearTimeout(timer);
      await watcher?.close();
    },
  };
}
