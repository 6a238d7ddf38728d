// The downloaded inputs of a release build: the Node runtime of each architecture (npm's
// node-linux-* packages) and the Debian packages that provide its shared libraries and the CA bundle.
//
// They are cached outside the clone (${XDG_CACHE_HOME:-~/.cache}/sensorlet-release, or
// $SENSORLET_RELEASE_CACHE), so a fresh clone in CI reuses them: a cold cache costs ~110 MB of
// downloads, a warm one nothing. An entry is complete or absent: each is written under a temporary
// name and renamed into place.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEBIAN_CA_PACKAGE, DEBIAN_LIBRARY_PACKAGES, NODE_RUNTIME_VERSION, type Platform } from './platforms.js';

export function cacheDir(): string {
  const base = process.env.SENSORLET_RELEASE_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'sensorlet-release');
  mkdirSync(base, { recursive: true });
  return base;
}

function run(command: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (error) {
    const failure = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(failure.stderr || failure.message).trim()}`);
  }
}

/** Builds `target` through a temporary sibling folder, so that an interrupted build leaves nothing. */
function cached(target: string, build: (scratch: string) => void): string {
  if (existsSync(target)) return target;
  mkdirSync(path.dirname(target), { recursive: true });
  const scratch = mkdtempSync(`${target}.partial-`);
  try {
    build(scratch);
    try {
      renameSync(scratch, target);
    } catch (error) {
      // Another build filled the same entry meanwhile: theirs is as good.
      if (!existsSync(target)) throw error;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return target;
}

/**
 * The folder of the Node runtime for a platform: bin/node (stripped of its symbol tables, which are
 * ~20 MB of the binary and ~4.5 MB gzipped, and are not used at run time; addons link against the
 * dynamic symbols, which strip keeps) and LICENSE.
 */
export function nodeRuntime(platform: Platform): string {
  const target = path.join(cacheDir(), 'node', `${platform.nodePackage}-${NODE_RUNTIME_VERSION}`);
  return cached(target, (scratch) => {
    const packed = run('npm', ['pack', '--silent', '--pack-destination', scratch, `${platform.nodePackage}@${NODE_RUNTIME_VERSION}`]).trim().split('\n').pop()!;
    run('tar', ['-xzf', path.join(scratch, packed), '-C', scratch, 'package/bin/node', 'package/LICENSE']);
    run(platform.strip, ['--strip-all', path.join(scratch, 'package/bin/node')]);
    mkdirSync(path.join(scratch, 'bin'));
    renameSync(path.join(scratch, 'package/bin/node'), path.join(scratch, 'bin/node'));
    renameSync(path.join(scratch, 'package/LICENSE'), path.join(scratch, 'LICENSE'));
    rmSync(path.join(scratch, 'package'), { recursive: true });
    rmSync(path.join(scratch, packed));
  });
}

/** The Debian packages for a platform's libraries and the CA bundle, unpacked into one folder. */
export function debianRoot(platform: Platform): { root: string; packages: string[] } {
  const debs = path.join(cacheDir(), 'deb', platform.arch);
  mkdirSync(debs, { recursive: true });
  const wanted = [...DEBIAN_LIBRARY_PACKAGES.map((name) => ({ name, arch: platform.arch })), { name: DEBIAN_CA_PACKAGE, arch: 'all' }];
  const files = wanted.map(({ name, arch }) => {
    const find = () => readdirSync(debs).find((file) => file.startsWith(`${name}_`) && file.endsWith(`_${arch}.deb`));
    if (!find()) {
      try {
        run('apt-get', ['download', arch === 'all' ? name : `${name}:${arch}`], debs);
      } catch (error) {
        throw new Error(`${(error as Error).message}\n(for a foreign architecture, run as root: dpkg --add-architecture ${platform.arch} && apt-get update; test/install-peers.sh does)`);
      }
    }
    return find()!;
  });
  const root = path.join(debs, `root-${files.map((file) => file.replace(/\.deb$/, '')).join('+')}`);
  cached(root, (scratch) => {
    for (const file of files) run('dpkg-deb', ['-x', path.join(debs, file), scratch]);
  });
  return { root, packages: files.map((file) => file.replace(/\.deb$/, '').replace(/_/, ' ').replace(/_[^_]+$/, '')) };
}
