// The version of the running build (package.json, which a release and an OTA bundle carry beside the
// code) and the commit it was built from (baked into the CLI bundle by cmd/bundle).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from './schemas.js';

declare const SENSORLET_COMMIT: string | undefined;

export interface BuildInfo {
  version: string;
  /** A git commit, with `-dirty` when built from uncommitted changes; `unknown` when not built by cmd/bundle. */
  commit: string;
}

export function buildInfo(): BuildInfo {
  const { version } = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return { version, commit: typeof SENSORLET_COMMIT === 'string' ? SENSORLET_COMMIT : 'unknown' };
}
