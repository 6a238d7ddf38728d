// Time is injected so schedulers and backoff can be unit-tested without waiting.
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The longest delay a Node timer honours: beyond it, setTimeout warns and fires after 1 ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * setTimeout for delays that come from manifests, devices or certificates. The delay is clamped to
 * [0, MAX_TIMER_DELAY_MS] (NaN counts as 0): a longer one fires early, at about 24.8 days, never
 * after 1 ms. Validation bounds every manifest Duration below that, so clamping only ever shortens
 * waits that are recomputed when they fire (a reconcile's requeue, a certificate's renewal date).
 */
export function setBoundedTimeout(callback: () => void, delayMs: number): NodeJS.Timeout {
  return setTimeout(callback, boundedDelay(delayMs));
}

export function boundedDelay(delayMs: number): number {
  if (!(delayMs > 0)) return 0;
  return Math.min(delayMs, MAX_TIMER_DELAY_MS);
}
