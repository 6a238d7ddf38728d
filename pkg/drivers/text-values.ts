// Turning text (a serial line, a sysfs file, a command's stdout) into a sample. Shared by the
// serial, file and command drivers so `pattern`, `scale` and `offset` mean the same everywhere.
import type { FieldError } from '../api/resource.js';
import type { Sample } from '../api/reading.js';
import { SensorletError } from '../api/errors.js';
import { describeUntrusted } from '../api/untrusted.js';
import { compilePattern, type UserPattern } from '../api/pattern.js';
import { scaleValue } from './scale.js';

export interface TextValueConfig {
  pattern?: string;
  scale?: number;
  offset?: number;
}

/** Compiles `pattern`, or reports why it cannot be used, at `path`. */
export function validatePattern(pattern: string | undefined, path: string): FieldError[] {
  if (pattern === undefined) return [];
  let compiled: UserPattern;
  try {
    compiled = compilePattern(pattern);
  } catch (error) {
    return [{ path, message: (error as Error).message, reason: 'InvalidSpec' }];
  }
  // A pattern with no capture group at all cannot say where the number is.
  if (compiled.groupCount === 0) {
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
  const pattern = config.pattern === undefined ? undefined : compilePattern(config.pattern);
  // Worked out once, since this runs for every frame: the named groups in order, and the index of
  // `value` when it is the only one.
  const named = Object.entries(pattern?.groupIndex ?? {})
    .map(([name, index]) => ({ name, index }))
    .sort((a, b) => a.index - b.index);
  const onlyValue = named.length === 1 && named[0].name === 'value' ? named[0].index : undefined;
  const toNumber = (raw: string, name: string): number => {
    // Number() ignores surrounding whitespace itself, but reads blank text as 0.
    const number = Number(raw);
    if (!Number.isFinite(number) || (number === 0 && raw.trim() === '')) {
      throw new SensorletError('BadFrame', `${name} is not a number (${describeUntrusted(raw)})`);
    }
    return scaleValue(number, scale, offset);
  };

  return (text) => {
    if (pattern === undefined) return { value: toNumber(text, 'value') };
    let groups: readonly (string | undefined)[] | undefined;
    try {
      groups = pattern.exec(text);
    } catch (error) {
      throw new SensorletError('BadFrame', `not matched: ${(error as Error).message}`, { cause: error });
    }
    if (!groups) return undefined;
    if (onlyValue !== undefined) {
      const raw = groups[onlyValue];
      if (raw !== undefined) return { value: toNumber(raw, 'value') };
    }
    // The named groups that took part in the match; without any, the first group is the value.
    let values: Record<string, number> | undefined;
    let taken = 0;
    for (let i = 0; i < named.length; i++) {
      const raw = groups[named[i].index];
      if (raw === undefined) continue;
      (values ??= {})[named[i].name] = toNumber(raw, named[i].name);
      taken++;
    }
    if (values === undefined) return { value: toNumber(groups[1] ?? '', 'value') };
    if (taken === 1 && values.value !== undefined) return { value: values.value };
    return { values };
  };
}
