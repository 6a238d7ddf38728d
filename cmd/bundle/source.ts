// Which source a build comes from: the commit (baked into the bundle for `sensorlet --version`, and
// the image's revision label) and the time every release artifact is stamped with.
import { execFileSync } from 'node:child_process';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: PACKAGE_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** $SOURCE_COMMIT (builds without .git, e.g. a Docker context), else HEAD, with `-dirty` for uncommitted changes. */
export function sourceCommit(): string {
  if (process.env.SOURCE_COMMIT) return process.env.SOURCE_COMMIT;
  const head = git(['rev-parse', 'HEAD']);
  if (!head) return 'unknown';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']);
  return dirty ? `${head}-dirty` : head;
}

/** $SOURCE_DATE_EPOCH (reproducible-builds.org), else the commit's time: the same commit, the same stamps. */
export function sourceDateEpoch(): number {
  const fromEnv = process.env.SOURCE_DATE_EPOCH ?? git(['log', '-1', '--format=%ct']);
  const epoch = Number(fromEnv);
  if (!fromEnv || !Number.isInteger(epoch) || epoch < 0) throw new Error('set SOURCE_DATE_EPOCH (seconds since 1970) when building outside a git checkout');
  return epoch;
}
