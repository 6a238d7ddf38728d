// The coordinator's view of the running agent: drain the sink outboxes, judge health.
import type { Runtime } from '../controller/runtime.js';
import { matchesNodeSelector } from '../router/selector.js';
import type { DataPath, HealthRequirement } from './coordinator.js';

function conditionTrue(runtime: Runtime, key: string, type: string): boolean {
  return runtime.status.get(key)?.conditions.some((condition) => condition.type === type && condition.status === 'True') ?? false;
}

export function runtimeDataPath(runtime: Runtime, pollMs = 100): DataPath {
  const queued = () => [...runtime.sinks.values()].flatMap((runner) => runner.outboxes()).reduce((sum, outbox) => sum + outbox.stats().readings, 0);
  return {
    async drain(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      // Seal the open chunks so that everything read so far is durable and can be sent now.
      await Promise.all([...runtime.sinks.values()].flatMap((runner) => runner.outboxes()).map((outbox) => outbox.flush()));
      let left = queued();
      while (left > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
        // Readings taken meanwhile are sealed too, so they are sent (or kept) like the rest.
        await Promise.all([...runtime.sinks.values()].flatMap((runner) => runner.outboxes()).map((outbox) => outbox.flush()));
        left = queued();
      }
      return { queued: left };
    },
    health(require: readonly HealthRequirement[]) {
      const problems: string[] = [];
      if (require.includes('sinksConnected')) {
        for (const sink of runtime.store.list('Sink')) {
          if (!conditionTrue(runtime, sink.key, 'Connected')) problems.push(`${sink.key} not Connected`);
        }
      }
      if (require.includes('sensorsReady')) {
        for (const sensor of runtime.store.list('Sensor')) {
          const spec = sensor.object?.spec as { nodeSelector?: Record<string, string> } | undefined;
          if (spec && !matchesNodeSelector(spec.nodeSelector, runtime.nodeLabels())) continue;
          if (!conditionTrue(runtime, sensor.key, 'Ready')) problems.push(`${sensor.key} not Ready`);
        }
      }
      return { healthy: problems.length === 0, problems };
    },
  };
}
