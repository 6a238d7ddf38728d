// The `coap` sink transport: delivers outbox chunks as confirmable CoAP requests over UDP
// (coap://), or over TCP / mutual TLS (coap+tcp://, coaps+tcp://, RFC 8323).
//
// Delivery rules, which the outbox relies on:
//   2.xx               → acknowledged; send() resolves.
//   4.xx               → permanent: counted per code (permanentFailures()), logged, reported, and
//                        resolved so the readings leave the outbox instead of blocking it forever.
//   5.xx, timeouts,    → send() rejects; the outbox keeps the chunk and sends it again later
//   refused, TLS...      (at-least-once: requests already acknowledged may arrive twice).
import { sinkTlsOptions } from '../tls.js';
import type tls from 'node:tls';
import type { Reading } from '../../api/reading.js';
import { describeUntrusted } from '../../api/untrusted.js';
import type { Transport, TransportContext, TransportFactory } from '../transport.js';
import { registerTransport } from '../registry.js';
import { codeClass, codeString } from './codec.js';
import { expandPath, resolveCoapConfig, validateCoapConfig, type CoapSinkConfig, type ResolvedCoapConfig } from './config.js';
import { CoapTransportError, type CoapResponse } from './exchange.js';
import { planRequests, type PlannedRequest } from './requests.js';
import { StreamCoapClient } from './stream-client.js';
import { UdpCoapClient, maxTransmitWaitMs } from './udp-client.js';

/** A 5.xx (or other non-2.xx, non-4.xx) answer: the server is there but cannot take it now. */
export class CoapServerError extends Error {
  readonly code = 'ServerError';
  constructor(readonly responseCode: string, message: string) {
    super(message);
  }
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

export class CoapTransport implements Transport {
  /** CoAP requests succeed or fail one by one: one batch at a time keeps delivery in order. */
  readonly maxInFlightBatches = 1;
  readonly config: ResolvedCoapConfig;
  private readonly permanent: Record<string, number> = {};
  private udp: UdpCoapClient | undefined;
  private stream: StreamCoapClient | undefined;
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = RECONNECT_MIN_MS;
  private lastState: { connected: boolean; reason?: string } | undefined;
  private closed = false;

  constructor(config: CoapSinkConfig, private readonly context: TransportContext) {
    this.config = resolveCoapConfig(config);
  }

  start(): void {
    if (this.config.scheme === 'coap') {
      // UDP has no connection: "connected" is learned from the first exchange.
      this.udp = new UdpCoapClient(this.config.host, this.config.port, this.config);
      return;
    }
    void this.connectStream().catch(() => undefined);
  }

  async send(readings: Reading[]): Promise<void> {
    if (this.closed) throw new CoapTransportError('Closed', 'CoAP transport closed');
    const connectionTenant = this.context.identity.tenant;
    const plan = planRequests(readings, {
      method: this.config.method,
      format: this.config.payload,
      maxMessageSize: this.stream ? Math.min(this.config.maxMessageSize, this.stream.peerMaxMessageSize) : this.config.maxMessageSize,
      // The lane has already dropped readings of other tenants (pkg/sinks/lane.ts).
      pathOf: (reading) => expandPath(this.config.path, reading, connectionTenant),
    });
    for (const { reason, message, readings: dropped } of plan.unsendable) this.dropPermanently(reason, message, dropped);
    if (plan.requests.length === 0) return;

    if (this.udp) {
      // NSTART = 1 (RFC 7252 section 4.7): one outstanding request per server, in order.
      for (const planned of plan.requests) this.judge(planned, await this.exchangeUdp(planned));
      return;
    }
    const stream = await this.connectedStream();
    // A TCP stream is ordered and reliable: pipeline the whole chunk, then judge every answer.
    const outcomes = await Promise.allSettled(plan.requests.map((planned) => stream.request(planned.request)));
    let failure: unknown;
    outcomes.forEach((outcome, index) => {
      if (outcome.status === 'rejected') failure ??= outcome.reason;
      else {
        try {
          this.judge(plan.requests[index], outcome.value);
        } catch (error) {
          failure ??= error;
        }
      }
    });
    if (failure) throw failure;
  }

  permanentFailures(): Record<string, number> {
    return { ...this.permanent };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    await this.udp?.close();
    await this.stream?.close();
    this.stream = undefined;
  }

  private async exchangeUdp(planned: PlannedRequest): Promise<CoapResponse> {
    try {
      const response = await this.udp!.request(planned.request);
      this.setState({ connected: true });
      return response;
    } catch (error) {
      const reason = (error as CoapTransportError).code ?? 'ConnectionFailed';
      this.setState({ connected: false, reason, message: (error as Error).message });
      throw error;
    }
  }

