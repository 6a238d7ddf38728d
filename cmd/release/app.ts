// The agent as every release artifact ships it (image: /usr/lib/sensorlet; Debian package: the same;
// tarball: its top folder), built from `npm run build`'s bundle:
//
//   package.json            name, version, license (the version is what `sensorlet --version` and OTA read)
//   dist/cmd/sensorlet/main.js   the CLI bundle (without its source map)
//   dist/console/           the web console's page, script and stylesheet (served on the admin port)
//   dist/schemas/validators.cjs   every kind's validator, compiled at build time (pkg/api/validators.ts)
//   schemas/                the resource schemas, read at start-up
//   node_modules/           only what the bundle loads at run time (cmd/bundle/external.ts) and their
//                           dependencies, without type declarations, source maps, docs, and without
//                           other platforms' serialport prebuilds
//   node/bin/node, node/LICENSE   the Node runtime for the platform
//   sensorlet               a /bin/sh launcher: that Node, the V8 flags of `npm start`, the bundle
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { KINDS, PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { ASSETS_DIR } from '../../pkg/console/assets.js';
import { PRECOMPILED_VALIDATORS_FILE, closedSchema, precompiledValidator } from '../../pkg/api/validators.js';
import { RUNTIME_PACKAGES } from '../bundle/external.js';
import { nodeRuntime } from './inputs.js';
import { NODE_RUNTIME_VERSION, type Platform } from './platforms.js';
import { Tree } from './tree.js';

interface PackageJson {
  name: string;
  version: string;
  description?: string;
  license?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

export function projectPackage(): PackageJson {
  return JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as PackageJson;
}

/** The Node flags of `npm start` (package.json), which every launcher of a release uses too. */
export function startNodeFlags(): string[] {
  const start = projectPackage().scripts?.start ?? '';
  const words = start.split(/\s+/);
  const flags = words.slice(words.indexOf('node') + 1).filter((word) => word.startsWith('--'));
  const script = words.findIndex((word) => word.endsWith('.js'));
  if (words[0] !== 'node' || script === -1 || flags.length === 0) throw new Error(`package.json scripts.start is not "node --flags... script.js": ${start}`);
  return words.slice(1, script).filter((word) => word.startsWith('--'));
}

/** The package folders of the runtime packages and everything they depend on (Node's resolution). */
export function runtimeModules(): string[] {
  const found = new Set<string>();
  const resolve = (name: string, from: string): string | undefined => {
    for (let dir = from; ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', name);
      if (existsSync(path.join(candidate, 'package.json'))) return candidate;
      if (dir === PACKAGE_ROOT || path.dirname(dir) === dir) return undefined;
    }
  };
  const visit = (name: string, from: string, optional: boolean) => {
    // Type declarations only; and packages for the Bare runtime, which tar-fs's `imports` map loads
    // only there (on Node it takes node:fs and node:path).
    if (name.startsWith('@types/') || name.startsWith('bare-')) return;
    const dir = resolve(name, from);
    if (!dir) {
      if (optional) return;
      throw new Error(`${name} (needed at run time) is not installed under ${from}: run npm ci`);
    }
    const relative = path.relative(PACKAGE_ROOT, dir);
    if (found.has(relative)) return;
    found.add(relative);
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
  };
  for (const name of RUNTIME_PACKAGES) visit(name, PACKAGE_ROOT, false);
  return [...found].sort();
}

const DROPPED_FILES = /(\.d\.[cm]?ts|\.[cm]?ts|\.map|\.md|\.markdown|\.gyp|\.gypi|\.cc|\.cpp|\.h)$/i;

/** The launcher script of the tarball and the Debian package (/usr/bin/sensorlet links to it). */
export function launcherScript(): string {
  return [
    '#!/bin/sh',
    '# Runs the agent with the Node runtime shipped beside it, with the V8 flags of `npm start`.',
    'here=$(dirname "$(readlink -f "$0")")',
    `exec "$here/node/bin/node" ${startNodeFlags().join(' ')} "$here/dist/cmd/sensorlet/main.js" "$@"`,
    '',
  ].join('\n');
}

/** A release whose precompiled validators are missing or stale would compile them at every start. */
function checkPrecompiledValidators(): void {
  for (const kind of KINDS) {
    const found = precompiledValidator(kind, closedSchema(kind));
    if ('problem' in found) throw new Error(`the precompiled validator of ${kind} cannot be used (${found.problem}): run npm run build first`);
  }
}

/** The agent tree for one platform, under `root` (a relative path). */
export function appTree(root: string, platform: Platform): Tree {
  const project = projectPackage();
  const bundle = path.join(PACKAGE_ROOT, 'dist/cmd/sensorlet/main.js');
  // tsc alone writes an unbundled main.js there, which would need every dependency beside it.
  if (!existsSync(bundle) || !readFileSync(bundle, 'utf8').includes('__sensorletCreateRequire')) throw new Error('dist/cmd/sensorlet/main.js is not the CLI bundle: run npm run build first');
  const tree = new Tree();
  const manifest = { name: project.name, version: project.version, description: project.description, license: project.license, type: 'module', engines: { node: `>=${NODE_RUNTIME_VERSION.split('.')[0]}` } };
  tree.data(`${root}/package.json`, `${JSON.stringify(manifest, null, 2)}\n`);
  tree.file(`${root}/dist/cmd/sensorlet/main.js`, bundle, 0o644);
  tree.copy(`${root}/dist/console`, ASSETS_DIR, 0o644);
  checkPrecompiledValidators();
  tree.file(`${root}/${path.relative(PACKAGE_ROOT, PRECOMPILED_VALIDATORS_FILE)}`, PRECOMPILED_VALIDATORS_FILE, 0o644);
  tree.copy(`${root}/schemas`, path.join(PACKAGE_ROOT, 'schemas'), 0o644);
  for (const module of runtimeModules()) {
    const source = realpathSync(path.join(PACKAGE_ROOT, module));
    const isBindings = module.endsWith(path.join('@serialport', 'bindings-cpp'));
    // Every file as 0644: nothing in node_modules is run as a program.
    tree.copy(`${root}/${module.split(path.sep).join('/')}`, source, 0o644, (relative, isDir) => {
      const parts = relative.split('/');
      // Nested node_modules are packages of their own, found (or not) by the walk above.
      if (parts[0] === 'node_modules') return false;
      // Dot files are the packages' tooling (.npmignore, .eslintrc, .github/...).
      if (parts.some((part) => part.startsWith('.'))) return false;
      if (!isDir && DROPPED_FILES.test(relative)) return false;
      // The addon's C++ sources: the prebuild is what loads.
      if (isBindings && parts[0] === 'src') return false;
      if (isBindings && parts[0] === 'prebuilds' && parts.length >= 2) {
        return parts[1] === platform.prebuildDir && (parts.length === 2 || parts[2] === platform.prebuildFile);
      }
      return true;
    });
  }
  const node = nodeRuntime(platform);
  tree.file(`${root}/node/bin/node`, path.join(node, 'bin/node'), 0o755);
  tree.file(`${root}/node/LICENSE`, path.join(node, 'LICENSE'), 0o644);
  tree.data(`${root}/sensorlet`, launcherScript(), 0o755);
  return tree;
}

/** The serialport addon of the platform, inside the app tree. */
export function serialportBinding(root: string, platform: Platform): string {
  return `${root}/node_modules/@serialport/bindings-cpp/prebuilds/${platform.prebuildDir}/${platform.prebuildFile}`;
}
