// Sensor reconciler: makes the running driver match the declared Sensor. A spec change (new
// generation) restarts the driver; a label change only re-routes; an invalid spec stops it.
import { SensorRunner } from '../../drivers/runner.js';
import { matchesNodeSelector } from '../../router/selector.js';
import type { ReconcileResult } from '../workqueue.js';
import { invalidMessage, type Runtime } from '../runtime.js';

export function createSensorReconciler(runtime: Runtime) {
  const stopRunner = async (key: string) => {
    const runner = runtime.sensors.get(key);
    if (!runner) return;
    runtime.sensors.delete(key);
    await runner.stop();
  };

  return async function reconcileSensor(key: string): Promise<ReconcileResult> {
    const resource = runtime.store.get<'Sensor'>(key);
    if (!resource) {
      await stopRunner(key);
      runtime.router.removeSensor(key);
      runtime.status.delete(key);
      return {};
    }
    if (resource.errors.length > 0 || !resource.object) {
      await stopRunner(key);
      runtime.router.removeSensor(key);
      const reason = resource.errors[0]?.reason ?? 'InvalidSpec';
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason, message: invalidMessage(resource) }],
        removeConditions: ['Degraded', 'Routed', 'Backpressure', 'StorageFull', 'SequenceRecovered'],
      });
      return {};
    }
    if (!matchesNodeSelector(resource.object.spec.nodeSelector, runtime.nodeLabels())) {
      // Not for this node: this agent does not act on it, so it has no status entry either.
      await stopRunner(key);
      runtime.router.removeSensor(key);
      runtime.status.delete(key);
      return {};
    }
    runtime.router.setSensor(key, resource.namespace, resource.labels);
    const running = runtime.sensors.get(key);
    if (running && running.generation === resource.generation) return {};
    await stopRunner(key);
    const router = runtime.router;
    const runner = new SensorRunner(resource, {
      ...runtime.sensorDeps,
      emit: (sensorKey, readings) => {
        runtime.readingHistory?.record(sensorKey, readings);
        router.route(sensorKey, readings);
      },
      room: (sensorKey, tenant, count) => router.room(sensorKey, tenant, count),
      shed: (sensorKey, tenant, count) => router.shed(sensorKey, tenant, count),
    });
    runtime.sensors.set(key, runner);
    runner.start();
    return {};
  };
}
