// Runs one Actuator: the reconcile loop that closes the gap between spec.desired and what the
// device holds. Each pass reads the device back (when it can be read), writes only when the two
// differ, confirms the write by reading again, and then sleeps until the next drift check
// (spec.resyncInterval); a failed pass retries with capped exponential backoff. Writes are never
// closer together than spec.minWriteInterval, whatever caused them. On delete (and on a clean stop
// of the agent) spec.onStop.set is written as a fail-safe.
//
// Conditions: Ready (the driver runs, or why it cannot: a policy refusal names the flag) and InSync
// with reasons Written / AlreadySet (True), WriteFailed / ReadBackMismatch / DeviceGone (False).
import type { FieldError, StoredResource } from '../api/resource.js';
import { describeUntrusted } from '../api/untrusted.js';
import { SensorletError, messageOf, reasonOf } from '../api/errors.js';
import { parseDuration } from '../api/units.js';
import type { StatusStore } from '../controller/status.js';
import type { ConditionUpdate } from '../controller/conditions.js';
import { setBoundedTimeout, type Clock } from '../observability/clock.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { refusal, type DriverPolicy } from '../policy/policy.js';
import type { ActuatorDriver, ActuatorValue, ReadBack } from './actuator.js';
import { actuatorDriverFactory } from './registry.js';
import { asValue, boundsProblem, desiredOf, onStopOf } from './values.js';
import type { CommandOutcome, RemoteCommand } from '../sinks/transport.js';

export interface ActuatorRunnerDeps {
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  status: StatusStore;
  policy: DriverPolicy;
  /** The same shared map the Sensor drivers use: one Modbus link, one serial port per device. */
  shared: Map<string, unknown>;
  /** readBack source sensor: the last value of a Sensor in the Actuator's namespace, if it has one. */
  sensorValue(namespace: string, name: string): number | undefined;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
/** Error codes that mean the device could not be reached at all. */
const DEVICE_GONE = new Set(['DeviceGone', 'ConnectionRefused', 'ConnectionFailed', 'PortNotFound', 'PortBusy', 'Timeout']);

/** The InSync reason for a failed pass. */
export function inSyncReason(error: unknown): 'WriteFailed' | 'ReadBackMismatch' | 'DeviceGone' {
  const code = reasonOf(error, 'WriteFailed');
  if (code === 'ReadBackMismatch') return code;
  return DEVICE_GONE.has(code) ? 'DeviceGone' : 'WriteFailed';
}

function describeValue(value: ActuatorValue): string {
  return Array.isArray(value) ? `[${value.join(', ')}]` : String(value);
}

/** A remote value that replaces spec.desired until `expiresAt` (ms since the epoch). */
export interface RemoteOverride {
  value: ActuatorValue;
  source: string;
  expiresAt: number;
}

export class ActuatorRunner {
  readonly key: string;
  readonly generation: number;
  private driver: ActuatorDriver | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private stopped = false;
  private failures = 0;
  private writes = 0;
  private driftCorrections = 0;
  private lastWriteAt = -Infinity;
  /** The device held the desired value since the last failure: a difference found now is drift. */
  private held = false;
  /** spec.desired. */
  private readonly declared: ActuatorValue;
  /** A remote value (spec.remote) that replaces spec.desired until it expires. */
  private override: { value: ActuatorValue; source: string; expiresAt: number; timer: NodeJS.Timeout } | undefined;
  /** A pass is running; `kicked`: another one is wanted as soon as it ends (a remote value arrived). */
  private passing = false;
  private kicked = false;

  /** What the device should hold now: a remote value while it lasts, else spec.desired. */
  private get desired(): ActuatorValue {
    return this.override?.value ?? this.declared;
  }

  /** When this loop last wrote to the device (ms since the epoch; -Infinity when never). */
  get lastWrite(): number {
    return this.lastWriteAt;
  }
  private readonly minWriteMs: number;
  private readonly resyncMs: number;
  private readonly timeoutMs: number;
  private readonly readBackSource: 'device' | 'sensor' | 'none';
  private readonly logger: Logger;
  private readonly labels: { namespace: string; actuator: string };

