// CoAP over UDP (RFC 7252): confirmable requests with exponential-backoff retransmission,
// piggybacked and separate responses, duplicate detection.
//
// Own exchange layer rather than the `coap` package's Agent: that Agent takes ACK_TIMEOUT,
// ACK_RANDOM_FACTOR and MAX_RETRANSMIT from process-wide settings (`coap.updateTiming`), and each
// Sink must have its own. The socket is connected, so an ICMP port-unreachable surfaces as
// ECONNREFUSED at once instead of after MAX_TRANSMIT_WAIT.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import { Code, MessageType, codeClass, decodeDatagram, encodeDatagram, type CoapMessage } from './codec.js';
import { CoapTransportError, TokenSource, type CoapRequest, type CoapResponse } from './exchange.js';
import { setBoundedTimeout } from '../../observability/clock.js';

export interface RetransmissionTiming {
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
}

/** RFC 7252 section 4.8.2: the longest a sender keeps retransmitting one confirmable message. */
export function maxTransmitSpanMs(timing: RetransmissionTiming): number {
  return timing.ackTimeoutMs * (2 ** timing.maxRetransmit - 1) * timing.ackRandomFactor;
}

/** RFC 7252 section 4.8.2 MAX_TRANSMIT_WAIT: how long to wait for any response. */
export function maxTransmitWaitMs(timing: RetransmissionTiming): number {
  return timing.ackTimeoutMs * (2 ** (timing.maxRetransmit + 1) - 1) * timing.ackRandomFactor;
}

export interface UdpClientStats {
  requests: number;
  retransmissions: number;
  /** ACKs/responses for exchanges already completed (or never ours): ignored. */
  duplicateAcks: number;
  /** Retransmitted separate (CON) responses: acknowledged again, not processed again. */
  duplicateResponses: number;
}

interface Exchange {
  messageId: number;
  token: Buffer;
  datagram: Buffer;
  attempts: number;
  timeoutMs: number;
  timer?: NodeJS.Timeout;
  /** An empty ACK came: stop retransmitting, wait for the separate response. */
  acknowledged: boolean;
  resolve(response: CoapResponse): void;
  reject(error: Error): void;
}

const RECENT_ID_LIMIT = 512;

export class UdpCoapClient {
  readonly stats: UdpClientStats = { requests: 0, retransmissions: 0, duplicateAcks: 0, duplicateResponses: 0 };
  private socket: dgram.Socket | undefined;
  private opening: Promise<dgram.Socket> | undefined;
  private nextMessageId = randomInt(0, 0x10000);
  private readonly tokens = new TokenSource();
  private readonly byMessageId = new Map<number, Exchange>();
  private readonly byToken = new Map<string, Exchange>();
  /** Message IDs of separate responses already handled, to spot their retransmissions. */
  private readonly recentResponseIds = new Set<number>();

  constructor(private readonly host: string, private readonly port: number, private readonly timing: RetransmissionTiming) {}

  request(request: CoapRequest): Promise<CoapResponse> {
    return this.open().then(
      (socket) =>
        new Promise<CoapResponse>((resolve, reject) => {
          const messageId = this.allocateMessageId();
          const token = this.tokens.next();
          const datagram = encodeDatagram({ type: MessageType.Confirmable, code: request.code, messageId, token, options: request.options, payload: request.payload });
          const { ackTimeoutMs, ackRandomFactor } = this.timing;
          const exchange: Exchange = {
            messageId,
            token,
            datagram,
            attempts: 0,
            // RFC 7252 section 4.2: initial timeout random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR].
            timeoutMs: ackTimeoutMs * (1 + Math.random() * (ackRandomFactor - 1)),
            acknowledged: false,
            resolve,
            reject,
          };
          this.byMessageId.set(messageId, exchange);
          this.byToken.set(token.toString('hex'), exchange);
          this.stats.requests++;
          this.transmit(socket, exchange);
        }),
    );
  }

