// Drivers register themselves by the key they own under `spec.driver`.
import type { DriverFactory } from './driver.js';

const factories = new Map<string, DriverFactory>();

export function registerDriver(factory: DriverFactory<any>): void {
  if (factories.has(factory.name)) throw new Error(`driver ${factory.name} registered twice`);
  factories.set(factory.name, factory);
}

export function driverFactory(name: string): DriverFactory | undefined {
  return factories.get(name);
}

/** The driver a spec selects: the single key of `spec.driver` (the schema enforces exactly one). */
export function selectedDriver(driver: Record<string, unknown>): { name: string; config: unknown } {
  const [name] = Object.keys(driver);
  return { name, config: driver[name] };
}
