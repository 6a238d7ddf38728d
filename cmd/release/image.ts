// `npm run image`: the multi-arch container image, written as an OCI image layout in one tar file
// (dist/release/sensorlet-<version>-oci.tar), which skopeo (oci-archive:), `docker load`,
// `podman load` and `k3s ctr images import` accept.
//
// Why the layout is written here and not with buildah: no base image can be pulled, the image is
// only files (no RUN step), and writing the tars and JSON ourselves makes the digest a function of
// the inputs alone (entry order, owners, times, gzip header), without a container storage or a
// daemon. Each platform's image has two layers: the runtime (libraries, CA bundle, users, Node),
// which changes with the Node version, and the agent, which changes with every commit.
//
// Reproducible: every time is SOURCE_DATE_EPOCH (default: the commit's time); the same commit and
// inputs give the same index digest. A compressed layer is cached by its uncompressed digest
// (gzip -9 of Node takes ~20 s; the same tar always compresses to the same bytes).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { sourceCommit, sourceDateEpoch } from '../bundle/source.js';
import { appTree, projectPackage, serialportBinding, startNodeFlags } from './app.js';
import { cacheDir } from './inputs.js';
import { IMAGE_REPOSITORY, IMAGE_UID, INSTALL_ROOT, NODE_RUNTIME_VERSION, SOURCE_URL, type Platform } from './platforms.js';
import { baseTree, IMAGE_MANIFESTS_DIR, IMAGE_STATE_DIR } from './rootfs.js';
import { gzipFile, writeTar } from './tar.js';
import { Tree } from './tree.js';

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

/** The image's entrypoint: the platform's Node with the V8 flags of `npm start`, running the bundle. */
export function imageEntrypoint(): string[] {
  return [`${INSTALL_ROOT}/node/bin/node`, ...startNodeFlags(), `${INSTALL_ROOT}/dist/cmd/sensorlet/main.js`];
}

export function imageReference(): string {
  return `${IMAGE_REPOSITORY}:${projectPackage().version}`;
}

export function imageArchiveName(): string {
  return `sensorlet-${projectPackage().version}-oci.tar`;
}

class Blobs {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  json(mediaType: string, value: unknown, extra: Partial<Descriptor> = {}): Descriptor {
    const data = Buffer.from(JSON.stringify(value), 'utf8');
    const sha256 = createHash('sha256').update(data).digest('hex');
    writeFileSync(path.join(this.dir, sha256), data);
    return { mediaType, digest: `sha256:${sha256}`, size: data.length, ...extra };
  }

  /** A gzip layer from a tree; `cache`: keep the compressed blob for the next build. */
  async layer(tree: Tree, epoch: number, scratch: string, cache: boolean): Promise<{ descriptor: Descriptor; diffId: string }> {
    const tarFile = path.join(scratch, `layer-${Math.random().toString(36).slice(2)}.tar`);
    const diff = writeTar(tarFile, tree.list(), epoch);
    const cached = path.join(cacheDir(), 'layers', `${diff.sha256}.tar.gz`);
    let compressed: { sha256: string; size: number };
    const blobTemp = `${tarFile}.gz`;
    if (cache && existsSync(cached)) {
      copyFileSync(cached, blobTemp);
      compressed = await digestFile(blobTemp);
    } else {
      compressed = await gzipFile(tarFile, blobTemp);
      if (cache) {
        mkdirSync(path.dirname(cached), { recursive: true });
        copyFileSync(blobTemp, `${cached}.partial`);
        renameSync(`${cached}.partial`, cached);
      }
    }
    rmSync(tarFile);
    renameSync(blobTemp, path.join(this.dir, compressed.sha256));
    return { descriptor: { mediaType: MEDIA.layer, digest: `sha256:${compressed.sha256}`, size: compressed.size }, diffId: `sha256:${diff.sha256}` };
  }
}

