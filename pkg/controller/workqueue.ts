// A workqueue in the controller-runtime model: keys, not objects; a key is never processed by two
// workers at once; a key added while it is being processed is processed again afterwards; failures
// are retried with capped exponential backoff; `requeueAfter` schedules a later pass.
// Reconciles that finish without I/O chain as microtasks: a full resync of thousands of keys would
// hold the event loop (and the admin API's /healthz) for its whole duration. After SLICE_MS of
// uninterrupted work the queue lets the event loop turn before it takes the next key.

/** The longest the queue keeps the event loop busy before it yields. */
const SLICE_MS = 10;

export interface ReconcileResult {
  requeueAfter?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult>;

export interface WorkQueueOptions {
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  onResult?: (key: string, outcome: { error?: unknown; durationMs: number; retryInMs?: number }) => void;
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
    this.drain();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
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

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
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
      const key = this.queue.shift()!;
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
