// A workqueue in the controller-runtime model: keys, not objects; a key is never processed by two
// workers at once; a key added while it is being processed is processed again afterwards; failures
// are retried with capped exponential backoff; `requeueAfter` schedules a later pass.
// Reconciles that finish without I/O chain as microtasks: a full resync of thousands of keys would
// hold the event loop (and the admin API's /healthz) for its whole duration. After SLICE_MS of
// uninterrupted work the queue lets the event loop turn before it takes the next key.
import { setBoundedTimeout } from '../observability/clock.js';

/** The longest the queue keeps the event loop busy before it yields. */
const SLICE_MS = 10;

export interface ReconcileResult {
  requeueAfter?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult>;

/** A reconciler that owns background work (an OTA download) which shutdown must end. */
export type StoppableReconcile = Reconcile & { stop?(): Promise<void> };

export interface WorkQueueOptions {
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onResult?: (key: string, outcome: { error?: unknown; durationMs: number; retryInMs?: number }) => void;
  /**
   * Dependency order between keys: a key does not start while a key of a lower rank is queued or
   * being processed (a Sensor waits for the Sink that arrived with it, so its first reading has an
   * outbox to go to). Keys of the same rank run side by side.
   */
  rank?: (key: string) => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly idleWaiters: (() => void)[] = [];
  private active = 0;
  /** How many keys of each rank are queued or being processed (with `rank` only). */
  private readonly pendingByRank = new Map<number, number>();
  private stopped = false;
  /** When the current run of work without an event-loop turn began; cleared by the next turn. */
  private sliceStartedAt: number | undefined;
  private drainScheduled = false;
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly reconcile: Reconcile, private readonly options: WorkQueueOptions = {}) {
    this.concurrency = options.concurrency ?? 2;
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
  }

  add(key: string): void {
    if (this.stopped) return;
    this.cancelTimer(key);
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.countRank(key, 1);
    this.drain();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setBoundedTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, timer);
  }

  /** The delay before the next retry of a key that failed `failures` times in a row. */
  backoffFor(failures: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.max(0, failures - 1));
  }

  /** Resolves once nothing is queued or running (tests and shutdown). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Takes no new keys and drops the queued ones; resolves when the reconciles already running have
   * finished, or after `graceMs`, whichever comes first (a reconcile stuck on I/O must not hold
   * shutdown).
   */
  async stop(graceMs = 0): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const key of this.queue) this.countRank(key, -1);
    this.queue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    if (this.active === 0 || graceMs <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.whenIdle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** The first queued key no lower-ranked key is waiting for or running ahead of; -1 if none. */
  private nextRunnable(): number {
    const rank = this.options.rank;
    if (!rank) return 0;
    let lowest = Infinity;
    for (const [value, count] of this.pendingByRank) if (count > 0 && value < lowest) lowest = value;
    return this.queue.findIndex((key) => rank(key) <= lowest);
  }

  private countRank(key: string, delta: number): void {
    if (!this.options.rank) return;
    const value = this.options.rank(key);
    this.pendingByRank.set(value, (this.pendingByRank.get(value) ?? 0) + delta);
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.active === 0;
  }

  private cancelTimer(key: string): void {
    const timer = this.timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(key);
    }
  }

  private drain(): void {
    while (!this.stopped && this.active < this.concurrency && this.queue.length > 0) {
      const index = this.nextRunnable();
      if (index < 0) break; // what is queued waits for keys of a lower rank to finish
      const [key] = this.queue.splice(index, 1);
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      void this.run(key);
    }
    if (this.isIdle()) this.idleWaiters.splice(0).forEach((resolve) => resolve());
  }

  private async run(key: string): Promise<void> {
    const started = performance.now();
    let retryInMs: number | undefined;
    let error: unknown;
    try {
      const result = await this.reconcile(key);
      this.failures.delete(key);
      retryInMs = result.requeueAfter;
    } catch (caught) {
      error = caught;
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      retryInMs = this.backoffFor(failures);
    }
    this.options.onResult?.(key, { error, durationMs: performance.now() - started, retryInMs });
    this.processing.delete(key);
    this.countRank(key, -1);
    this.active--;
    if (this.dirty.delete(key)) this.requeue(key);
    else if (retryInMs !== undefined) this.addAfter(key, retryInMs);
    this.drainOrYield();
  }

  /** add() without draining: the caller drains (or yields) next. */
  private requeue(key: string): void {
    if (this.stopped || this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
  }

  private drainOrYield(): void {
    if (!this.sliceExhausted()) return this.drain();
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /** True once this run of work has kept the event loop busy for SLICE_MS without a turn. */
  private sliceExhausted(): boolean {
    const now = performance.now();
    if (this.sliceStartedAt === undefined) {
      this.sliceStartedAt = now;
      // Runs at the next turn of the event loop, which is what ends a slice.
      setImmediate(() => (this.sliceStartedAt = undefined));
      return false;
    }
    return now - this.sliceStartedAt >= SLICE_MS;
  }
}
