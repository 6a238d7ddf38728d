// The folder source: every *.yaml, *.yml and *.json under a directory (links followed, see
// manifest-files.ts), watched. Each file is one origin.
//
// Any change in a watched folder schedules one scan of the whole folder: list it, re-read only the
// files whose fingerprint (inode, size, times) moved, and hand every origin that changed to the
// store in one `replaceMany`. Scanning instead of reacting to single-file events is what makes an
// atomic folder update (the kubelet's `..data` symlink swap in a ConfigMap volume, or a GitOps
// checkout renaming a folder) arrive as one change with no intermediate state, and it makes the
// runtime rules the start-up rules: the loaded set is always a function of the folder as it is.
// A scan during which anything changed may have seen half an update; it is discarded and repeated.
// The same holds when the manifests path is itself a link swapped to another folder.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import { isManifestFile, listManifestFiles, readManifestFile, MAX_MANIFEST_FILE_BYTES, type FileProblem, type ListOptions, type ManifestListing } from './manifest-files.js';
import { fileProblemDocument, parseManifestText } from './manifest-parser.js';
import type { ResourceSource, SourceDocument, SourceListener } from './source.js';

/** Editors and the kubelet change a folder in bursts; wait for the burst to end, well within 500 ms. */
const SETTLE_MS = 60;
/** A folder that never stops changing is still scanned this often. */
const MAX_SETTLE_MS = 500;
/**
 * A folder that keeps changing for longer than this while it is read is applied as read (with a
 * warning): an update never starves for ever. The kubelet's updates take milliseconds.
 */
const MAX_UNSETTLED_MS = 10_000;

export interface DirectorySourceOptions extends ListOptions {
  maxFileBytes?: number;
  /** Reports how many entries are skipped now, by reason (each skip is also logged when it appears). */
  onSkipped?: (countsByReason: Map<string, number>) => void;
}

/** What the source last handed over for one origin. */
interface Loaded {
  fingerprint: string;
  /** Hash of the text (or of the problem): an unchanged file is not handed over again. */
  digest: string;
  problem?: FileProblem;
}

