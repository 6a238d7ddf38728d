// Which files a manifests folder declares, and reading one within a budget. `sensorlet run` (the
// folder source) and `sensorlet validate` share these rules, so both see the same files and errors.
//
// What a user actually has in that folder:
// - Symbolic links to files and folders, followed. The layout of a Kubernetes ConfigMap or Secret
//   volume is the common case: `x.yaml -> ..data/x.yaml`, `..data -> ..2026_12_01_…/`. Dot-prefixed
//   entries (those, `.git`, editor swap files) are never listed themselves; they are read through
//   the links that point into them, so each file is declared once, under the name the user sees.
// - A link may not lead out of the folder unless the operator allows it: whoever can write a
//   manifest can create a link, and reading beyond the folder is the operator's to grant.
// - A link back to a folder that contains it (a loop) is reported, not followed. Depth, folder and
//   file counts have budgets, so no layout costs unbounded time or memory.
// - Anything that is not a regular file (FIFO, socket, device) named like a manifest is reported
//   and never opened through the walk; reading opens with O_NONBLOCK and checks the type with fstat,
//   so a file swapped for a FIFO in between cannot block a thread either.
// - Size is checked on the open descriptor before reading, and the read itself is bounded.
// - A link that leads nowhere is absent, not an error: the kubelet leaves a removed file's link
//   dangling for a moment during its update.
import { constants, type BigIntStats, type Dirent } from 'node:fs';
import { open, opendir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Files over this are refused unread. 1 MiB is also all a whole Kubernetes ConfigMap may hold; 1000
 * Sensors take about 200 KiB. A larger set splits into several files.
 */
export const MAX_MANIFEST_FILE_BYTES = 1024 * 1024;
const MAX_FOLDER_DEPTH = 16;
const MAX_FOLDERS = 1000;
const MAX_FILES = 10_000;
/** Entries of every kind, read as a stream: a folder of a million names must not cost their memory. */
const MAX_ENTRIES = 100_000;

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

export function isManifestFile(file: string): boolean {
  return MANIFEST_EXTENSIONS.includes(path.extname(file).toLowerCase());
}

/** Stable reasons (condition reasons and log fields) of a file that cannot be loaded. */
export type FileProblemCode =
  | 'ManifestUnreadable'
  | 'ManifestTooLarge'
  | 'NotARegularFile'
  | 'SymlinkLoop'
  | 'LinkOutsideManifests'
  | 'ManifestFolderTooLarge';

export interface FileProblem {
  /** The path as found under the target (a link's own path, not where it leads). */
  file: string;
  code: FileProblemCode;
  message: string;
}

export interface ManifestFile {
  /** As found under the target: the name the user sees, also for a link. */
  file: string;
  /** Where it really is (links resolved); its folder is watched for changes. */
  real: string;
  /** Device and inode seen by the walk: a read that opens something else reports `changed`. */
  identity: string;
  /** Identity, size, mtime and ctime in ns: a file whose fingerprint is unchanged need not be read again. */
  fingerprint: string;
}

export interface ManifestListing {
  files: ManifestFile[];
  problems: FileProblem[];
  /** Every folder read, links resolved; watching these (and the files' folders) sees every change. */
  folders: string[];
}

export interface ListOptions {
  /** Operator policy: follow links whose target is outside the manifests folder. */
  allowLinksOutside?: boolean;
}

/** The operator flag that lets links lead out of the manifests folder. */
export const ALLOW_LINKS_OUTSIDE_FLAG = '--allow-manifest-links-outside';

function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'EIO';
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'not a folder',
  EPERM: 'operation not permitted',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error',
  ENAMETOOLONG: 'name too long',
};

function unreadable(file: string, error: unknown): FileProblem {
  const errno = errnoOf(error);
  if (errno === 'ELOOP') return { file, code: 'SymlinkLoop', message: 'symbolic link loop (ELOOP): not followed' };
  return { file, code: 'ManifestUnreadable', message: `cannot read: ${ERRNO_TEXT[errno] ?? 'error'} (${errno})` };
}

function typeName(info: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isDirectory(): boolean }): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isDirectory()) return 'a folder';
  return 'not a regular file';
}

function notRegular(file: string, info: Parameters<typeof typeName>[0]): FileProblem {
  return { file, code: 'NotARegularFile', message: `${typeName(info)}, not a regular file: not read` };
}

