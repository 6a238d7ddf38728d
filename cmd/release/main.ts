// Release builds from the CLI bundle (`npm run build` first):
//   node dist/cmd/release/main.js image   [--arch amd64,arm64] [--out DIR]   the multi-arch OCI image archive
//   node dist/cmd/release/main.js package [--arch amd64,arm64] [--out DIR]   the .deb and the tarball per arch
//   node dist/cmd/release/main.js rootfs  --arch ARCH --out DIR              one image's root filesystem as files (the Dockerfile copies it)
// Output goes to dist/release/ by default. Downloads are cached (cmd/release/inputs.ts).
import { parseArgs } from 'node:util';
import { buildImage, RELEASE_DIR } from './image.js';
import { platformsFor } from './platforms.js';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { arch: { type: 'string' }, out: { type: 'string' } } });
const platforms = platformsFor(values.arch?.split(',').filter(Boolean));
const out = values.out ?? RELEASE_DIR;
const MB = 1024 * 1024;

switch (positionals[0]) {
  case 'image': {
    const started = Date.now();
    const { archive, index, images } = await buildImage(platforms, out);
    for (const image of images) console.log(`linux/${image.platform.arch}: ${image.manifest.digest} ${(image.pushedBytes / MB).toFixed(1)} MB compressed`);
    console.log(`${archive}: index ${index.digest} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    break;
  }
  case 'package': {
    const { buildPackages } = await import('./package.js');
    for (const file of await buildPackages(platforms, out)) console.log(file);
    break;
  }
  case 'rootfs': {
    const { writeRootfs } = await import('./package.js');
    if (platforms.length !== 1 || !values.out) throw new Error('rootfs needs one --arch and --out DIR');
    writeRootfs(platforms[0], values.out);
    break;
  }
  default:
    console.error('usage: main.js image|package|rootfs [--arch amd64,arm64] [--out DIR]');
    process.exit(2);
}
