// `npm run build`, second step: bundles the CLI and the libraries it imports into one file,
// dist/cmd/sensorlet/main.js, over tsc's output of the same path (the other dist/ files stay for the
// tests and the dynamic imports' fallbacks).
//
// Why: an edge agent's memory is mostly code. Loaded as ~600 separate modules, the CLI's
// dependencies cost their source text, a module record and a wrapper each; one minified file
// measured about 10 MB less RSS for the same work (README, "Performance"). The bundle keeps the same
// depth below the package root as the file it replaces, and the same dependencies: it is the same
// program, loaded differently.
//
// Left outside the bundle, loaded from node_modules at run time:
// - native addons (serialport and its bindings): their .node files are found relative to the package;
// - @kubernetes/client-node: imported only in cluster mode, so standalone mode never loads it;
// - pino-pretty: loaded in a worker thread by pino.transport, by package name;
// - the lazily required ones (pkg/api/lazy-require.ts: modbus-serial, node-forge, re2js, and ajv
//   with ajv-formats, needed only to compile a schema changed since the build), so that an agent
//   that does not use them does not parse them.
// CommonJS dependencies call require() for Node built-ins; the banner gives the ES module a real one.
// The commit the bundle is built from is baked in as SENSORLET_COMMIT (pkg/api/version.ts).
//
// It also compiles every kind's validator ahead of time into dist/schemas/validators.cjs
// (pkg/api/validators.ts says why), with the ajv helpers that code requires bundled in.
//
// And it builds the web console's assets into dist/console/ (served by pkg/console/assets.ts): the
// page, one script (the console and uPlot, minified) and one stylesheet (uPlot's and the console's).
import { build, transform } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { PRECOMPILED_VALIDATORS_FILE } from '../../pkg/api/validators.js';
import { BUNDLE_EXTERNAL } from './external.js';
import { sourceCommit } from './source.js';
import { precompiledValidatorsSource } from './validators.js';

const result = await build({
  entryPoints: [path.join(PACKAGE_ROOT, 'cmd/sensorlet/main.ts')],
  outfile: path.join(PACKAGE_ROOT, 'dist/cmd/sensorlet/main.js'),
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: BUNDLE_EXTERNAL,
  define: { SENSORLET_COMMIT: JSON.stringify(sourceCommit()) },
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  banner: { js: "import { createRequire as __sensorletCreateRequire } from 'node:module'; const require = __sensorletCreateRequire(import.meta.url);" },
  metafile: true,
  logLevel: 'warning',
});
const output = Object.values(result.metafile.outputs).find((file) => file.entryPoint);
console.log(`bundled dist/cmd/sensorlet/main.js: ${(output!.bytes / 1024).toFixed(0)} KiB from ${Object.keys(result.metafile.inputs).length} modules`);

await build({
  stdin: { contents: precompiledValidatorsSource(), resolveDir: PACKAGE_ROOT, sourcefile: 'validators.cjs', loader: 'js' },
  outfile: PRECOMPILED_VALIDATORS_FILE,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
console.log(`precompiled the validators of every kind: ${path.relative(PACKAGE_ROOT, PRECOMPILED_VALIDATORS_FILE)}`);

const consoleDir = path.join(PACKAGE_ROOT, 'dist/console');
const consoleSource = path.join(PACKAGE_ROOT, 'pkg/console/web');
mkdirSync(consoleDir, { recursive: true });
await build({
  entryPoints: [path.join(consoleSource, 'console.ts')],
  outfile: path.join(consoleDir, 'console.js'),
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const uplotCss = readFileSync(createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'), 'utf8');
const css = await transform(`${uplotCss}\n${readFileSync(path.join(consoleSource, 'console.css'), 'utf8')}`, { loader: 'css', minify: true });
writeFileSync(path.join(consoleDir, 'console.css'), css.code);
copyFileSync(path.join(consoleSource, 'index.html'), path.join(consoleDir, 'index.html'));
console.log('built dist/console/ (the web console)');
