// Time is injected so schedulers and backoff can be unit-tested without waiting.
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
