// The in-memory form of a declared resource, whatever source it came from.
import type { Actuator, Certificate, Firmware, Sensor, Sink } from './types.generated.js';
import type { Kind } from './schemas.js';

export type { Actuator, Certificate, Firmware, Sensor, Sink } from './types.generated.js';
export type SensorSpec = Sensor['spec'];
export type SinkSpec = Sink['spec'];
export type CertificateSpec = Certificate['spec'];
export type FirmwareSpec = Firmware['spec'];
export type ActuatorSpec = Actuator['spec'];
export type LabelSelector = NonNullable<SinkSpec['selector']>;

export const DEFAULT_NAMESPACE = 'default';

/** Where a resource was declared: a file and line in folder mode, the API server in cluster mode. */
export interface Origin {
  file?: string;
  line?: number;
}

/** A validation or semantic error, located well enough for `validate` and for a condition message. */
export interface FieldError {
  /** Dotted path inside the object, e.g. `spec.driver.simulated.period`; empty for the document. */
  path: string;
  message: string;
  /** Condition reason; InvalidSpec unless more specific (CertificateNotFound, DuplicateName...). */
  reason: string;
  line?: number;
}

export interface ResourceRef {
  kind: Kind;
  namespace: string;
  name: string;
}

export interface StoredResource<K extends Kind = Kind> extends ResourceRef {
  kind: K;
  key: string;
  generation: number;
  labels: Record<string, string>;
  /** The validated object with defaults applied; undefined when `errors` is not empty. */
  object: ObjectOf<K> | undefined;
  /** The raw object as declared, used to detect spec changes. */
  raw: Record<string, unknown>;
  origin: Origin;
  errors: FieldError[];
}

export type ObjectOf<K extends Kind> = K extends 'Sensor' ? Sensor : K extends 'Sink' ? Sink : K extends 'Certificate' ? Certificate : K extends 'Firmware' ? Firmware : Actuator;

export function resourceKey(ref: { kind: string; namespace?: string; name: string }): string {
  return `${ref.kind}/${ref.namespace ?? DEFAULT_NAMESPACE}/${ref.name}`;
}

export function parseKey(key: string): ResourceRef {
  const [kind, namespace, name] = key.split('/');
  return { kind: kind as Kind, namespace, name };
}

export function displayName(ref: { kind: string; name: string }): string {
  return `${ref.kind}/${ref.name}`;
}