  /** Fails every outstanding request and closes the socket. */
  async close(): Promise<void> {
    this.failAll(new CoapTransportError('Closed', 'CoAP client closed'));
    const socket = this.socket;
    this.socket = undefined;
    this.opening = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private open(): Promise<dgram.Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    this.opening ??= new Promise<dgram.Socket>((resolve, reject) => {
      const socket = dgram.createSocket(isIP(this.host) === 6 ? 'udp6' : 'udp4');
      socket.on('message', (datagram) => this.onDatagram(socket, datagram));
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED') {
          // ICMP port unreachable: nobody listens; every outstanding request is lost.
          this.failAll(new CoapTransportError('ConnectionRefused', `no CoAP server on udp ${this.host}:${this.port}`, { cause: error }));
          return;
        }
        this.failAll(new CoapTransportError('SocketError', `udp ${this.host}:${this.port}: ${error.message}`, { cause: error }));
      });
      socket.once('error', reject);
      socket.connect(this.port, this.host, () => {
        socket.off('error', reject);
        this.socket = socket;
        resolve(socket);
      });
    });
    const opening = this.opening;
    opening.catch(() => {
      if (this.opening === opening) this.opening = undefined;
    });
    return opening;
  }

  private allocateMessageId(): number {
    // Skip IDs still in use: with NSTART=1 that never happens, but a wrap with a long backlog could.
    for (let tries = 0; tries < 0x10000; tries++) {
      const id = this.nextMessageId;
      this.nextMessageId = (this.nextMessageId + 1) & 0xffff;
      if (!this.byMessageId.has(id)) return id;
    }
    throw new CoapTransportError('Overloaded', 'all 65536 message IDs are in use');
  }

  private transmit(socket: dgram.Socket, exchange: Exchange): void {
    socket.send(exchange.datagram, (error) => {
      if (error) this.finish(exchange, new CoapTransportError('SocketError', `udp send: ${error.message}`, { cause: error }));
    });
    exchange.timer = setBoundedTimeout(() => this.onAckTimeout(socket, exchange), exchange.timeoutMs);
  }

  private onAckTimeout(socket: dgram.Socket, exchange: Exchange): void {
    if (exchange.acknowledged || !this.byMessageId.has(exchange.messageId)) return;
    if (exchange.attempts >= this.timing.maxRetransmit) {
      this.finish(exchange, new CoapTransportError('Timeout', `no ACK from ${this.host}:${this.port} after ${exchange.attempts + 1} transmissions`));
      return;
    }
    exchange.attempts++;
    exchange.timeoutMs *= 2;
    this.stats.retransmissions++;
    this.transmit(socket, exchange);
  }

  private onDatagram(socket: dgram.Socket, datagram: Buffer): void {
    let message: CoapMessage;
    try {
      message = decodeDatagram(datagram);
    } catch {
      return; // RFC 7252 section 4.2: malformed messages are silently ignored (or Reset); ignore.
    }
    if (message.type === MessageType.Acknowledgement || message.type === MessageType.Reset) {
      const exchange = this.byMessageId.get(message.messageId!);
      if (!exchange) {
        this.stats.duplicateAcks++;
        return;
      }
      if (message.type === MessageType.Reset) {
        this.finish(exchange, new CoapTransportError('Reset', `${this.host}:${this.port} answered with a Reset`));
        return;
      }
      if (message.code === Code.Empty) {
        // Separate response follows (RFC 7252 section 5.2.2); stop retransmitting, wait for it.
        exchange.acknowledged = true;
        this.byMessageId.delete(exchange.messageId);
        clearTimeout(exchange.timer);
        exchange.timer = setBoundedTimeout(
          () => this.finish(exchange, new CoapTransportError('Timeout', `no separate response from ${this.host}:${this.port}`)),
          maxTransmitWaitMs(this.timing),
        );
        return;
      }
      if (!message.token.equals(exchange.token)) return; // a piggybacked response must echo our token
      this.finish(exchange, undefined, { code: message.code, payload: message.payload });
      return;
    }
    // A separate response (CON or NON) matched by token.
    if (message.type === MessageType.Confirmable) {
      socket.send(encodeDatagram({ type: MessageType.Acknowledgement, code: Code.Empty, messageId: message.messageId, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0) }));
    }
    if (this.recentResponseIds.has(message.messageId!)) {
      this.stats.duplicateResponses++;
      return;
    }
    const exchange = this.byToken.get(message.token.toString('hex'));
    // Not ours (a stale token after a timeout) or not a response code: acknowledged above, dropped.
    if (!exchange || codeClass(message.code) < 2) return;
    remember(this.recentResponseIds, message.messageId!);
    this.finish(exchange, undefined, { code: message.code, payload: message.payload });
  }

  private finish(exchange: Exchange, error: Error | undefined, response?: CoapResponse): void {
    clearTimeout(exchange.timer);
    const tokenKey = exchange.token.toString('hex');
    if (this.byToken.get(tokenKey) !== exchange) return; // already finished
    this.byToken.delete(tokenKey);
    if (this.byMessageId.get(exchange.messageId) === exchange) this.byMessageId.delete(exchange.messageId);
    if (error) exchange.reject(error);
    else exchange.resolve(response!);
  }

  private failAll(error: Error): void {
    for (const exchange of [...this.byToken.values()]) this.finish(exchange, error);
  }
}

function remember(set: Set<number>, id: number): void {
  set.add(id);
  if (set.size > RECENT_ID_LIMIT) set.delete(set.values().next().value as number);
}