  /** Resolves for 2.xx, counts and resolves for 4.xx, throws (retryable) for anything else. */
  private judge(planned: PlannedRequest, response: CoapResponse): void {
    const code = codeString(response.code);
    const klass = codeClass(response.code);
    if (klass === 2) return;
    // The payload is the peer's bytes, and a Sink may point at any service: counted, never quoted.
    const detail = response.payload.length > 0 ? ` (diagnostic payload of ${describeUntrusted(response.payload)})` : '';
    if (klass === 4) {
      this.dropPermanently(code, `server answered ${code}${detail} for ${this.describe(planned)}`, planned.readings);
      return;
    }
    throw new CoapServerError(code, `server answered ${code}${detail} for ${this.describe(planned)}; will retry`);
  }

  private dropPermanently(reason: string, message: string, readings: Reading[]): void {
    this.permanent[reason] = (this.permanent[reason] ?? 0) + readings.length;
    const total = Object.values(this.permanent).reduce((sum, count) => sum + count, 0);
    this.context.logger.warn(
      { reason, dropped: readings.length, first: readings[0] && { sensor: readings[0].sensor, seq: readings[0].seq }, permanentFailures: this.permanent },
      `coap: ${readings.length} reading(s) dropped for good: ${message}`,
    );
    // Still connected; the reason makes the drop visible on the Sink's status.
    this.context.onState({ connected: true, reason: 'ReadingsRejected', message: `${total} reading(s) rejected for good so far; last: ${message}` });
    this.lastState = { connected: true, reason: 'ReadingsRejected' };
  }

  private describe(planned: PlannedRequest): string {
    const first = planned.readings[0];
    return `${planned.readings.length} reading(s) of ${first.device}/${first.sensor} from seq ${first.seq}`;
  }

  private setState(state: { connected: boolean; reason?: string; message?: string }): void {
    const last = this.lastState;
    if (last && last.connected === state.connected && last.reason === state.reason) return;
    this.lastState = { connected: state.connected, reason: state.reason };
    this.context.onState(state);
  }

  private async connectedStream(): Promise<StreamCoapClient> {
    if (this.stream) return this.stream;
    // Not connected: fail fast so the outbox backs off; a reconnect runs in the background.
    await this.connectStream();
    if (!this.stream) throw new CoapTransportError('NotConnected', `not connected to ${this.config.scheme}://${this.config.host}:${this.config.port}`);
    return this.stream;
  }

  private connectStream(): Promise<void> {
    if (this.closed) return Promise.resolve();
    clearTimeout(this.reconnectTimer);
    this.connecting ??= (async () => {
      const { host, port, scheme } = this.config;
      try {
        const client = await StreamCoapClient.connect({
          host,
          port,
          tls: scheme === 'coaps+tcp' ? this.tlsOptions() : undefined,
          timeoutMs: maxTransmitWaitMs(this.config),
          pingIntervalMs: this.config.pingIntervalMs,
          onClose: (error) => {
            if (this.stream !== client) return;
            this.stream = undefined;
            this.setState({ connected: false, reason: error.code, message: error.message });
            this.scheduleReconnect();
          },
        });
        if (this.closed) {
          await client.close();
          return;
        }
        this.stream = client;
        this.reconnectDelayMs = RECONNECT_MIN_MS;
        this.setState({ connected: true });
      } catch (error) {
        const reason = (error as CoapTransportError).code ?? 'ConnectionFailed';
        this.context.logger.debug({ err: error }, 'coap: connect failed');
        this.setState({ connected: false, reason, message: (error as Error).message });
        this.scheduleReconnect();
        throw error;
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    clearTimeout(this.reconnectTimer);
    // Capped exponential backoff with jitter, so a fleet does not reconnect in step.
    const delay = this.reconnectDelayMs * (0.5 + Math.random() / 2);
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, RECONNECT_MAX_MS);
    this.reconnectTimer = setTimeout(() => void this.connectStream().catch(() => undefined), delay);
    this.reconnectTimer.unref();
  }

  /** The Certificate's key slot plus the Sink's TLS settings (shared with the MQTT sink). */
  private tlsOptions(): tls.ConnectionOptions {
    if (!this.context.identity.keySlot) throw new CoapTransportError('CertificateMissing', 'coaps+tcp:// needs a client certificate (spec.tls)');
    return sinkTlsOptions(this.context);
  }

}

export const coapTransportFactory: TransportFactory<CoapSinkConfig> = {
  name: 'coap',
  validate: validateCoapConfig,
  create: (config, context) => new CoapTransport(config, context),
};

registerTransport(coapTransportFactory);