  /**
   * `lastWriteAt`: when the generation this one replaces last wrote, so that a stream of spec changes
   * cannot write faster than spec.minWriteInterval either.
   */
  constructor(readonly resource: StoredResource<'Actuator'>, private readonly deps: ActuatorRunnerDeps, lastWriteAt = -Infinity) {
    this.lastWriteAt = lastWriteAt;
    this.key = resource.key;
    this.generation = resource.generation;
    const spec = resource.object!.spec;
    this.declared = desiredOf(spec);
    this.minWriteMs = parseDuration(spec.minWriteInterval ?? '1s');
    this.resyncMs = parseDuration(spec.resyncInterval ?? '30s');
    this.timeoutMs = parseDuration(spec.timeout ?? '2s');
    const [name] = Object.keys(spec.driver);
    const config = (spec.driver as Record<string, unknown>)[name];
    const canRead = actuatorDriverFactory(name)?.canReadBack(config) ?? false;
    this.readBackSource = spec.readBack?.source ?? (canRead ? 'device' : 'none');
    this.logger = deps.logger.child({ actuator: `${resource.namespace}/${resource.name}` });
    this.labels = { namespace: resource.namespace, actuator: resource.name };
  }

  start(): void {
    const name = this.driverName();
    const override = this.override && { value: this.override.value, source: this.override.source, expires: new Date(this.override.expiresAt).toISOString() };
    this.report({ type: 'InSync', status: 'Unknown', reason: 'Starting', message: `starting the ${name} driver` }, { driver: name, desired: this.desired, override });
    try {
      this.checkSchedule();
      this.createDriver();
    } catch (error) {
      // A refusal by the operator's policy (or a missing driver): nothing is written, and only the
      // operator or a new spec can change that.
      const reason = reasonOf(error, 'DriverFailed');
      const message = messageOf(error);
      this.logger.warn({ reason, err: message }, 'actuator cannot start');
      this.deps.metrics.errorsLogged.inc({ component: 'actuator', reason });
      this.report({ type: 'Ready', status: 'False', reason, message }, undefined, { type: 'InSync', status: 'False', reason, message: 'nothing is written' });
      if (!(error instanceof SensorletError && error.terminal)) this.schedule(this.backoff(++this.failures), () => this.start());
      return;
    }
    this.report({ type: 'Ready', status: 'True', reason: 'Running', message: `the ${name} driver is running` });
    this.schedule(0);
  }

  /**
   * Writes the fail-safe (spec.onStop.set) without running the loop: for an Actuator deleted while
   * its latest generation was invalid, whose last valid spec still says what is safe.
   */
  async writeFailSafe(): Promise<void> {
    this.stopped = true;
    try {
      this.createDriver();
    } catch (error) {
      this.deps.metrics.errorsLogged.inc({ component: 'actuator', reason: 'FailSafeNotWritten' });
      this.logger.error({ reason: reasonOf(error, 'DriverFailed'), err: messageOf(error) }, 'the fail-safe value (spec.onStop.set) could not be written');
      return;
    }
    this.stopped = false;
    await this.stop(true);
  }

  /**
   * The drift check reads the device every resyncInterval: as for a Sensor's interval, how often is
   * bounded by the operator (--min-interval, --min-timeout), so a manifest cannot keep a bus busy.
   */
  private checkSchedule(): void {
    const spec = this.resource.object!.spec;
    const policy = this.deps.policy;
    if (this.resyncMs < policy.minIntervalMs) {
      throw new SensorletError('IntervalTooShort', refusal(`spec.resyncInterval ${spec.resyncInterval} is shorter than this agent's minimum of ${policy.minIntervalMs}ms`, '--min-interval'), { terminal: true });
    }
    if (this.timeoutMs < policy.minTimeoutMs) {
      throw new SensorletError('TimeoutTooShort', refusal(`spec.timeout ${spec.timeout} is shorter than this agent's minimum of ${policy.minTimeoutMs}ms`, '--min-timeout'), { terminal: true });
    }
  }

  private driverName(): string {
    return Object.keys(this.resource.object!.spec.driver)[0];
  }

  private createDriver(): void {
    const spec = this.resource.object!.spec;
    const name = this.driverName();
    const config = (spec.driver as Record<string, unknown>)[name];
    const factory = actuatorDriverFactory(name);
    if (!factory) throw new SensorletError('DriverNotFound', `no actuator driver named ${name} is built in`, { terminal: true });
    // Writing changes a device: only the operator unlocks it, driver by driver.
    if (!this.deps.policy.actuatorDrivers.includes(name)) {
      throw new SensorletError('ActuatorDriverNotAllowed', refusal(`this agent does not let Actuators write with the ${name} driver`, `--allow-actuator-drivers ${name}`), { terminal: true });
    }
    this.driver = factory.create(config, {
      actuator: { namespace: this.resource.namespace, name: this.resource.name },
      spec,
      timeoutMs: this.timeoutMs,
      clock: this.deps.clock,
      logger: this.logger,
      policy: this.deps.policy,
      shared: this.deps.shared,
    });
  }

