// What a Firmware would replace on this node, for the downgrade check. Each Firmware resource has
// its own record (`<stateDir>/ota/<namespace>.<name>/state.json`), so a resource's own record alone
// would let a manifest author dodge the check by applying the older version under a new name: the
// device is the same when the install program is. So every record on this node whose committed
// version was installed the same way counts: the same install argv (which the signed statement
// covers, so it cannot be changed without the vendor's key), or, for `target: agent`, the agent.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { FirmwareSpec } from '../api/resource.js';
import { OtaStateFile } from './state.js';

export interface InstalledVersion {
  version: string;
  /** `<namespace>.<name>` of the Firmware whose record says so, or `agent` for the running build. */
  by: string;
}

function sameArgv(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((arg, index) => arg === b[index]);
}

/**
 * Versions committed on this node for the thing `spec` installs, own record first, then the others
 * by name: the own record's when it has the same target, every other record with the same target
 * and the same install argv (the one that committed its version), and for `target: agent` the
 * running build. Records that cannot be read are skipped (they are reported where they belong).
 */
export function installedVersions(otaDir: string, own: string, spec: FirmwareSpec, runningAgentVersion?: string): InstalledVersion[] {
  const found: InstalledVersion[] = [];
  if (spec.target === 'agent' && runningAgentVersion !== undefined) found.push({ version: runningAgentVersion, by: 'agent' });
  let entries: string[];
  try {
    entries = readdirSync(otaDir).sort();
  } catch {
    return found;
  }
  for (const entry of [own, ...entries.filter((name) => name !== own)]) {
    let record;
    try {
      record = OtaStateFile.read(path.join(otaDir, entry, 'state.json'));
    } catch {
      continue;
    }
    if (record?.currentVersion === undefined || record.target !== spec.target) continue;
    // A record from before currentInstall was kept: its last attempt's argv is the best there is.
    const installedWith = record.currentInstall ?? record.spec?.install?.command;
    if (entry === own || spec.target === 'agent' || sameArgv(installedWith, spec.install?.command)) found.push({ version: record.currentVersion, by: entry });
  }
  return found;
}
