// Report by exception (spec.report): a sample is sent when its value moved by more than the deadband
// since the last sample sent, and at least once per heartbeat even when nothing moved. Without
// `onChange` every sample is sent. Comparisons are against the last *sent* value, so a slow drift
// is reported once it adds up to more than the deadband.
import type { Sample } from '../api/reading.js';
import type { SensorSpec } from '../api/resource.js';
import { parseDuration } from '../api/units.js';
import type { Clock } from '../observability/clock.js';

export type ReportSpec = NonNullable<SensorSpec['report']>;

export interface ReportPolicy {
  /** Whether to send `sample`; records it as sent when true. `now` defaults to the policy's clock. */
  admit(sample: Sample, now?: number): boolean;
}

export function createReportPolicy(report: ReportSpec | undefined, clock: Clock): ReportPolicy {
  const onChange = report?.onChange;
  if (!onChange) return { admit: () => true };
  const deadband = onChange.deadband ?? 0;
  const heartbeatMs = report?.heartbeat ? parseDuration(report.heartbeat) : undefined;
  let last: { sample: Sample; at: number } | undefined;

  const moved = (previous: number | undefined, current: number | undefined): boolean => {
    if (previous === undefined || current === undefined) return previous !== current;
    if (Number.isNaN(previous) || Number.isNaN(current)) return !(Number.isNaN(previous) && Number.isNaN(current));
    return Math.abs(current - previous) > deadband;
  };

  const changed = (previous: Sample, current: Sample): boolean => {
    if ((previous.quality ?? 'good') !== (current.quality ?? 'good')) return true;
    if (moved(previous.value, current.value)) return true;
    const names = new Set([...Object.keys(previous.values ?? {}), ...Object.keys(current.values ?? {})]);
    for (const name of names) if (moved(previous.values?.[name], current.values?.[name])) return true;
    return false;
  };

  return {
    admit(sample, now = clock.now()) {
      const due = last === undefined || changed(last.sample, sample) || (heartbeatMs !== undefined && now - last.at >= heartbeatMs);
      if (due) last = { sample, at: now };
      return due;
    },
  };
}
