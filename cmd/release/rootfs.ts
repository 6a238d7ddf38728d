// The image's root filesystem besides the agent: users, the CA bundle, and exactly the shared
// libraries the Node binary and the serialport addon load (found from their ELF headers, taken from
// the platform's Debian packages), nothing else: no shell, no package manager.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { debianRoot } from './inputs.js';
import { DIALOUT_GID, IMAGE_UID, INSTALL_ROOT, type Platform } from './platforms.js';
import { Tree } from './tree.js';

const STATE_DIR = 'var/lib/sensorlet';
export const IMAGE_MANIFESTS_DIR = 'etc/sensorlet/manifests';

function readelf(args: string[], file: string): string {
  return execFileSync('readelf', [...args, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The interpreter (PT_INTERP) and DT_NEEDED libraries of an ELF file, read with binutils' readelf (any architecture). */
function elfDependencies(file: string): { interpreter?: string; needed: string[] } {
  const interpreter = /Requesting program interpreter: ([^\]]+)\]/.exec(readelf(['--program-headers', '--wide'], file))?.[1];
  const needed = [...readelf(['--dynamic', '--wide'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((match) => match[1]);
  return { interpreter, needed };
}

/** Adds `target` (a path inside the Debian root) to the tree, following and keeping its symlinks. */
function addFromRoot(tree: Tree, debRoot: string, target: string): string {
  let current = target.replace(/^\//, '');
  for (let hops = 0; hops < 10; hops++) {
    const onDisk = path.join(debRoot, current);
    const stat = lstatSync(onDisk);
    if (!stat.isSymbolicLink()) {
      tree.file(current, onDisk, stat.mode & 0o111 ? 0o755 : 0o644);
      return onDisk;
    }
    const link = readlinkSync(onDisk);
    tree.symlink(current, link);
    current = link.startsWith('/') ? link.slice(1) : path.posix.normalize(path.posix.join(path.posix.dirname(current), link));
  }
  throw new Error(`${target}: too many symbolic links`);
}

function findLibrary(debRoot: string, platform: Platform, soname: string): string {
  for (const dir of [`lib/${platform.triplet}`, `usr/lib/${platform.triplet}`]) {
    if (existsSync(path.join(debRoot, dir, soname))) return `${dir}/${soname}`;
  }
  throw new Error(`${soname} (needed by Node or the serialport addon) is in none of the Debian packages for ${platform.arch}`);
}

/**
 * Users, CA bundle and shared libraries for the ELF files given (paths on disk). Returns the tree
 * and the Debian packages (name version) the files come from, for the image's history.
 */
export function baseTree(platform: Platform, elfFiles: string[]): { tree: Tree; debianPackages: string[] } {
  const { root: debRoot, packages } = debianRoot(platform);
  const tree = new Tree();
  const pending = [...elfFiles];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const { interpreter, needed } = elfDependencies(pending.pop()!);
    const targets = [...(interpreter ? [interpreter.replace(/^\//, '')] : []), ...needed.map((soname) => findLibrary(debRoot, platform, soname))];
    for (const target of targets) {
      if (seen.has(target)) continue;
      seen.add(target);
      pending.push(addFromRoot(tree, debRoot, target));
    }
  }
  // Debian's merged /usr is symlinks made by base-files, which the image does not have: the libraries
  // stay at the paths their packages give them, which the dynamic loader searches by default.
  for (const name of ['libc6', 'libstdc++6', 'libgcc-s1', 'ca-certificates']) {
    const copyright = `usr/share/doc/${name}/copyright`;
    if (existsSync(path.join(debRoot, copyright))) tree.file(copyright, path.join(debRoot, copyright), 0o644);
  }
  // The CA bundle as update-ca-certificates would write it: Mozilla's roots, in name order.
  const mozilla = path.join(debRoot, 'usr/share/ca-certificates/mozilla');
  const bundle = readdirSync(mozilla).filter((name) => name.endsWith('.crt')).sort().map((name) => readFileSync(path.join(mozilla, name), 'utf8').trimEnd() + '\n').join('');
  tree.data('etc/ssl/certs/ca-certificates.crt', bundle);
  tree.data('etc/passwd', `root:x:0:0:root:/root:/sbin/nologin\nsensorlet:x:${IMAGE_UID}:${IMAGE_UID}:Sensorlet agent:/${STATE_DIR}:/sbin/nologin\n`);
  // The agent's user is a member of dialout, so that runtimes give it that supplementary group.
  tree.data('etc/group', `root:x:0:\ndialout:x:${DIALOUT_GID}:sensorlet\nsensorlet:x:${IMAGE_UID}:\n`);
  tree.data('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n');
  // Mount points a runtime fills (and the test's chroot mounts /proc on).
  for (const mountPoint of ['dev', 'proc', 'sys']) tree.dir(mountPoint, mountPoint === 'dev' ? 0o755 : 0o555);
  tree.dir('root', 0o700);
  tree.dir('tmp', 0o1777);
  tree.dir(STATE_DIR, 0o750, { uid: IMAGE_UID, gid: IMAGE_UID });
  tree.dir(IMAGE_MANIFESTS_DIR, 0o755);
  tree.dir(INSTALL_ROOT.slice(1), 0o755);
  return { tree, debianPackages: packages };
}

export const IMAGE_STATE_DIR = `/${STATE_DIR}`;
