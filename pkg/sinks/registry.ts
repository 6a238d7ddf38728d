// Sink transports register themselves by the key they own in Sink.spec.
import type { SinkSpec } from '../api/resource.js';
import type { TransportFactory } from './transport.js';

const factories = new Map<string, TransportFactory>();

export function registerTransport(factory: TransportFactory<any>): void {
  if (factories.has(factory.name)) throw new Error(`sink transport ${factory.name} registered twice`);
  factories.set(factory.name, factory);
}

export function transportFactories(): TransportFactory[] {
  return [...factories.values()];
}

/** The transport a Sink selects (the schema enforces exactly one). */
export function selectedTransport(spec: SinkSpec): { factory: TransportFactory; config: unknown } {
  for (const factory of factories.values()) {
    const config = (spec as Record<string, unknown>)[factory.name];
    if (config !== undefined) return { factory, config };
  }
  throw new Error('Sink.spec selects no registered transport');
}
