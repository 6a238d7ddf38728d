// The driver plugin contract. A driver either answers polls (`read`) on the Sensor's interval, or
// pushes samples as the device streams them (`stream`). The runner (pkg/drivers/runner.ts) owns
// scheduling, timeouts, backoff and conditions, so a driver only talks to its device.
import type { FieldError, SensorSpec } from '../api/resource.js';
import type { Sample } from '../api/reading.js';
import type { Logger } from '../observability/logger.js';
import type { Clock } from '../observability/clock.js';

import type { DriverPolicy } from '../policy/policy.js';

/** Agent-wide driver settings that a manifest cannot change (e.g. whether commands may run). */
export type { DriverPolicy };

export interface DriverContext {
  sensor: { namespace: string; name: string };
  spec: SensorSpec;
  intervalMs: number;
  timeoutMs: number;
  clock: Clock;
  logger: Logger;
  policy: DriverPolicy;
  /** Per-agent objects drivers share, e.g. one open serial port for several Sensors. */
  shared: Map<string, unknown>;
}

export interface StreamHandlers {
  emit(samples: Sample[]): void;
  /** The device failed (reason from the error's code); the runner marks the Sensor Degraded. */
  fail(error: unknown): void;
  /** The device is healthy again after a failure. */
  recovered(): void;
}

export interface Driver {
  /** One poll; must settle soon after `signal` aborts (the runner aborts it at spec.timeout). */
  read?(signal: AbortSignal): Promise<Sample[]>;
  /** Streaming drivers start here and call the handlers until close(). */
  stream?(handlers: StreamHandlers): void;
  close(): Promise<void>;
  /** Optional counters for metrics and status, e.g. `{ badFrames: 3 }`; monotonic. */
  stats?(): Record<string, number>;
}

export interface DriverFactory<Config = unknown> {
  /** The key under `spec.driver` that selects this driver. */
  name: string;
  /** Checks the schema cannot express (regexes compile, offsets fit...). `path` is e.g. `spec.driver.serial`. */
  validate?(config: Config, path: string): FieldError[];
  create(config: Config, context: DriverContext): Driver;
  /**
   * The most samples one read returns for this config (1 when absent). With spec.interval it gives
   * the readings per second the operator's cap (--max-readings-per-second) is checked against
   * before the driver is created.
   */
  samplesPerRead?(config: Config): number;
}
