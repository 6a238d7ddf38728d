// Turning text (a serial line, a sysfs file, a command's stdout) into a sample. Shared by the
// serial, file and command drivers so `pattern`, `scale` and `offset` mean the same everywhere.
import type { FieldError } from '../api/resource.js';
import type { Sample } from '../api/reading.js';
import { SensorletError } from '../api/errors.js';
import { describeUntrusted } from '../api/untrusted.js';

export interface TextValueConfig {
  pattern?: string;
  scale?: number;
  offset?: number;
}

/** Compiles `pattern`, or reports why it cannot be used, at `path`. */
export function validatePattern(pattern: string | undefined, path: string): FieldError[] {
  if (pattern === undefined) return [];
  let regex: RegExp;
  try {
    regex = new RegExp(pattern);
  } catch (error) {
    return [{ path, message: `pattern does not compile: ${(error as Error).message}`, reason: 'InvalidSpec' }];
  }
  // A pattern with no capture group at all cannot say where the number is.
  const groups = new RegExp(`${regex.source}|`).exec('')!.length - 1;
  if (groups === 0) {
    return [{ path, message: 'pattern needs a named group such as (?<value>...)', reason: 'InvalidSpec' }];
  }
  return [];
}

export type TextParser = (text: string) => Sample | undefined;

/**
 * A parser that returns undefined when the text does not match (the caller decides whether that is
 * NoMatch or a frame for another Sensor) and throws BadFrame when it matches but holds no number.
 */
export function createTextParser(config: TextValueConfig): TextParser {
  const scale = config.scale ?? 1;
  const offset = config.offset ?? 0;
  const regex = config.pattern === undefined ? undefined : new RegExp(config.pattern);
  const toNumber = (raw: string, name: string): number => {
    const trimmed = raw.trim();
    const number = trimmed === '' ? NaN : Number(trimmed);
    if (!Number.isFinite(number)) throw new SensorletError('BadFrame', `${name} is not a number (${describeUntrusted(raw)})`);
    return number * scale + offset;
  };

  return (text) => {
    if (regex === undefined) return { value: toNumber(text, 'value') };
    const match = regex.exec(text);
    if (!match) return undefined;
    const named = Object.entries(match.groups ?? {}).filter(([, raw]) => raw !== undefined) as [string, string][];
    if (named.length === 0) return { value: toNumber(match[1] ?? '', 'value') };
    if (named.length === 1 && named[0][0] === 'value') return { value: toNumber(named[0][1], 'value') };
    const values: Record<string, number> = {};
    for (const [name, raw] of named) values[name] = toNumber(raw, name);
    return { values };
  };
}
