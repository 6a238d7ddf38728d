// Which of two Firmware versions is older, when that can be told. A manifest author cannot forge a
// signed artifact, but can point a Firmware at an older one the vendor once signed: a build whose
// flaws were fixed since. Versions are free text (spec.version), so they are ordered only when both
// read as dotted numbers with an optional semver pre-release: `1.2`, `v2.0.10`, `3.1.0-rc.2`,
// `2024.05.1`. Anything else cannot be ordered and is left to the signature alone.
const VERSION = /^v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]*)?$/;
/** More numeric parts than any real version has; the rest cannot be ordered. */
const MAX_PARTS = 8;

interface ParsedVersion {
  numbers: bigint[];
  preRelease: string[];
}

function parse(version: string): ParsedVersion | undefined {
  const match = VERSION.exec(version);
  if (!match) return undefined;
  const parts = match[1].split('.');
  if (parts.length > MAX_PARTS) return undefined;
  return { numbers: parts.map((part) => BigInt(part)), preRelease: match[2] ? match[2].split('.') : [] };
}

function compareIdentifiers(a: string, b: string): number {
  const aNumeric = /^\d+$/.test(a);
  const bNumeric = /^\d+$/.test(b);
  if (aNumeric && bNumeric) return Math.sign(Number(BigInt(a) - BigInt(b)));
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1; // semver: numeric identifiers sort first
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Negative when `a` is older than `b`, positive when newer, 0 when the same release; undefined when
 * either cannot be ordered. Missing numeric parts count as 0 (`1.2` = `1.2.0`); a pre-release is
 * older than its release (`2.0.0-rc.1` < `2.0.0`), as in semver; build metadata (`+…`) is ignored.
 */
export function compareVersions(a: string, b: string): number | undefined {
  const left = parse(a);
  const right = parse(b);
  if (!left || !right) return undefined;
  for (let i = 0; i < Math.max(left.numbers.length, right.numbers.length); i++) {
    const difference = (left.numbers[i] ?? 0n) - (right.numbers[i] ?? 0n);
    if (difference !== 0n) return difference < 0n ? -1 : 1;
  }
  if (left.preRelease.length === 0 || right.preRelease.length === 0) return Math.sign(right.preRelease.length - left.preRelease.length) || 0;
  for (let i = 0; i < Math.min(left.preRelease.length, right.preRelease.length); i++) {
    const order = compareIdentifiers(left.preRelease[i], right.preRelease[i]);
    if (order !== 0) return order;
  }
  return Math.sign(left.preRelease.length - right.preRelease.length);
}
