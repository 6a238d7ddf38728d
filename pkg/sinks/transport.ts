// The sink transport contract. A transport owns one connection (one tenant identity) and delivers
// batches handed out by the outbox; it resolves only when the far end acknowledged every reading,
// because the outbox deletes exactly what a resolved send() covered.
import type { FieldError, SinkSpec } from '../api/resource.js';
import type { Reading } from '../api/reading.js';
import type { Logger } from '../observability/logger.js';
import type { KeySlot } from '../pki/key-slot.js';

/** The identity of one connection: from a Certificate's SAN, or anonymous for plain transports. */
export interface ConnectionIdentity {
  /** Tenant and device as named by the certificate; undefined for an anonymous connection. */
  tenant?: string;
  device: string;
  /** The key slot of a mutual-TLS identity: builds node:tls options (cert, key or an engine context). */
  keySlot?: KeySlot;
  /** The Certificate resource that gave this identity, for messages. */
  certificate?: string;
  /** SHA-256 of the client certificate: a new one means the connection must be re-established. */
  fingerprint?: string;
  /**
   * Set while the Certificate behind this connection has not loaded (expired, bad password...):
   * the connection does not dial, its readings wait in the outbox, and it is re-established once
   * the Certificate loads. The tenant is unknown until then.
   */
  waiting?: { reason: string; message: string };
}

export interface ConnectionState {
  connected: boolean;
  /** CamelCase reason when not connected: ConnectionRefused, TlsHandshakeFailed, NotAuthorized... */
  reason?: string;
  message?: string;
}

/** What a transport logs in with, resolved from the spec's `…From` references. Never shown anywhere. */
export interface Credentials {
  username?: string;
  password?: string;
}

/** A remote desired value received on a connection (mqtt.commands); everything in it is untrusted. */
export interface RemoteCommand {
  /** The {actuator} level of the command topic. */
  actuator: string;
  payload: Buffer;
  /** The tenant of the connection it arrived on (its certificate's); undefined when anonymous. */
  tenant?: string;
  /**
   * Set when the transport refused the command before reading it (TooLarge, Busy, RateLimited):
   * the agent counts and logs it like any other refusal, and no Actuator sees it.
   */
  refused?: CommandOutcome;
}

/** What became of a remote command: published back on the reply topic, counted and logged. */
export interface CommandOutcome {
  accepted: boolean;
  /** Accepted, or why not: RemoteNotAllowed, TenantMismatch, OutOfBounds, InvalidCommand, ActuatorNotFound, TooLarge, Busy, RateLimited... */
  reason: string;
  message: string;
  /** Accepted: when the override ends and spec.desired applies again (RFC 3339). */
  expires?: string;
}

/** The most readings one send() gets: the Sink's `batch.maxReadings` (the schema's default when absent). */
export function batchReadings(spec: SinkSpec): number {
  return spec.batch?.maxReadings ?? 500;
}

export interface TransportContext {
  sink: { namespace: string; name: string };
  spec: SinkSpec;
  identity: ConnectionIdentity;
  credentials?: Credentials;
  logger: Logger;
  onState(state: ConnectionState): void;
  /**
   * The far end handed this connection's client identity to another client (MQTT: a second
   * connection with the same client id), so the two keep closing each other: counted and shown.
   */
  onTakeover?(): void;
  /** Remote desired values (Sink mqtt.commands): applied by the agent, answered by the transport. */
  onCommand?(command: RemoteCommand): Promise<CommandOutcome>;
}

export interface Transport {
  /**
   * How many batches may be on the wire at once (default 4). A transport whose requests can fail
   * independently of each other (CoAP: one request 5.xx, the next 2.xx) must say 1, or a failed
   * batch would be retried after a later one was delivered, and order would be lost.
   */
  readonly maxInFlightBatches?: number;
  /** Connects in the background and reconnects by itself with capped backoff. */
  start(): void;
  /** Delivers the readings in order; resolves once all were acknowledged, rejects otherwise. */
  send(readings: Reading[]): Promise<void>;
  close(): Promise<void>;
  /**
   * Readings the far end refused for good (e.g. CoAP 4.xx), which send() resolved for so they leave
   * the outbox instead of blocking it forever: the count per response code or reason since start,
   * e.g. `{ "4.04": 12, "InvalidPath": 1 }`. Optional: transports that never drop leave it out.
   */
  permanentFailures?(): Record<string, number>;
}

export interface TransportFactory<Config = unknown> {
  /** The key in Sink.spec that selects this transport (`mqtt`, `stdout`, `coap`). */
  name: string;
  validate?(config: Config, path: string, spec: SinkSpec): FieldError[];
  create(config: Config, context: TransportContext): Transport;
}
