// How often the fleet machinery writes and how long it waits. The defaults are the contract (README,
// "Fleet status"): a report at most every 10 s, a heartbeat Lease renewed every 10 s, client-go's
// leader election timings (lease 15 s, renew deadline 10 s, retry 2 s) with the leader renewing every
// 5 s (a third of the lease, as the kubelet renews its node Lease at a quarter of its duration) and
// retrying every retry period only after a failed renewal, Unknown after 40 s without a heartbeat
// (the kubelet's node-monitor grace period).
//
// Tests and benchmarks shorten them through SENSORLET_TEST_FLEET_TIMINGS (JSON, milliseconds), so
// that failover and stale detection are exercised in seconds. It is not a product setting: no flag
// or Helm value sets it, and the agent logs a warning when it is present.

export interface FleetTimings {
  /** At most one NodeReport write per interval; changes in between are coalesced into the next. */
  reportIntervalMs: number;
  /** Heartbeat Lease renewal period. */
  heartbeatIntervalMs: number;
  /** A node whose heartbeat was not renewed for this long is Unknown. */
  nodeGraceMs: number;
  /** Leader election (client-go): how long a candidate waits on a held lease before taking it over. */
  leaseDurationMs: number;
  /** Leader election: the leader steps down when it could not renew for this long. */
  renewDeadlineMs: number;
  /** Leader election: the period of a candidate's acquire attempts, and of the leader's retries after a failed renewal. */
  retryPeriodMs: number;
  /** Leader election: the leader renews this long after its last successful renewal (shorter than the renew deadline). */
  leaderRenewIntervalMs: number;
  /** How often the leader folds reports and checks heartbeats (writes only what changed). */
  rollupIntervalMs: number;
  /** How often the leader compares every resource's stored status with its roll-up and writes those that differ. */
  rewriteIntervalMs: number;
}

export const DEFAULT_FLEET_TIMINGS: FleetTimings = {
  reportIntervalMs: 10_000,
  heartbeatIntervalMs: 10_000,
  nodeGraceMs: 40_000,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  leaderRenewIntervalMs: 5_000,
  rollupIntervalMs: 1_000,
  rewriteIntervalMs: 10 * 60_000,
};

export const TEST_TIMINGS_ENV = 'SENSORLET_TEST_FLEET_TIMINGS';

/** The defaults, with the test override applied when the environment carries one. */
export function fleetTimings(env: NodeJS.ProcessEnv = process.env): { timings: FleetTimings; overridden: boolean } {
  const text = env[TEST_TIMINGS_ENV];
  if (!text) return { timings: { ...DEFAULT_FLEET_TIMINGS }, overridden: false };
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const timings = { ...DEFAULT_FLEET_TIMINGS };
  for (const [key, value] of Object.entries(parsed)) {
    if (!(key in DEFAULT_FLEET_TIMINGS) || typeof value !== 'number' || !(value > 0)) throw new Error(`${TEST_TIMINGS_ENV}: ${key} must be one of ${Object.keys(DEFAULT_FLEET_TIMINGS).join(', ')} with a positive number of milliseconds`);
    timings[key as keyof FleetTimings] = value;
  }
  // A test that shortens the lease without naming the renew interval gets the same proportion.
  if (!('leaderRenewIntervalMs' in parsed)) timings.leaderRenewIntervalMs = Math.round(timings.leaseDurationMs / 3);
  if (timings.leaderRenewIntervalMs >= timings.renewDeadlineMs || timings.renewDeadlineMs >= timings.leaseDurationMs) {
    throw new Error(`${TEST_TIMINGS_ENV}: leaderRenewIntervalMs < renewDeadlineMs < leaseDurationMs must hold`);
  }
  return { timings, overridden: true };
}
