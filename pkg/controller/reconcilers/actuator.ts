// Actuator reconciler: makes the running actuator loop match the declared Actuator. A spec change
// (new generation) replaces the loop, which keeps the device's value until the new one writes its
// own (and keeps an accepted remote value that the new spec still allows); a deleted Actuator (or one no longer for this node) writes its fail-safe (spec.onStop.set)
// and stops; an invalid spec stops the loop and is reported (a value outside spec.bounds:
// OutOfBounds), and nothing is written: the device holds its value, and the last valid spec's
// fail-safe still applies when the Actuator is deleted. On a clean stop of the agent every
// Actuator writes its fail-safe.
import { ActuatorRunner } from '../../actuators/runner.js';
import { matchesNodeSelector } from '../../router/selector.js';
import { resourceKey, type StoredResource } from '../../api/resource.js';
import type { ReconcileResult, StoppableReconcile } from '../workqueue.js';
import { invalidMessage, type Runtime } from '../runtime.js';

/** The most time a clean stop spends on fail-safe writes: SIGTERM must end the agent within seconds. */
const FAIL_SAFE_GRACE_MS = 1500;

export function createActuatorReconciler(runtime: Runtime): StoppableReconcile {
  /** The last valid generation of Actuators whose current one is invalid: their fail-safe still applies. */
  const retired = new Map<string, StoredResource<'Actuator'>>();
  const stopRunner = async (key: string, failSafe: boolean) => {
    const runner = runtime.actuators.get(key);
    const previous = retired.get(key);
    retired.delete(key);
    if (!runner) {
      if (failSafe && previous) await new ActuatorRunner(previous, deps).writeFailSafe();
      return;
    }
    runtime.actuators.delete(key);
    await runner.stop(failSafe);
  };
  const deps = {
    ...runtime.actuatorDeps,
    sensorValue: (namespace: string, name: string) => {
      const reading = runtime.status.get(resourceKey({ kind: 'Sensor', namespace, name }))?.facts.lastReading as { value?: unknown } | undefined;
      return typeof reading?.value === 'number' ? reading.value : undefined;
    },
  };

  const reconcile = async function reconcileActuator(key: string): Promise<ReconcileResult> {
    const resource = runtime.store.get<'Actuator'>(key);
    if (!resource) {
      await stopRunner(key, true);
      runtime.status.delete(key);
      return {};
    }
    if (resource.errors.length > 0 || !resource.object) {
      const lastValid = runtime.actuators.get(key)?.resource ?? retired.get(key);
      await stopRunner(key, false);
      if (lastValid) retired.set(key, lastValid);
      const reason = resource.errors[0]?.reason ?? 'InvalidSpec';
      const message = invalidMessage(resource);
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [
          { type: 'Ready', status: 'False', reason, message },
          { type: 'InSync', status: 'False', reason, message: `nothing is written: ${message}` },
        ],
      });
      return {};
    }
    if (!matchesNodeSelector(resource.object.spec.nodeSelector, runtime.nodeLabels())) {
      await stopRunner(key, true);
      runtime.status.delete(key);
      return {};
    }
    const running = runtime.actuators.get(key);
    if (running && running.generation === resource.generation) return {};
    await stopRunner(key, false);
    const runner = new ActuatorRunner(resource, deps, running?.lastWrite);
    // An accepted remote value outlives a spec change that still allows it (adoptOverride decides).
    const override = running?.remoteOverride;
    if (override) runner.adoptOverride(override);
    runtime.actuators.set(key, runner);
    runner.start();
    return {};
  };
  return Object.assign(reconcile, {
    async stop() {
      const stopping = [
        ...[...runtime.actuators.values()].map((runner) => runner.stop(true)),
        ...[...retired.values()].map((resource) => new ActuatorRunner(resource, deps).writeFailSafe()),
      ];
      runtime.actuators.clear();
      retired.clear();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, FAIL_SAFE_GRACE_MS)));
      await Promise.race([Promise.all(stopping.map((each) => each.catch(() => undefined))), late]);
      clearTimeout(timer);
    },
  });
}