function identityOf(info: BigIntStats): string {
  return `${info.dev}:${info.ino}`;
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * The manifest files under `target` (a folder, searched recursively, or a single file), sorted so
 * that "first declared" is stable, with a problem for each entry that cannot be loaded.
 */
export async function listManifestFiles(target: string, options: ListOptions = {}): Promise<ManifestListing> {
  const listing: ManifestListing = { files: [], problems: [], folders: [] };
  let rootInfo: BigIntStats;
  let rootReal: string;
  try {
    rootInfo = await stat(target, { bigint: true });
    rootReal = await realpath(target);
  } catch (error) {
    listing.problems.push(unreadable(target, error));
    return listing;
  }
  if (!rootInfo.isDirectory()) {
    // Named explicitly, so its extension does not matter; its type and size still do.
    if (!rootInfo.isFile()) listing.problems.push(notRegular(target, rootInfo));
    else listing.files.push(manifestFile(target, rootReal, rootInfo));
    listing.folders.push(path.dirname(rootReal));
    return listing;
  }
  let budgetExceeded = false;
  let entriesRead = 0;
  let foldersVisited = 0;
  const exceed = (message: string) => {
    if (!budgetExceeded) listing.problems.push({ file: target, code: 'ManifestFolderTooLarge', message });
    budgetExceeded = true;
  };

  const visit = async (dir: string, real: string, ancestors: readonly string[]): Promise<void> => {
    if (++foldersVisited > MAX_FOLDERS) return exceed(`more than ${MAX_FOLDERS} folders: the rest are not read`);
    const entries: Dirent[] = [];
    try {
      const handle = await opendir(dir);
      // Watched once readable; a change of its mode shows in its parent, which is watched.
      listing.folders.push(real);
      for await (const entry of handle) {
        if (++entriesRead > MAX_ENTRIES) return exceed(`more than ${MAX_ENTRIES} entries: the rest are not read`);
        entries.push(entry);
      }
    } catch (error) {
      listing.problems.push(unreadable(dir, error));
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (budgetExceeded) return;
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      let entryReal = path.join(real, entry.name);
      const looksLikeManifest = isManifestFile(entry.name);
      if (!entry.isSymbolicLink() && !entry.isDirectory()) {
        // Not a folder: only manifests matter, and their type is checked before anything opens them.
        if (!looksLikeManifest) continue;
        if (!entry.isFile()) {
          listing.problems.push(notRegular(full, entry));
          continue;
        }
      }
      if (entry.isSymbolicLink()) {
        try {
          entryReal = await realpath(full);
        } catch (error) {
          if (errnoOf(error) === 'ENOENT') continue; // dangling: absent (see the top of this file)
          if (looksLikeManifest || errnoOf(error) === 'ELOOP') listing.problems.push(unreadable(full, error));
          continue;
        }
      }
      let info: BigIntStats;
      try {
        info = await stat(entryReal, { bigint: true });
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') continue; // removed while listing
        if (looksLikeManifest || entry.isDirectory()) listing.problems.push(unreadable(full, error));
        continue;
      }
      if (!info.isDirectory() && !looksLikeManifest) continue;
      if (entry.isSymbolicLink() && !options.allowLinksOutside && !isInside(rootReal, entryReal)) {
        listing.problems.push({
          file: full,
          code: 'LinkOutsideManifests',
          message: `a symbolic link out of the manifests folder: not followed; only the operator can allow it (${ALLOW_LINKS_OUTSIDE_FLAG})`,
        });
        continue;
      }
      if (info.isDirectory()) {
        const identity = identityOf(info);
        if (ancestors.includes(identity)) {
          listing.problems.push({ file: full, code: 'SymlinkLoop', message: 'a symbolic link to a folder that contains it (a loop): not followed' });
          continue;
        }
        if (ancestors.length >= MAX_FOLDER_DEPTH) {
          listing.problems.push({ file: full, code: 'ManifestFolderTooLarge', message: `folders nested more than ${MAX_FOLDER_DEPTH} deep: not read` });
          continue;
        }
        await visit(full, entryReal, [...ancestors, identity]);
        continue;
      }
      if (!info.isFile()) {
        listing.problems.push(notRegular(full, info));
        continue;
      }
      if (listing.files.length >= MAX_FILES) return exceed(`more than ${MAX_FILES} manifest files: the rest are not read`);
      listing.files.push(manifestFile(full, entryReal, info));
    }
  };
  await visit(target, rootReal, [identityOf(rootInfo)]);
  listing.files.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return listing;
}

function manifestFile(file: string, real: string, info: BigIntStats): ManifestFile {
  const identity = identityOf(info);
  return { file, real, identity, fingerprint: `${identity}:${info.size}:${info.mtimeNs}:${info.ctimeNs}` };
}

export type ReadResult =
  | { text: string }
  | { problem: FileProblem }
  /** Removed since it was listed. */
  | { gone: true }
  /** Replaced by another file since it was listed (an update in progress): list again. */
  | { changed: true };

/**
 * Reads one listed file. It never blocks on a FIFO (O_NONBLOCK, type checked on the descriptor),
 * refuses files over `maxBytes` before reading a byte, and never holds more than `maxBytes + 1`.
 */
export async function readManifestFile(file: ManifestFile, maxBytes = MAX_MANIFEST_FILE_BYTES): Promise<ReadResult> {
  let handle;
  try {
    handle = await open(file.file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { gone: true };
    return { problem: unreadable(file.file, error) };
  }
  try {
    const info = await handle.stat({ bigint: true });
    if (!info.isFile()) return { problem: notRegular(file.file, info) };
    // The walk checked this inode (type, and that a link stays inside the folder).
    if (identityOf(info) !== file.identity) return { changed: true };
    if (info.size > BigInt(maxBytes)) return { problem: tooLarge(file.file, `${info.size} bytes`, maxBytes) };
    // The size is a hint (the file may grow while read): never past maxBytes + 1.
    let buffer = Buffer.allocUnsafe(Number(info.size) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (buffer.length > maxBytes) break;
        const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
        buffer.copy(bigger, 0, 0, length);
        buffer = bigger;
      }
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) return { problem: tooLarge(file.file, 'growing', maxBytes) };
    return { text: buffer.toString('utf8', 0, length) };
  } catch (error) {
    return { problem: unreadable(file.file, error) };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function tooLarge(file: string, size: string, maxBytes: number): FileProblem {
  return { file, code: 'ManifestTooLarge', message: `${size}, over the ${maxBytes}-byte limit of a manifest file: not read (split it into several files)` };
}
