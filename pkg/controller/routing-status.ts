// The Routed condition of every Sensor: which Sinks take its readings, and, when a selected Sink has
// no connection for the Sensor's tenant, TenantMismatch naming that Sink. Recomputed whenever the
// routing table changes.
import type { Runtime } from './runtime.js';

export function updateRoutedConditions(runtime: Runtime): void {
  for (const [key, runner] of runtime.sensors) {
    const resource = runtime.store.get<'Sensor'>(key);
    if (!resource?.object) continue;
    const tenant = resource.object.spec.tenant;
    const targets = runtime.router.targetsOf(key);
    const problems: string[] = [];
    const routed: string[] = [];
    for (const target of targets) {
      const sink = runtime.sinks.get(target.key);
      if (!sink) continue;
      const { problem } = sink.laneFor(tenant);
      if (problem) problems.push(problem);
      else routed.push(target.key.split('/')[2]);
    }
    const condition = problems.length
      ? { type: 'Routed', status: 'False' as const, reason: 'TenantMismatch', message: problems.join('; ') }
      : routed.length
        ? { type: 'Routed', status: 'True' as const, reason: 'Routed', message: `readings go to ${routed.join(', ')}` }
        : { type: 'Routed', status: 'False' as const, reason: 'NoMatchingSink', message: 'no Sink selects this Sensor; its readings are not kept' };
    runtime.status.update(runner.key, { conditions: [condition] });
  }
}
