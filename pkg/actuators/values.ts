// The values an Actuator declares (spec.desired, spec.onStop.set) and the checks every driver shares:
// their shape, spec.bounds, and how a number becomes the text a file, a serial command or a program
// argument carries. A value outside bounds is a validation error (reason OutOfBounds) at its field
// path, so nothing outside them is ever written, whoever asked for it.
import type { ActuatorSpec, FieldError } from '../api/resource.js';
import { parseDuration } from '../api/units.js';
import type { ActuatorValue, DeclaredValue } from './actuator.js';
import { actuatorDriverFactory } from './registry.js';

export const OUT_OF_BOUNDS = 'OutOfBounds';

/** Register blocks are written with one request: function 16 writes at most 123 registers. */
export const MAX_BLOCK_VALUES = 123;

export type OnStop = { hold: true } | { hold: false; value: ActuatorValue };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** `value` as an ActuatorValue, or why it is not one (pushed to `errors`). */
export function asValue(value: unknown, path: string, errors: FieldError[]): ActuatorValue | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (Array.isArray(value) && value.length > 0 && value.length <= MAX_BLOCK_VALUES && value.every((item) => typeof item === 'number' && Number.isFinite(item))) return value as number[];
  const why = Array.isArray(value)
    ? value.length === 0
      ? 'must not be an empty list'
      : value.length > MAX_BLOCK_VALUES
        ? `must have at most ${MAX_BLOCK_VALUES} values (one write request)`
        : 'a list must hold numbers only'
    : `must be a number, true or false, or a list of numbers (got ${describe(value)})`;
  errors.push({ path, message: why, reason: 'InvalidSpec' });
  return undefined;
}

/** The fail-safe of spec.onStop: `hold` (or absent), or `{ set: VALUE }`. */
export function onStopOf(spec: ActuatorSpec): OnStop {
  const onStop = spec.onStop as unknown;
  if (onStop !== null && typeof onStop === 'object' && !Array.isArray(onStop) && 'set' in onStop) return { hold: false, value: (onStop as { set: ActuatorValue }).set };
  return { hold: true };
}

export function desiredOf(spec: ActuatorSpec): ActuatorValue {
  return spec.desired as unknown as ActuatorValue;
}

/** Why `value` is outside spec.bounds (true/false count as 1/0), or undefined. */
export function boundsProblem(value: ActuatorValue, bounds: ActuatorSpec['bounds']): string | undefined {
  if (!bounds) return undefined;
  const numbers = Array.isArray(value) ? value : [typeof value === 'boolean' ? Number(value) : value];
  for (const [index, number] of numbers.entries()) {
    const which = Array.isArray(value) ? `value ${index} (${number})` : String(number);
    if (bounds.min !== undefined && number < bounds.min) return `${which} is below bounds.min ${bounds.min}`;
    if (bounds.max !== undefined && number > bounds.max) return `${which} is above bounds.max ${bounds.max}`;
    if (bounds.allowed && !bounds.allowed.includes(number)) return `${which} is not one of bounds.allowed (${bounds.allowed.join(', ')})`;
  }
  return undefined;
}

