// The agent bundle: the artifact format of a Firmware with `target: agent`.
//
// Format `sensorlet-bundle/1` — one gzip stream (RFC 1952) whose content is:
//
//   SENSORLET-BUNDLE 1\n
//   {"path":"package.json","size":812,"mode":420}\n <812 bytes>
//   {"path":"dist/cmd/sensorlet/main.js","size":4321,"mode":493}\n <4321 bytes>
//   ...
//   {"end":true,"files":N}\n
//
// Why not tar: Node has no tar reader and the agent must not depend on one; this framing is a few
// lines in each direction and its paths are checked before anything is written.
// What it holds: the code of one build — `package.json` (its `version` is the build's version and
// must equal the Firmware's `spec.version`), `dist/**` (compiled JavaScript, the validators compiled
// at build time and the web console's assets; source maps and tests are left out by
// packAgentBundle), `schemas/**` (read at run time). It holds no node_modules: a slot
// links `node_modules` to the installed copy's, so a bundle updates the code, not the dependencies.
// An update that needs new dependencies is a package-manager update, not an OTA of the agent.
// Required entries: package.json and dist/cmd/sensorlet/main.js. Paths are relative, use `/`,
// never contain `..`, and start with `package.json`, `dist/` or `schemas/`.
import { gunzipSync, gzipSync } from 'node:zlib';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OtaError } from './errors.js';

export const BUNDLE_MAGIC = 'SENSORLET-BUNDLE 1\n';
/** A bundle larger than this unpacked is refused (a bound on memory, far above a real build). */
export const MAX_UNPACKED_BYTES = 256 * 1024 * 1024;
export const ENTRY_POINT = 'dist/cmd/sensorlet/main.js';

export interface BundleEntry {
  path: string;
  mode: number;
  data: Buffer;
}

const ALLOWED = /^(package\.json|dist\/[A-Za-z0-9._@+\-/]+|schemas\/[A-Za-z0-9._@+\-/]+)$/;

function checkPath(entryPath: string): void {
  if (!ALLOWED.test(entryPath) || entryPath.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    throw new OtaError('SlotInvalid', `agent bundle: refused entry path ${JSON.stringify(entryPath)}`);
  }
}

export function encodeBundle(entries: readonly BundleEntry[]): Buffer {
  const parts: Buffer[] = [Buffer.from(BUNDLE_MAGIC)];
  for (const entry of entries) {
    checkPath(entry.path);
    parts.push(Buffer.from(`${JSON.stringify({ path: entry.path, size: entry.data.length, mode: entry.mode })}\n`), entry.data);
  }
  parts.push(Buffer.from(`${JSON.stringify({ end: true, files: entries.length })}\n`));
  return gzipSync(Buffer.concat(parts));
}

export function decodeBundle(bundle: Buffer): BundleEntry[] {
  let raw: Buffer;
  try {
    raw = gunzipSync(bundle, { maxOutputLength: MAX_UNPACKED_BYTES });
  } catch (error) {
    throw new OtaError('SlotInvalid', `agent bundle: not a gzip stream of a bundle: ${(error as Error).message}`);
  }
  if (!raw.subarray(0, BUNDLE_MAGIC.length).equals(Buffer.from(BUNDLE_MAGIC))) throw new OtaError('SlotInvalid', 'agent bundle: bad magic (not sensorlet-bundle/1)');
  const entries: BundleEntry[] = [];
  let at = BUNDLE_MAGIC.length;
  for (;;) {
    const newline = raw.indexOf(0x0a, at);
    if (newline < 0) throw new OtaError('SlotInvalid', 'agent bundle: truncated (no end record)');
    let header: { path?: string; size?: number; mode?: number; end?: boolean; files?: number };
    try {
      header = JSON.parse(raw.subarray(at, newline).toString('utf8'));
    } catch {
      throw new OtaError('SlotInvalid', `agent bundle: bad entry header at byte ${at}`);
    }
    at = newline + 1;
    if (header.end) {
      if (header.files !== entries.length) throw new OtaError('SlotInvalid', `agent bundle: end record says ${header.files} files, found ${entries.length}`);
      if (at !== raw.length) throw new OtaError('SlotInvalid', 'agent bundle: bytes after the end record');
      break;
    }
    if (typeof header.path !== 'string' || !Number.isInteger(header.size) || header.size! < 0) throw new OtaError('SlotInvalid', `agent bundle: bad entry header at byte ${at}`);
    checkPath(header.path);
    if (at + header.size! > raw.length) throw new OtaError('SlotInvalid', `agent bundle: ${header.path} is truncated`);
    entries.push({ path: header.path, mode: (header.mode ?? 0o644) & 0o755, data: raw.subarray(at, at + header.size!) });
    at += header.size!;
  }
  for (const required of ['package.json', ENTRY_POINT]) {
    if (!entries.some((entry) => entry.path === required)) throw new OtaError('SlotInvalid', `agent bundle: ${required} is missing`);
  }
  return entries;
}

/** The version a bundle declares (its package.json). */
export function bundleVersion(entries: readonly BundleEntry[]): string {
  const pkg = entries.find((entry) => entry.path === 'package.json')!;
  let version: unknown;
  try {
    version = (JSON.parse(pkg.data.toString('utf8')) as { version?: unknown }).version;
  } catch {
    throw new OtaError('SlotInvalid', 'agent bundle: package.json is not JSON');
  }
  if (typeof version !== 'string' || !version) throw new OtaError('SlotInvalid', 'agent bundle: package.json has no version');
  return version;
}

/** Writes the entries under `dir` (which the caller has emptied). */
export function writeBundle(entries: readonly BundleEntry[], dir: string): void {
  for (const entry of entries) {
    const file = path.join(dir, ...entry.path.split('/'));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, entry.data);
    chmodSync(file, entry.mode);
  }
}

export interface PackOptions {
  /** Overrides package.json's version (test builds, CI stamping). */
  version?: string;
  /** Replaces or adds files (path → content), e.g. a marker file or a patched entry point. */
  override?: Record<string, string | Buffer>;
}

/**
 * Packs the build at `root` (a package root holding package.json, dist/, schemas/) into a bundle:
 * dist/cmd and dist/pkg JavaScript without tests and source maps, the precompiled validators, the
 * web console's assets, the schemas, and package.json.
 */
export function packAgentBundle(root: string, options: PackOptions = {}): Buffer {
  const entries = new Map<string, BundleEntry>();
  const walk = (relative: string, keep: (file: string) => boolean) => {
    const full = path.join(root, relative);
    for (const name of readdirSync(full).sort()) {
      const child = `${relative}/${name}`;
      const stat = statSync(path.join(root, child));
      if (stat.isDirectory()) walk(child, keep);
      else if (keep(child)) entries.set(child, { path: child, mode: stat.mode & 0o755, data: readFileSync(path.join(root, child)) });
    }
  };
  const code = (file: string) => file.endsWith('.js') && !file.endsWith('.test.js') && !file.includes('/testing/');
  walk('dist/cmd', code);
  walk('dist/pkg', code);
  walk('dist/schemas', (file) => file.endsWith('.cjs'));
  walk('dist/console', () => true);
  walk('schemas', (file) => file.endsWith('.json'));
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  if (options.version) pkg.version = options.version;
  entries.set('package.json', { path: 'package.json', mode: 0o644, data: Buffer.from(`${JSON.stringify(pkg, null, 2)}\n`) });
  for (const [file, content] of Object.entries(options.override ?? {})) {
    entries.set(file, { path: file, mode: 0o644, data: Buffer.isBuffer(content) ? content : Buffer.from(content) });
  }
  return encodeBundle([...entries.values()]);
}