async function digestFile(file: string): Promise<{ sha256: string; size: number }> {
  const { createReadStream } = await import('node:fs');
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

export interface PlatformImage {
  platform: Platform;
  manifest: Descriptor;
  /** Compressed size of the layers plus config: what a registry push and a pull move. */
  pushedBytes: number;
}

/** The root filesystem of one platform's image as two trees: runtime and agent. */
export function imageTrees(platform: Platform): { runtime: Tree; agent: Tree; debianPackages: string[] } {
  const root = INSTALL_ROOT.slice(1);
  const app = appTree(root, platform);
  const runtime = new Tree();
  const agent = new Tree();
  for (const entry of app.list()) {
    if (entry.path === `${root}/node` || entry.path.startsWith(`${root}/node/`)) runtime.add(entry);
    else if (entry.path.startsWith(`${root}/`)) agent.add(entry);
  }
  const elfFiles = [app.list().find((entry) => entry.path === `${root}/node/bin/node`), app.list().find((entry) => entry.path === serialportBinding(root, platform))].map((entry) => {
    if (!entry || entry.type !== 'file') throw new Error(`${platform.arch}: Node or the serialport prebuild is missing from the agent tree`);
    return entry.source;
  });
  const base = baseTree(platform, elfFiles);
  runtime.merge(base.tree);
  return { runtime, agent, debianPackages: base.debianPackages };
}

async function platformImage(blobs: Blobs, platform: Platform, epoch: number, commit: string, scratch: string): Promise<PlatformImage> {
  const { runtime, agent, debianPackages } = imageTrees(platform);
  const project = projectPackage();
  const created = new Date(epoch * 1000).toISOString();
  const [runtimeLayer, agentLayer] = await Promise.all([blobs.layer(runtime, epoch, scratch, true), blobs.layer(agent, epoch, scratch, false)]);
  const labels = imageLabels(created, commit);
  const config = blobs.json(MEDIA.config, {
    created,
    architecture: platform.arch,
    os: 'linux',
    config: {
      User: `${IMAGE_UID}:${IMAGE_UID}`,
      Env: ['PATH=/usr/lib/sensorlet/node/bin:/usr/bin:/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'],
      Entrypoint: imageEntrypoint(),
      Cmd: ['run', '--manifests', `/${IMAGE_MANIFESTS_DIR}`, '--state-dir', IMAGE_STATE_DIR],
      WorkingDir: IMAGE_STATE_DIR,
      Labels: labels,
    },
    rootfs: { type: 'layers', diff_ids: [runtimeLayer.diffId, agentLayer.diffId] },
    history: [
      { created, created_by: `sensorlet release: Node ${NODE_RUNTIME_VERSION} (npm ${platform.nodePackage}), ${debianPackages.join(', ')}` },
      { created, created_by: `sensorlet release: agent ${project.version} (${commit})` },
    ],
  });
  const manifest = blobs.json(
    MEDIA.manifest,
    { schemaVersion: 2, mediaType: MEDIA.manifest, config, layers: [runtimeLayer.descriptor, agentLayer.descriptor], annotations: labels },
    { platform: { architecture: platform.arch, os: 'linux' } },
  );
  return { platform, manifest, pushedBytes: config.size + runtimeLayer.descriptor.size + agentLayer.descriptor.size };
}

export function imageLabels(created: string, commit: string): Record<string, string> {
  const project = projectPackage();
  return {
    'org.opencontainers.image.created': created,
    'org.opencontainers.image.description': project.description ?? '',
    'org.opencontainers.image.licenses': project.license ?? '',
    'org.opencontainers.image.revision': commit,
    'org.opencontainers.image.source': SOURCE_URL,
    'org.opencontainers.image.title': 'sensorlet',
    'org.opencontainers.image.url': SOURCE_URL,
    'org.opencontainers.image.version': project.version,
  };
}

/** Builds the image for the platforms into `outDir`; returns the archive path and each platform's figures. */
export async function buildImage(platforms: Platform[], outDir: string): Promise<{ archive: string; index: Descriptor; images: PlatformImage[] }> {
  const epoch = sourceDateEpoch();
  const commit = sourceCommit();
  mkdirSync(outDir, { recursive: true });
  const scratch = mkdtempSync(path.join(outDir, '.image-'));
  try {
    const layout = path.join(scratch, 'layout');
    const blobs = new Blobs(path.join(layout, 'blobs', 'sha256'));
    const images: PlatformImage[] = [];
    // One platform at a time: each holds its layers' tar files on disk meanwhile.
    for (const platform of platforms) images.push(await platformImage(blobs, platform, epoch, commit, scratch));
    const created = new Date(epoch * 1000).toISOString();
    const reference = imageReference();
    const index = blobs.json(
      MEDIA.index,
      { schemaVersion: 2, mediaType: MEDIA.index, manifests: images.map((image) => image.manifest), annotations: imageLabels(created, commit) },
      { annotations: { 'io.containerd.image.name': reference, 'org.opencontainers.image.ref.name': projectPackage().version } },
    );
    writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [index] }));
    const archive = path.join(outDir, imageArchiveName());
    const files = new Tree().file('oci-layout', path.join(layout, 'oci-layout'), 0o644).file('index.json', path.join(layout, 'index.json'), 0o644);
    files.copy('blobs', path.join(layout, 'blobs'), 0o644);
    writeTar(`${archive}.partial`, files.list(), epoch);
    renameSync(`${archive}.partial`, archive);
    return { archive, index, images };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export const RELEASE_DIR = path.join(PACKAGE_ROOT, 'dist', 'release');