/** Checks of an Actuator's spec that its schema cannot express, its driver's included. */
export function actuatorSpecErrors(spec: ActuatorSpec): FieldError[] {
  const errors: FieldError[] = [];
  const declared: DeclaredValue[] = [];
  const desired = asValue(spec.desired as unknown, 'spec.desired', errors);
  if (desired !== undefined) declared.push({ path: 'spec.desired', value: desired });
  const onStop = spec.onStop as unknown;
  if (onStop !== undefined && onStop !== 'hold') {
    const isSet = onStop !== null && typeof onStop === 'object' && !Array.isArray(onStop) && Object.keys(onStop).length === 1 && 'set' in onStop;
    if (!isSet) errors.push({ path: 'spec.onStop', message: `must be hold or a mapping { set: VALUE } (got ${describe(onStop)})`, reason: 'InvalidSpec' });
    else {
      const failSafe = asValue((onStop as { set: unknown }).set, 'spec.onStop.set', errors);
      if (failSafe !== undefined) declared.push({ path: 'spec.onStop.set', value: failSafe });
    }
  }
  const bounds = spec.bounds;
  // A remote value is checked against spec.bounds alone: without bounds, anyone on the tenant's
  // connection could set anything the driver can write.
  if (spec.remote === true && (!bounds || (bounds.min === undefined && bounds.max === undefined && bounds.allowed === undefined))) {
    errors.push({ path: 'spec.bounds', message: 'spec.remote: true needs spec.bounds (min/max or allowed): a remote value is accepted only within them', reason: 'InvalidSpec' });
  }
  if (bounds?.min !== undefined && bounds.max !== undefined && bounds.min > bounds.max) {
    errors.push({ path: 'spec.bounds.min', message: `min ${bounds.min} is above max ${bounds.max}`, reason: 'InvalidSpec' });
  }
  for (const { path, value } of declared) {
    const problem = boundsProblem(value, bounds);
    if (problem) errors.push({ path, message: `${problem}: nothing outside spec.bounds is written`, reason: OUT_OF_BOUNDS });
  }
  for (const field of ['resyncInterval', 'timeout'] as const) {
    const value = spec[field];
    if (value !== undefined && parseDurationOrNaN(value) === 0) errors.push({ path: `spec.${field}`, message: `must be greater than 0 (got ${JSON.stringify(value)})`, reason: 'InvalidSpec' });
  }
  const [name] = Object.keys(spec.driver);
  const factory = name === undefined ? undefined : actuatorDriverFactory(name);
  const config = (spec.driver as Record<string, unknown>)[name];
  if (factory) {
    const source = spec.readBack?.source;
    if (source === 'device' && !factory.canReadBack(config)) {
      errors.push({ path: 'spec.readBack.source', message: `the ${name} driver cannot read its device back${name === 'serial' ? ' without a reply pattern with a `value` group' : ''}: use none or sensor`, reason: 'InvalidSpec' });
    }
    errors.push(...factory.validate(config, `spec.driver.${name}`, declared));
  }
  if (spec.readBack?.source === 'sensor' && !spec.readBack.sensorRef) errors.push({ path: 'spec.readBack.sensorRef', message: 'readBack source sensor needs a sensorRef', reason: 'InvalidSpec' });
  if (spec.readBack?.sensorRef && spec.readBack.source !== 'sensor') errors.push({ path: 'spec.readBack.sensorRef', message: 'a sensorRef is only read with source: sensor', reason: 'InvalidSpec' });
  return errors;
}

function parseDurationOrNaN(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    return Number.NaN; // reported by the schema checks
  }
}

/** Numbers only (a coil and a GPIO line take true/false too, as 1/0); the reason a list is refused. */
export function scalarValues(values: DeclaredValue[], driver: string): FieldError[] {
  return values
    .filter(({ value }) => Array.isArray(value))
    .map(({ path }) => ({ path, message: `the ${driver} driver writes one value, not a list (lists are for Modbus register blocks)`, reason: 'InvalidSpec' }));
}

export interface TextEncoding {
  scale?: number;
  offset?: number;
  decimals?: number;
}

/** The text a file, command or serial line carries for `value`: (value - offset) / scale, true/false as 1/0. */
export function renderValue(value: ActuatorValue, encoding: TextEncoding): string {
  if (typeof value === 'boolean') return value ? '1' : '0';
  const number = Array.isArray(value) ? value[0] : value;
  const raw = (number - (encoding.offset ?? 0)) / (encoding.scale ?? 1);
  if (encoding.decimals !== undefined) return raw.toFixed(encoding.decimals);
  // Twelve significant digits: (21.5 - 0) / 0.1 is 214.99999999999997 in binary floating point.
  return String(Number(raw.toPrecision(12)));
}

/** What the device's text `raw` means as a manifest value (the inverse of renderValue). */
export function textReadBack(raw: number, encoding: TextEncoding, asBoolean: boolean): { value: ActuatorValue; holds(desired: ActuatorValue): boolean } {
  const value = raw * (encoding.scale ?? 1) + (encoding.offset ?? 0);
  return {
    value: asBoolean ? raw !== 0 : Number(value.toPrecision(12)),
    holds: (desired) => Number(renderValue(desired, encoding)) === raw,
  };
}
