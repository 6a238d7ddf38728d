// The actuator driver plugin contract. A driver writes a value to its device and, when it can, reads
// back what the device holds. The runner (runner.ts) owns the reconcile loop: when to write, the
// rate limit, read-back, drift checks, backoff, conditions and the fail-safe on stop, so a driver
// only talks to its device. Drivers share buses and ports with the Sensor drivers through `shared`.
import type { ActuatorSpec, FieldError } from '../api/resource.js';
import type { Clock } from '../observability/clock.js';
import type { Logger } from '../observability/logger.js';
import type { DriverPolicy } from '../policy/policy.js';

/** What an Actuator sets: a number, a bit (coil, GPIO line), or consecutive register values. */
export type ActuatorValue = number | boolean | number[];

/** What the device was seen to hold. */
export interface ReadBack {
  /** The value as the manifest writes it (scale and offset applied), for status. */
  value: ActuatorValue;
  /** Whether this is what writing `desired` leaves on the device (compared as the device stores it). */
  holds(desired: ActuatorValue): boolean;
}

export interface ActuatorContext {
  actuator: { namespace: string; name: string };
  spec: ActuatorSpec;
  timeoutMs: number;
  clock: Clock;
  logger: Logger;
  policy: DriverPolicy;
  /** The agent's shared objects: the same Modbus links and serial ports the Sensor drivers use. */
  shared: Map<string, unknown>;
}

export interface ActuatorDriver {
  /**
   * Writes `value`; resolves once the device accepted it. A driver whose device answers the write
   * (a serial reply) returns what the answer says it now holds. Must settle soon after `signal` aborts.
   */
  write(value: ActuatorValue, signal: AbortSignal): Promise<ReadBack | undefined>;
  /** Reads what the device holds now; absent when the device cannot be read back. */
  read?(signal: AbortSignal): Promise<ReadBack>;
  close(): Promise<void>;
}

/** A value a manifest asks to be written, with where it was declared (spec.desired, spec.onStop.set). */
export interface DeclaredValue {
  path: string;
  value: ActuatorValue;
}

export interface ActuatorDriverFactory<Config = unknown> {
  /** The key under the Actuator's `spec.driver` that selects this driver. */
  name: string;
  /** True when `read` exists for this config, so that readBack defaults to the device. */
  canReadBack(config: Config): boolean;
  /** Which values this driver can write (a coil takes true/false...), and checks the schema cannot express. */
  validate(config: Config, path: string, values: DeclaredValue[]): FieldError[];
  create(config: Config, context: ActuatorContext): ActuatorDriver;
}
