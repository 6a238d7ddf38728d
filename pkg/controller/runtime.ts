// What the reconcilers act on: the running Sensors and Sinks, the loaded Certificates, and the
// services they share. The reconcilers are the only writers of these maps.
import type { StoredResource } from '../api/resource.js';
import type { SensorRunner, SensorRunnerDeps } from '../drivers/runner.js';
import type { ActuatorRunner, ActuatorRunnerDeps } from '../actuators/runner.js';
import type { SinkRunner, SinkRunnerDeps } from '../sinks/runner.js';
import type { ConnectionIdentity } from '../sinks/transport.js';
import type { Router } from '../router/router.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ResourceStore } from './store.js';
import type { StatusStore } from './status.js';
import type { OtaHost } from '../ota/host.js';
import type { OperatorPolicy } from '../policy/policy.js';
import type { Reading } from '../api/reading.js';

/** A Certificate as the sinks see it: the identity to connect with, once it has loaded. */
export interface CertificateState {
  key: string;
  generation: number;
  identity?: ConnectionIdentity;
  labels: Record<string, string>;
}

export interface Runtime {
  device: string;
  /** The operator's policy: what manifests may not unlock (pkg/policy). */
  policy: OperatorPolicy;
  store: ResourceStore;
  status: StatusStore;
  router: Router;
  logger: Logger;
  metrics: Metrics;
  sensors: Map<string, SensorRunner>;
  /** Keeps each Sensor's recent values for the web console's sparklines (pkg/console/history.ts). */
  readingHistory?: { record(sensorKey: string, readings: readonly Reading[]): void };
  sinks: Map<string, SinkRunner>;
  actuators: Map<string, ActuatorRunner>;
  certificates: Map<string, CertificateState>;
  sensorDeps: Omit<SensorRunnerDeps, 'emit'>;
  sinkDeps: Omit<SinkRunnerDeps, 'onFullChange'>;
  actuatorDeps: Omit<ActuatorRunnerDeps, 'sensorValue'>;
  /** Labels of this agent's node (cluster mode); a Sensor runs only where its nodeSelector matches. */
  nodeLabels(): Record<string, string>;
  /** Cluster mode: the Secrets that Certificates may reference (`spec.secretRef`), in `namespaces` only. */
  secrets?: { namespaces: readonly string[]; get(namespace: string, name: string): { type: string; data: Record<string, Buffer> } | undefined };
  /** Firmware updates: where their state lives, and (standalone) how the agent updates itself. */
  ota?: OtaHost;
  /** Schedules a reconcile of a key (e.g. Sinks that use a Certificate that changed). */
  enqueue(key: string): void;
}

/** One message naming every field error, for a condition. */
export function invalidMessage(resource: StoredResource): string {
  return resource.errors.map((error) => (error.path ? `${error.path}: ${error.message}` : error.message)).join('; ');
}
