// Real DriverContexts and stream recorders for driver tests (no mocks of the driver under test).
import type { Sample } from '../../pkg/api/reading.js';
import type { SensorSpec } from '../../pkg/api/resource.js';
import { reasonOf } from '../../pkg/api/errors.js';
import type { DriverContext, DriverPolicy, StreamHandlers } from '../../pkg/drivers/driver.js';
import { systemClock } from '../../pkg/observability/clock.js';
import { silentLogger } from '../../pkg/observability/logger.js';
import { waitFor } from './ports.js';
import { defaultPolicy } from '../../pkg/policy/policy.js';

export function driverContext(options: {
  name?: string;
  spec?: Partial<SensorSpec>;
  intervalMs?: number;
  timeoutMs?: number;
  policy?: Partial<DriverPolicy>;
  shared?: Map<string, unknown>;
} = {}): DriverContext {
  return {
    sensor: { namespace: 'default', name: options.name ?? 'probe' },
    spec: { driver: {}, ...options.spec } as SensorSpec,
    intervalMs: options.intervalMs ?? 1_000,
    timeoutMs: options.timeoutMs ?? 1_000,
    clock: systemClock,
    logger: silentLogger(),
    // The tests' serial lines are socat pseudo-terminals, which the operator allows here.
    policy: { ...defaultPolicy().drivers, serialAllowPrefixes: [...defaultPolicy().drivers.serialAllowPrefixes, '/dev/pts/'], ...options.policy },
    shared: options.shared ?? new Map(),
  };
}

export type StreamEvent = { kind: 'emit'; samples: Sample[] } | { kind: 'fail'; reason: string; message: string } | { kind: 'recovered' };

/** Records what a streaming driver reports, with helpers to wait for the next event of a kind. */
export class StreamRecorder implements StreamHandlers {
  readonly events: StreamEvent[] = [];

  emit(samples: Sample[]): void {
    this.events.push({ kind: 'emit', samples });
  }
  fail(error: unknown): void {
    this.events.push({ kind: 'fail', reason: reasonOf(error), message: (error as Error).message });
  }
  recovered(): void {
    this.events.push({ kind: 'recovered' });
  }

  get samples(): Sample[] {
    return this.events.flatMap((event) => (event.kind === 'emit' ? event.samples : []));
  }

  reasons(): string[] {
    return this.events.flatMap((event) => (event.kind === 'fail' ? [event.reason] : []));
  }

  /** Index to pass to `waitFor*` so only later events count. */
  mark(): number {
    return this.events.length;
  }

  async waitForFail(reason: string, since = 0, timeoutMs = 5_000): Promise<void> {
    await waitFor(() => this.events.slice(since).some((event) => event.kind === 'fail' && event.reason === reason), {
      timeoutMs,
      what: `fail(${reason}); saw ${JSON.stringify(this.events.slice(since).map((event) => (event.kind === 'fail' ? event.reason : event.kind)))}`,
    });
  }

  async waitForRecovered(since = 0, timeoutMs = 5_000): Promise<void> {
    await waitFor(() => this.events.slice(since).some((event) => event.kind === 'recovered'), { timeoutMs, what: 'recovered()' });
  }

  async waitForSample(predicate: (sample: Sample) => boolean, since = 0, timeoutMs = 5_000): Promise<Sample> {
    return waitFor(
      () => this.events.slice(since).flatMap((event) => (event.kind === 'emit' ? event.samples : [])).find(predicate),
      { timeoutMs, what: 'a matching sample' },
    );
  }
}
