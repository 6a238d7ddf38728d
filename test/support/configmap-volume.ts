// A Kubernetes ConfigMap volume, written the way the kubelet writes one (pkg/volume/util/
// atomic_writer.go): each revision in a new `..<timestamp>` folder, `..data` a link to the current
// one, and each user-visible file a link through it (`x.yaml -> ..data/x.yaml`). An update is:
// write the new revision, link the new files, swap `..data` by rename, unlink removed files, remove
// the old revision. `stepDelayMs` holds every intermediate state on disk for a while, so that a
// watcher that reads the folder between the steps is caught.
import { mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, lstatSync } from 'node:fs';
import path from 'node:path';

let revision = 0;

function timestampFolder(): string {
  // The kubelet's format: ..2026_12_01_03_12_45.1234567890
  const now = new Date();
  const pad = (value: number) => String(value).padStart(2, '0');
  revision++;
  return `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.${process.pid}${revision}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes (or updates) the volume at `dir` to hold exactly `files` (name → content). */
export async function writeConfigMapVolume(dir: string, files: Record<string, string>, options: { stepDelayMs?: number } = {}): Promise<void> {
  const pause = async () => {
    if (options.stepDelayMs) await sleep(options.stepDelayMs);
  };
  mkdirSync(dir, { recursive: true });
  const dataLink = path.join(dir, '..data');
  let oldRevision: string | undefined;
  try {
    oldRevision = readlinkSync(dataLink);
  } catch {
    oldRevision = undefined;
  }
  const visible = readdirSync(dir).filter((name) => !name.startsWith('..'));
  const newRevision = timestampFolder();
  mkdirSync(path.join(dir, newRevision));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, newRevision, name), text);
  await pause();
  for (const name of Object.keys(files)) {
    if (!visible.includes(name)) symlinkSync(path.join('..data', name), path.join(dir, name));
  }
  await pause();
  symlinkSync(newRevision, path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), dataLink);
  await pause();
  for (const name of visible) {
    if (!(name in files) && lstatSync(path.join(dir, name)).isSymbolicLink()) unlinkSync(path.join(dir, name));
  }
  await pause();
  if (oldRevision) rmSync(path.join(dir, oldRevision), { recursive: true, force: true });
}
