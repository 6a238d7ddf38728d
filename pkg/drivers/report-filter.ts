// Report by exception: the runner asks this filter, built from spec.report, whether a sample is
// worth sending (it moved past the deadband, or the heartbeat is due).
import type { Sample } from '../api/reading.js';
import type { StoredResource } from '../api/resource.js';
import { systemClock } from '../observability/clock.js';
import { createReportPolicy } from './report-policy.js';

export function createReportFilter(resource: StoredResource<'Sensor'>): ((sample: Sample, now: number) => boolean) | undefined {
  const report = resource.object?.spec.report;
  if (!report) return undefined;
  const policy = createReportPolicy(report, systemClock);
  return (sample, now) => policy.admit(sample, now);
}
