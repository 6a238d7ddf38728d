// Actuator drivers register themselves by the key they own under an Actuator's `spec.driver`.
import type { ActuatorDriverFactory } from './actuator.js';

const factories = new Map<string, ActuatorDriverFactory>();

export function registerActuatorDriver(factory: ActuatorDriverFactory<any>): void {
  if (factories.has(factory.name)) throw new Error(`actuator driver ${factory.name} registered twice`);
  factories.set(factory.name, factory);
}

export function actuatorDriverFactory(name: string): ActuatorDriverFactory | undefined {
  return factories.get(name);
}