/** Same files with the same fingerprints, same problems. */
function sameListing(a: ManifestListing, b: ManifestListing): boolean {
  const files = (listing: ManifestListing) => listing.files.map((file) => `${file.file}\0${file.fingerprint}`).join('\n');
  const problems = (listing: ManifestListing) => listing.problems.map((problem) => `${problem.file}\0${problem.code}`).join('\n');
  return files(a) === files(b) && problems(a) === problems(b);
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

export function createDirectorySource(dir: string, logger: Logger, options: DirectorySourceOptions = {}): ResourceSource {
  const maxFileBytes = options.maxFileBytes ?? MAX_MANIFEST_FILE_BYTES;
  let listener: SourceListener | undefined;
  let loaded = new Map<string, Loaded>();
  const watchers = new Map<string, FSWatcher>();
  let stopped = false;
  /** Counts watch events: a scan during which it moved may have seen half an update. */
  let changeCount = 0;
  let settleTimer: NodeJS.Timeout | undefined;
  let firstUnscannedChange: number | undefined;
  let scanQueued = false;
  /** When the first of the scans in a row that saw the folder change under them started. */
  let unsettledSince: number | undefined;
  let scans: Promise<void> = Promise.resolve();

  /** One scan; false when the folder changed under it and nothing was applied. */
  const scan = async (reread: boolean): Promise<boolean> => {
    const changesBefore = changeCount;
    let torn = false;
    const listing = await listManifestFiles(dir, options);
    const next = new Map<string, Loaded>();
    const changes = new Map<string, SourceDocument[]>();
    const problems = [...listing.problems];
    for (const file of listing.files) {
      const previous = loaded.get(file.file);
      if (!reread && previous && !previous.problem && previous.fingerprint === file.fingerprint) {
        next.set(file.file, previous);
        continue;
      }
      const result = await readManifestFile(file, maxFileBytes);
      if ('changed' in result) {
        // Replaced since listed: part of an update in progress. Keep what was there; scan again.
        torn = true;
        if (previous) next.set(file.file, previous);
        continue;
      }
      if ('gone' in result) {
        torn = true;
        continue;
      }
      if ('problem' in result) {
        problems.push(result.problem);
        continue;
      }
      const entry: Loaded = { fingerprint: file.fingerprint, digest: digest(result.text) };
      next.set(file.file, entry);
      if (previous?.digest !== entry.digest) changes.set(file.file, parseManifestText(file.file, result.text));
    }
    for (const problem of problems) {
      const entry: Loaded = { fingerprint: '', digest: `${problem.code}:${problem.message}`, problem };
      next.set(problem.file, entry);
      if (loaded.get(problem.file)?.digest !== entry.digest) changes.set(problem.file, [fileProblemDocument(problem)]);
    }
    for (const origin of loaded.keys()) if (!next.has(origin)) changes.set(origin, []);
    // What was read is one state of the folder only if the folder still lists the same files (a
    // file skipped because its fingerprint had not moved was not checked by a read) and no watch
    // event came in meanwhile; events already queued by the kernel are delivered before this resumes.
    if (!torn) torn = !sameListing(listing, await listManifestFiles(dir, options));
    await nextTurn();
    if (stopped) return true;
    if (torn || changeCount !== changesBefore) {
      unsettledSince ??= Date.now();
      if (Date.now() - unsettledSince < MAX_UNSETTLED_MS) return false;
      logger.warn({ dir, seconds: MAX_UNSETTLED_MS / 1000 }, 'the manifests folder kept changing while being read: applying it as read');
    }
    unsettledSince = undefined;
    apply(next, changes);
    watchFolders(listing);
    return true;
  };

  const apply = (next: Map<string, Loaded>, changes: Map<string, SourceDocument[]>): void => {
    for (const [origin, documents] of changes) {
      const problem = next.get(origin)?.problem;
      if (problem) logger.warn({ file: origin, reason: problem.code }, `manifest file not loaded: ${problem.message}`);
      else if (documents.length === 0) logger.info({ file: origin }, 'manifest file removed');
    }
    loaded = next;
    const skipped = new Map<string, number>();
    for (const entry of next.values()) if (entry.problem) skipped.set(entry.problem.code, (skipped.get(entry.problem.code) ?? 0) + 1);
    options.onSkipped?.(skipped);
    if (changes.size === 0) return;
    if (listener) listener.replaceMany(changes);
    logger.info({ files: [...changes.keys()] }, `manifests changed: ${changes.size} file(s) applied as one change`);
  };

  /** When the manifests path is itself a link (`current -> releases/v2`), its swap shows in its parent. */
  let rootLinkParent: string | undefined;

  /** Watches every folder the scan read and every folder a file really lives in (links resolved). */
  const watchFolders = (listing: ManifestListing): void => {
    const wanted = new Set([...listing.folders, ...listing.files.map((file) => path.dirname(file.real))]);
    if (rootLinkParent) wanted.add(rootLinkParent);
    for (const [folder, watcher] of watchers) {
      if (!wanted.has(folder)) {
        watcher.close();
        watchers.delete(folder);
      }
    }
    for (const folder of wanted) {
      if (watchers.has(folder)) continue;
      try {
        const watcher = watch(folder, { persistent: false }, onChange);
        watcher.on('error', (error) => {
          logger.warn({ folder, err: String(error) }, 'stopped watching a manifests folder');
          watcher.close();
          watchers.delete(folder);
          onChange();
        });
        watchers.set(folder, watcher);
      } catch (error) {
        // Gone already (an old ConfigMap revision) or out of inotify watches: the next scan retries.
        logger.warn({ folder, err: String(error) }, 'cannot watch a manifests folder');
      }
    }
  };

  const onChange = (_event?: string, name?: string | Buffer | null): void => {
    // Names that cannot matter (notes.txt, an editor's .x.swp) do not disturb a scan; folders
    // (no extension), manifests and the kubelet's `..data` and revision folders do.
    const entry = typeof name === 'string' ? name : undefined;
    if (entry && !isManifestFile(entry) && !entry.startsWith('..') && path.extname(entry) !== '') return;
    changeCount++;
    schedule();
  };

  const schedule = (): void => {
    if (stopped) return;
    const now = Date.now();
    firstUnscannedChange ??= now;
    clearTimeout(settleTimer);
    settleTimer = setTimeout(runScheduledScan, Math.max(0, Math.min(SETTLE_MS, firstUnscannedChange + MAX_SETTLE_MS - now)));
  };

  /** Scans run one at a time; changes during a scan queue one more. */
  const enqueueScan = (reread: boolean): Promise<void> => {
    scans = scans.then(async () => {
      if (stopped) return;
      if (!(await scan(reread))) schedule();
    });
    return scans;
  };

  const runScheduledScan = (): void => {
    settleTimer = undefined;
    firstUnscannedChange = undefined;
    if (scanQueued) return;
    scanQueued = true;
    void enqueueScan(false)
      .catch((error) => logger.error({ err: String(error) }, 'could not scan the manifests folder'))
      .finally(() => (scanQueued = false));
  };

  return {
    async start(target) {
      listener = target;
      // A folder that is not there is a wrong flag, not an empty set: start-up fails, as it always did.
      const root = await realpath(dir);
      if ((await lstat(dir)).isSymbolicLink()) rootLinkParent = path.dirname(dir);
      // Watched before the first scan, so that an update during it is noticed.
      watchFolders({ folders: [root], files: [], problems: [] });
      // The scan is retried until it sees the folder at rest (bounded: see MAX_UNSETTLED_MS).
      while (!(await scan(false)) && !stopped) await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      if (loaded.size === 0) logger.warn({ dir }, 'no manifest files (*.yaml, *.yml, *.json) in the manifests folder');
      listener.synced();
    },
    resync: () => enqueueScan(true),
    async stop() {
      stopped = true;
      clearTimeout(settleTimer);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}
