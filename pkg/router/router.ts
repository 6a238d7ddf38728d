// Sends each reading to every Sink whose selector matches its Sensor (in the Sensor's namespace).
// The sensor → sinks fan-out is cached and rebuilt whenever a Sensor's labels or a Sink change.
import type { Reading } from '../api/reading.js';
import type { LabelSelector } from '../api/resource.js';
import { matchesSelector } from './selector.js';

export interface RouteTarget {
  key: string;
  namespace: string;
  selector: LabelSelector | undefined;
  /** Queues readings; returns nothing: the target owns limits and delivery. */
  accept(sensorKey: string, readings: Reading[]): void;
  /** How many of `count` new readings of this Sensor accept() would keep now (all, unless it refuses the newest). */
  room?(sensorKey: string, tenant: string | undefined, count: number): number;
  /** Readings of this Sensor never made because no target had room: counted as refused on arrival. */
  shed?(sensorKey: string, tenant: string | undefined, count: number): void;
}

interface SensorEntry {
  namespace: string;
  labels: Record<string, string>;
}

export class Router {
  private readonly sensors = new Map<string, SensorEntry>();
  private readonly targets = new Map<string, RouteTarget>();
  private routes = new Map<string, RouteTarget[]>();
  private readonly listeners: (() => void)[] = [];

  /** `onUnrouted` hears of readings no Sink takes (none selects their Sensor): dropped, but counted. */
  constructor(private readonly onUnrouted?: (sensorKey: string, count: number) => void) {}

  /** Called after any change of the routing table (to re-evaluate tenants, backpressure...). */
  onRoutesChanged(listener: () => void): void {
    this.listeners.push(listener);
  }

  setSensor(key: string, namespace: string, labels: Record<string, string>): void {
    // A resync reconciles every Sensor again with the labels it had: rebuilding every route (and
    // every Routed condition) for each of them would make one resync cost O(sensors²).
    const current = this.sensors.get(key);
    if (current && current.namespace === namespace && sameLabels(current.labels, labels)) return;
    this.sensors.set(key, { namespace, labels });
    this.invalidate();
  }

  removeSensor(key: string): void {
    if (this.sensors.delete(key)) this.invalidate();
  }

  setTarget(target: RouteTarget): void {
    this.targets.set(target.key, target);
    this.invalidate();
  }

  removeTarget(key: string): void {
    if (this.targets.delete(key)) this.invalidate();
  }

  targetsOf(sensorKey: string): RouteTarget[] {
    let targets = this.routes.get(sensorKey);
    if (!targets) {
      const sensor = this.sensors.get(sensorKey);
      targets = sensor
        ? [...this.targets.values()].filter((target) => target.namespace === sensor.namespace && matchesSelector(target.selector, sensor.labels))
        : [];
      this.routes.set(sensorKey, targets);
    }
    return targets;
  }

  sensorsOf(targetKey: string): string[] {
    return [...this.sensors.keys()].filter((sensorKey) => this.targetsOf(sensorKey).some((target) => target.key === targetKey));
  }

  route(sensorKey: string, readings: Reading[]): void {
    const targets = this.targetsOf(sensorKey);
    if (targets.length === 0) {
      this.onUnrouted?.(sensorKey, readings.length);
      return;
    }
    for (const target of targets) target.accept(sensorKey, readings);
  }

  /**
   * How many of `count` new readings of a Sensor at least one target would keep: the most any
   * target has room for. A Sensor no target selects keeps them all (they are counted as unrouted).
   */
  room(sensorKey: string, tenant: string | undefined, count: number): number {
    const targets = this.targetsOf(sensorKey);
    if (targets.length === 0) return count;
    let most = 0;
    for (const target of targets) {
      most = Math.max(most, target.room ? target.room(sensorKey, tenant, count) : count);
      if (most >= count) return count;
    }
    return most;
  }

  /** Readings the Sensor did not make because room() said no target keeps them: each target counts them. */
  shed(sensorKey: string, tenant: string | undefined, count: number): void {
    for (const target of this.targetsOf(sensorKey)) target.shed?.(sensorKey, tenant, count);
  }

  private invalidate(): void {
    this.routes = new Map();
    for (const listener of this.listeners) listener();
  }
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => b[key] === a[key]);
}
