// The folder source: every *.yaml, *.yml and *.json under a directory, watched. Each file is one
// origin: a change re-reads only that file, and the store works out which resources changed.
import { createHash } from 'node:crypto';
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
  /** file → digest of the text last delivered: a resync re-reads every file but passes on only changes. */
  const known = new Map<string, string>();
  const pending = new Map<string, NodeJS.Timeout>();

  const load = async (file: string): Promise<void> => {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return unload(file);
      throw error;
    }
    // Re-parsing and re-validating an unchanged file is pure cost: the store would find nothing
    // changed, after validating the whole set again (thousands of resources: 100+ ms each time).
    const digest = createHash('sha256').update(text).digest('hex');
    if (known.get(file) === digest) return;
    known.set(file, digest);
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
    const present = new Set(files);
    for (const file of [...known.keys()]) if (!present.has(file)) unload(file);
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
      for (const timer of pending.values()) clearTimeout(timer);
      await watcher?.close();
    },
  };
}
