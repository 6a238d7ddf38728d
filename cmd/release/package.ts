// `npm run package`: per architecture, the Debian package sensorlet_<version>_<arch>.deb and the
// self-contained tarball sensorlet-<version>-linux-<arch>.tar.gz, both carrying their own Node
// runtime (the device's Node version does not matter). Also the image's root filesystem as plain
// files, which the Dockerfile copies into a scratch image.
//
// The .deb is built by dpkg-deb from a folder written here: root-owned (--root-owner-group),
// stamped with SOURCE_DATE_EPOCH, which dpkg-deb honours.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { sourceDateEpoch } from '../bundle/source.js';
import { appTree, projectPackage } from './app.js';
import { imageTrees } from './image.js';
import { INSTALL_ROOT, SOURCE_URL, type Platform } from './platforms.js';
import { gzipFile, writeTar } from './tar.js';
import { Tree } from './tree.js';

const DEBIAN_FILES = path.join(PACKAGE_ROOT, 'cmd', 'release', 'debian');
const MAINTAINER = 'Sensorlet maintainers <sensorlet@users.noreply.github.com>';

export function debName(platform: Platform): string {
  return `sensorlet_${projectPackage().version}_${platform.arch}.deb`;
}

export function tarballName(platform: Platform): string {
  return `sensorlet-${projectPackage().version}-linux-${platform.arch}.tar.gz`;
}

function debianChangelog(version: string, epoch: number): Buffer {
  const date = new Date(epoch * 1000).toUTCString().replace('GMT', '+0000');
  const text = `sensorlet (${version}) unstable; urgency=medium\n\n  * Release ${version}; see ${SOURCE_URL}/releases.\n\n -- ${MAINTAINER}  ${date}\n`;
  // gzip's header holds no name and a zero time here, so the bytes depend on the text alone.
  return gzipSync(text, { level: 9 });
}

/** The package's files: the agent under /usr/lib/sensorlet, the launcher, the unit, the manifests folder. */
function debTree(platform: Platform, epoch: number): Tree {
  const version = projectPackage().version;
  const tree = appTree(INSTALL_ROOT.slice(1), platform);
  tree.symlink('usr/bin/sensorlet', '../lib/sensorlet/sensorlet');
  tree.file('lib/systemd/system/sensorlet.service', path.join(DEBIAN_FILES, 'sensorlet.service'), 0o644);
  tree.file('etc/sensorlet/manifests/example.yaml', path.join(DEBIAN_FILES, 'example.yaml'), 0o644);
  tree.file('usr/share/doc/sensorlet/copyright', path.join(DEBIAN_FILES, 'copyright'), 0o644);
  tree.file('usr/share/lintian/overrides/sensorlet', path.join(DEBIAN_FILES, 'lintian-overrides'), 0o644);
  tree.data('usr/share/doc/sensorlet/changelog.gz', debianChangelog(version, epoch), 0o644);
  return tree;
}

function installedSizeKiB(tree: Tree): number {
  let bytes = 0;
  for (const entry of tree.list()) {
    if (entry.type === 'file') bytes += Math.ceil(statSync(entry.source).size / 1024) * 1024;
    else if (entry.type === 'data') bytes += Math.ceil(entry.data.length / 1024) * 1024;
    else bytes += 1024;
  }
  return Math.ceil(bytes / 1024);
}

function buildDeb(platform: Platform, out: string, epoch: number): string {
  const project = projectPackage();
  const scratch = mkdtempSync(path.join(out, '.deb-'));
  try {
    const tree = debTree(platform, epoch);
    tree.materialize(scratch);
    const control = path.join(scratch, 'DEBIAN');
    mkdirSync(control);
    writeFileSync(
      path.join(control, 'control'),
      [
        'Package: sensorlet',
        `Version: ${project.version}`,
        `Architecture: ${platform.arch}`,
        `Maintainer: ${MAINTAINER}`,
        `Installed-Size: ${installedSizeKiB(tree)}`,
        'Depends: adduser, libc6 (>= 2.28), libgcc-s1, libstdc++6',
        'Section: net',
        'Priority: optional',
        `Homepage: ${SOURCE_URL}`,
        'Description: declarative data-collection agent for edge devices',
        ' Sensorlet reads sensors (serial, Modbus, files, simulated) as declared by',
        ' Kubernetes-style Sensor and Sink resources in /etc/sensorlet/manifests, keeps',
        ' every reading in a durable outbox and delivers it over mutual-TLS MQTT or CoAP.',
        ' This package carries its own Node.js runtime under /usr/lib/sensorlet.',
        '',
      ].join('\n'),
    );
    writeFileSync(path.join(control, 'conffiles'), '/etc/sensorlet/manifests/example.yaml\n');
    for (const script of ['postinst', 'prerm', 'postrm']) {
      writeFileSync(path.join(control, script), readFileSync(path.join(DEBIAN_FILES, script)), { mode: 0o755 });
    }
    const target = path.join(out, debName(platform));
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', scratch, `${target}.partial`], {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    renameSync(`${target}.partial`, target);
    return target;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function buildTarball(platform: Platform, out: string, epoch: number): Promise<string> {
  const top = `sensorlet-${projectPackage().version}-linux-${platform.arch}`;
  const tree = appTree(top, platform);
  tree.copy(`${top}/examples`, path.join(PACKAGE_ROOT, 'manifests', 'examples', 'quickstart'), 0o644);
  const target = path.join(out, tarballName(platform));
  const tarFile = `${target}.tar.partial`;
  try {
    writeTar(tarFile, tree.list(), epoch);
    await gzipFile(tarFile, `${target}.partial`, 6);
    renameSync(`${target}.partial`, target);
  } finally {
    rmSync(tarFile, { force: true });
  }
  return target;
}

export async function buildPackages(platforms: Platform[], out: string): Promise<string[]> {
  const epoch = sourceDateEpoch();
  mkdirSync(out, { recursive: true });
  const built: string[] = [];
  for (const platform of platforms) {
    built.push(buildDeb(platform, out, epoch));
    built.push(await buildTarball(platform, out, epoch));
  }
  return built;
}

/** One platform's image root filesystem as files under `out` (run as root: the state dir belongs to the image user). */
export function writeRootfs(platform: Platform, out: string): void {
  const { runtime, agent } = imageTrees(platform);
  mkdirSync(out, { recursive: true });
  runtime.merge(agent).materialize(out);
}