  /**
   * Stops the loop. With `failSafe` (the Actuator was deleted, or the agent stops cleanly) and
   * spec.onStop.set, writes the fail-safe value first, bounded by spec.timeout.
   */
  async stop(failSafe: boolean): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.override) clearTimeout(this.override.timer);
    this.stopController.abort(new SensorletError('Stopped', 'the Actuator is stopping'));
    await this.pass?.catch(() => undefined);
    const onStop = onStopOf(this.resource.object!.spec);
    if (failSafe && !onStop.hold && this.driver) {
      try {
        await this.bounded((signal) => this.driver!.write(onStop.value, signal), false);
        this.countWrite();
        this.logger.info({ value: describeValue(onStop.value) }, 'fail-safe value written (spec.onStop.set)');
      } catch (error) {
        this.deps.metrics.actuatorFailures.inc({ ...this.labels, reason: inSyncReason(error) });
        this.deps.metrics.errorsLogged.inc({ component: 'actuator', reason: 'FailSafeNotWritten' });
        this.logger.error({ reason: reasonOf(error, 'WriteFailed'), err: messageOf(error) }, 'the fail-safe value (spec.onStop.set) could not be written');
      }
    }
    await this.driver?.close().catch((error) => this.logger.warn({ err: messageOf(error) }, 'actuator driver close failed'));
  }

  private schedule(delayMs: number, run: () => void = () => this.runPass()): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setBoundedTimeout(run, delayMs);
  }

  /** Runs a pass now, or right after the one under way (passes never overlap). */
  private kick(): void {
    if (this.passing) this.kicked = true;
    else if (this.driver) this.schedule(0);
  }

  /** The delay `nextMs`, unless a kick asked for a pass at once. */
  private afterPass(nextMs: number): number {
    this.passing = false;
    const kicked = this.kicked;
    this.kicked = false;
    return kicked ? Math.max(0, this.lastWriteAt + this.minWriteMs - this.deps.clock.now()) : nextMs;
  }

  private runPass(): void {
    if (this.stopped) return;
    this.passing = true;
    this.pass = this.reconcileDevice().then(
      (nextMs) => this.schedule(this.afterPass(nextMs)),
      (error) => {
        const kicked = this.kicked;
        this.afterPass(0);
        if (this.stopped) return;
        this.held = false;
        this.failures++;
        const reason = inSyncReason(error);
        const code = reasonOf(error, reason);
        const message = `${code === reason ? '' : `${code}: `}${messageOf(error)}`;
        this.deps.metrics.actuatorFailures.inc({ ...this.labels, reason });
        this.deps.metrics.errorsLogged.inc({ component: 'actuator', reason });
        this.logger.warn({ reason, code, err: messageOf(error) }, 'actuator not in sync; retrying with backoff');
        this.report({ type: 'InSync', status: 'False', reason, message: `${message} (retrying)` });
        const rateLimit = this.lastWriteAt + this.minWriteMs - this.deps.clock.now();
        this.schedule(Math.max(kicked ? 0 : this.backoff(this.failures), rateLimit));
      },
    );
  }

  /** One pass: read back, write when needed, confirm. Resolves with the delay until the next pass. */
  private async reconcileDevice(): Promise<number> {
    const driver = this.driver!;
    const desired = this.desired;
    let seen: ReadBack | undefined;
    if (this.readBackSource === 'device' && driver.read) seen = await this.bounded((signal) => driver.read!(signal));
    if (this.readBackSource === 'sensor') seen = this.sensorReadBack();
    if (seen) {
      this.report(undefined, { observed: seen.value });
      if (seen.holds(desired)) {
        this.failures = 0;
        this.held = true;
        const reason = this.writes > 0 ? 'Written' : 'AlreadySet';
        this.report({ type: 'InSync', status: 'True', reason, message: `the device holds ${describeValue(desired)}` });
        return this.resyncMs;
      }
    } else if (this.held && this.readBackSource === 'sensor') {
      // The Sensor has no reading (yet): nothing to compare, keep what was written.
      return this.resyncMs;
    }
    // Past this point without a read-back (command, serial): the drift check writes the value again.
    const wait = this.lastWriteAt + this.minWriteMs - this.deps.clock.now();
    if (wait > 0) return wait; // spec.minWriteInterval: the next pass writes
    const drift = this.held && seen !== undefined;
    const reply = await this.bounded((signal) => driver.write(desired, signal));
    this.countWrite();
    let confirmed = reply;
    if (this.readBackSource === 'device' && driver.read) confirmed = await this.bounded((signal) => driver.read!(signal));
    if (confirmed) {
      this.report(undefined, { observed: confirmed.value });
      if (!confirmed.holds(desired)) {
        throw new SensorletError('ReadBackMismatch', `wrote ${describeValue(desired)}, but the device holds ${describeValue(confirmed.value)}`);
      }
    }
    if (drift) {
      this.driftCorrections++;
      this.deps.metrics.actuatorDriftCorrections.inc(this.labels);
      this.logger.info({ observed: seen ? describeValue(seen.value) : undefined, desired: describeValue(desired) }, 'the device drifted from the desired value; written again');
    }
    this.failures = 0;
    this.held = true;
    this.report({ type: 'InSync', status: 'True', reason: 'Written', message: `wrote ${describeValue(desired)}${confirmed ? ', read back the same' : ''}` }, { driftCorrections: this.driftCorrections });
    return this.resyncMs;
  }

  /**
   * A remote desired value (a Sink's mqtt.commands): accepted only when spec.remote allows it, the
   * connection's tenant is spec.tenant, and the value is one this Actuator could declare (its
   * driver's shape, spec.bounds). It replaces spec.desired until it expires (spec.remoteMaxDuration
   * at most), then spec.desired applies again. The payload is a value, or {"value": V, "for": "5m"}.
   */
  remoteSet(command: RemoteCommand, source: string): CommandOutcome {
    const spec = this.resource.object!.spec;
    const refuse = (reason: string, message: string): CommandOutcome => ({ accepted: false, reason, message });
    if (spec.remote !== true) return refuse('RemoteNotAllowed', 'this Actuator does not take remote values (spec.remote is not true)');
    if (command.tenant === undefined) return refuse('TenantMismatch', 'the command came over a connection without a tenant (no client certificate)');
    if (command.tenant !== spec.tenant) return refuse('TenantMismatch', `the connection's tenant is not this Actuator's (spec.tenant)`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(command.payload.toString('utf8'));
    } catch {
      return refuse('InvalidCommand', `${describeUntrusted(command.payload)} that are not JSON: send a value, or {"value": V, "for": "5m"}`);
    }
    let value = parsed;
    let duration: unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const fields = parsed as Record<string, unknown>;
      if (Object.keys(fields).some((key) => key !== 'value' && key !== 'for')) return refuse('InvalidCommand', 'a command holds value and for only');
      value = fields.value;
      duration = fields.for;
    }
    const problems: FieldError[] = [];
    const candidate = asValue(value, 'value', problems);
    if (candidate === undefined) return refuse('InvalidCommand', problems.map((problem) => problem.message).join('; '));
    const problem = this.remoteValueProblem(candidate);
    if (problem) return refuse(problem.reason, problem.message);
    const maxMs = parseDuration(spec.remoteMaxDuration ?? '15m');
    let forMs = maxMs;
    if (duration !== undefined) {
      try {
        forMs = Math.min(maxMs, parseDuration(String(duration)));
      } catch {
        return refuse('InvalidCommand', 'for is not a duration (like 30s or 5m)');
      }
      if (!(forMs > 0)) return refuse('InvalidCommand', 'for must be longer than 0');
    }
    if (this.override) clearTimeout(this.override.timer);
    const expiresAt = this.deps.clock.now() + forMs;
    const timer = setBoundedTimeout(() => this.endOverride(), forMs);
    this.override = { value: candidate, source, expiresAt, timer };
    const expires = new Date(expiresAt).toISOString();
    // A new target is not drift: the device is expected to differ until it is written.
    this.held = false;
    this.report(undefined, { override: { value: candidate, source, expires } });
    this.kick();
    return { accepted: true, reason: 'Accepted', message: `${describeValue(candidate)} replaces spec.desired until ${expires}`, expires };
  }

  /** Why `candidate` may not replace spec.desired: the driver's shape, spec.bounds. */
  private remoteValueProblem(candidate: ActuatorValue): { reason: 'InvalidCommand' | 'OutOfBounds'; message: string } | undefined {
    const spec = this.resource.object!.spec;
    const [name] = Object.keys(spec.driver);
    const config = (spec.driver as Record<string, unknown>)[name];
    const declared = [{ path: 'spec.desired', value: this.declared }, { path: 'value', value: candidate }];
    const problems = (actuatorDriverFactory(name)?.validate(config, `spec.driver.${name}`, declared) ?? []).filter((problem) => problem.path.startsWith('value'));
    if (problems.length > 0) return { reason: 'InvalidCommand', message: problems.map((problem) => problem.message).join('; ') };
    const outside = boundsProblem(candidate, spec.bounds);
    return outside ? { reason: 'OutOfBounds', message: outside } : undefined;
  }

  /** The remote value in force, if any: a new generation of this Actuator may keep it (adoptOverride). */
  get remoteOverride(): RemoteOverride | undefined {
    return this.override && { value: this.override.value, source: this.override.source, expiresAt: this.override.expiresAt };
  }

  /**
   * Keeps the remote value the previous generation accepted, until the same expiry, when this spec
   * still takes remote values and the value is still one it could accept (its bounds, its driver);
   * otherwise drops it, logged and counted (sensorlet_actuator_remote_commands_total, result
   * dropped). Called before start().
   */
  adoptOverride(previous: RemoteOverride): void {
    const left = previous.expiresAt - this.deps.clock.now();
    if (left <= 0) return;
    const problem = this.resource.object!.spec.remote !== true ? { reason: 'RemoteNotAllowed', message: 'spec.remote is no longer true' } : this.remoteValueProblem(previous.value);
    if (problem) {
      this.deps.metrics.actuatorRemoteCommands.inc({ ...this.labels, result: 'dropped', reason: problem.reason });
      this.logger.warn({ reason: problem.reason, value: describeValue(previous.value), source: previous.source, err: problem.message }, 'the remote value does not fit the changed spec; dropped, spec.desired applies');
      return;
    }
    this.override = { ...previous, timer: setTimeout(() => this.endOverride(), left) };
  }

  private endOverride(): void {
    if (!this.override || this.stopped) return;
    this.logger.info({ value: describeValue(this.override.value), source: this.override.source }, 'the remote value expired; spec.desired applies again');
    this.override = undefined;
    this.held = false;
    this.report(undefined, { override: undefined });
    this.kick();
  }

  private sensorReadBack(): ReadBack | undefined {
    const { sensorRef, tolerance = 0 } = this.resource.object!.spec.readBack ?? {};
    const value = sensorRef ? this.deps.sensorValue(this.resource.namespace, sensorRef.name) : undefined;
    if (value === undefined) return undefined;
    return { value, holds: (desired) => Math.abs(value - Number(Array.isArray(desired) ? desired[0] : desired)) <= tolerance };
  }

  private countWrite(): void {
    this.writes++;
    this.lastWriteAt = this.deps.clock.now();
    this.deps.metrics.actuatorWrites.inc(this.labels);
    this.report(undefined, { writes: this.writes, lastWriteTime: new Date(this.lastWriteAt).toISOString() });
  }

  /** One driver call bounded by spec.timeout (and, while running, by stop()). */
  private async bounded<T>(call: (signal: AbortSignal) => Promise<T>, abortOnStop = true): Promise<T> {
    const controller = new AbortController();
    const timer = setBoundedTimeout(() => controller.abort(new SensorletError('Timeout', `no answer within ${this.resource.object!.spec.timeout ?? '2s'}`)), this.timeoutMs);
    const onStop = () => controller.abort(this.stopController.signal.reason);
    if (abortOnStop) this.stopController.signal.addEventListener('abort', onStop, { once: true });
    try {
      return await call(controller.signal);
    } finally {
      clearTimeout(timer);
      this.stopController.signal.removeEventListener('abort', onStop);
    }
  }

  private backoff(failures: number): number {
    return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
  }

  private report(condition?: ConditionUpdate, facts?: Record<string, unknown>, second?: ConditionUpdate): void {
    if (this.stopped && condition) return;
    const conditions = [condition, second].filter((each): each is ConditionUpdate => each !== undefined);
    this.deps.status.update(this.key, {
      observedGeneration: this.generation,
      conditions: conditions.map((each) => ({ ...each, observedGeneration: this.generation })),
      facts: { writes: this.writes, driftCorrections: this.driftCorrections, ...facts },
    });
  }
}
