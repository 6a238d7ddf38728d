// Small concurrency helpers for drivers that share one device (a serial port, an RTU bus, a TCP
// connection): requests must not interleave, and a caller's abort must not leave the queue stuck.
import { SensorletError } from '../api/errors.js';

/** Runs tasks one at a time, in call order. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    // The queue continues whatever the task's outcome.
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** The error a read returns when the runner aborts it (spec.timeout). */
export function abortError(signal: AbortSignal, what: string): SensorletError {
  const reason = signal.reason;
  if (reason instanceof SensorletError) return reason;
  return new SensorletError('Timeout', `${what}: no answer before the read was aborted`, { cause: reason });
}

/** Settles with `promise`, or rejects with Timeout as soon as `signal` aborts. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortError(signal, what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Capped exponential backoff: base, 2×base, 4×base… up to max. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
}
