// CoAP over TCP and over TLS (RFC 8323): length-prefixed frames without message IDs or ACKs (the
// stream is reliable), a Capabilities and Settings Message (CSM) from each side first, Ping/Pong to
// detect a dead peer, Release/Abort to end. Mutual TLS is node:tls with the Certificate's key.
import { classifyTlsError } from '../../pki/tls-errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import net from 'node:net';
import tls from 'node:tls';
import { Code, FrameReader, OptionNumber, encodeFrame, readUint, uintOption, type CoapMessage } from './codec.js';
import { CoapTransportError, TokenSource, type CoapRequest, type CoapResponse } from './exchange.js';
import { setBoundedTimeout } from '../../observability/clock.js';

/** RFC 8323 section 5.3.1: what a peer may assume before it sees our CSM. */
export const DEFAULT_PEER_MAX_MESSAGE_SIZE = 1152;
/** What we accept; announced in our CSM. */
const OUR_MAX_MESSAGE_SIZE = 1024 * 1024;

export interface StreamClientOptions {
  host: string;
  port: number;
  /** Present for coaps+tcp: client certificate, key, CA, server name. */
  tls?: tls.ConnectionOptions;
  /** Connect + handshake + CSM, and each request's wait for its response. */
  timeoutMs: number;
  /** Idle time before a Ping; a Pong must come within timeoutMs. */
  pingIntervalMs: number;
  /** Called once when an established connection ends. */
  onClose(error: CoapTransportError): void;
}

interface Pending {
  resolve(response: CoapResponse): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class StreamCoapClient {
  /** The peer's Max-Message-Size from its CSM. */
  peerMaxMessageSize = DEFAULT_PEER_MAX_MESSAGE_SIZE;
  private socket: net.Socket | undefined;
  private readonly tokens = new TokenSource();
  private readonly pending = new Map<string, Pending>();
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(private readonly options: StreamClientOptions) {}

  /** Resolves once the peer's CSM arrived; rejects with a reason (ConnectionRefused, ClientCertificateRejected...). */
  static async connect(options: StreamClientOptions): Promise<StreamCoapClient> {
    const client = new StreamCoapClient(options);
    await client.open();
    return client;
  }

  request(request: CoapRequest): Promise<CoapResponse> {
    const socket = this.socket;
    if (!socket || this.closed) return Promise.reject(new CoapTransportError('NotConnected', 'CoAP connection is not open'));
    const token = this.tokens.next();
    return new Promise<CoapResponse>((resolve, reject) => {
      const key = token.toString('hex');
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new CoapTransportError('Timeout', `no response from ${this.describe()} within ${this.options.timeoutMs} ms`));
      }, this.options.timeoutMs);
      this.pending.set(key, { resolve, reject, timer });
      socket.write(encodeFrame({ code: request.code, token, options: request.options, payload: request.payload }));
      this.armPing();
    });
  }

  /** Sends Release (RFC 8323 section 5.5) and closes. */
  async close(): Promise<void> {
    const socket = this.socket;
    if (!socket || this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.failPending(new CoapTransportError('Closed', 'CoAP connection closed'));
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end(encodeFrame({ code: Code.Release, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0) }));
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  private describe(): string {
    return `${this.options.tls ? 'coaps+tcp' : 'coap+tcp'}://${this.options.host}:${this.options.port}`;
  }

  private open(): Promise<void> {
    const { host, port, timeoutMs } = this.options;
    return new Promise<void>((resolve, reject) => {
      let established = false;
      const socket = this.options.tls
        ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...this.options.tls, ALPNProtocols: ['coap'] })
        : net.connect({ host, port });
      this.socket = socket;
      const reader = new FrameReader(OUR_MAX_MESSAGE_SIZE);
      // The handshake gets at most 15 s even when requests may wait longer for their response.
      const handshakeMs = Math.min(timeoutMs, 15_000);
      const handshakeTimer = setTimeout(() => socket.destroy(new CoapTransportError('Timeout', `no CSM from ${this.describe()} within ${handshakeMs} ms`)), handshakeMs);
      const fail = (error: CoapTransportError): void => {
        clearTimeout(handshakeTimer);
        if (!established) {
          reject(error);
          return;
        }
        this.shutDown(error);
      };
      socket.on('error', (error) => fail(classifySocketError(error, this.describe())));
      socket.on('close', () => fail(new CoapTransportError('ConnectionLost', `${this.describe()} closed the connection`)));
      socket.once(this.options.tls ? 'secureConnect' : 'connect', () => {
        socket.setNoDelay(true);
        // RFC 8323 section 5.3: the CSM is the first message on the connection.
        socket.write(encodeFrame({ code: Code.Csm, token: Buffer.alloc(0), options: [uintOption(OptionNumber.MaxMessageSize, OUR_MAX_MESSAGE_SIZE)], payload: Buffer.alloc(0) }));
      });
      socket.on('data', (chunk: Buffer) => {
        let messages: CoapMessage[];
        try {
          messages = reader.push(chunk);
        } catch (error) {
          this.abort(`malformed frame: ${(error as Error).message}`);
          return;
        }
        for (const message of messages) {
          if (!established && message.code !== Code.Csm) {
            this.abort('the first message was not a CSM');
            return;
          }
          if (!established) {
            established = true;
            clearTimeout(handshakeTimer);
            this.onCsm(message);
            this.armPing();
            resolve();
            continue;
          }
          this.onMessage(message);
        }
      });
    });
  }

  private onCsm(message: CoapMessage): void {
    const size = message.options.find((option) => option.number === OptionNumber.MaxMessageSize);
    if (size) this.peerMaxMessageSize = readUint(size.value);
  }

  private onMessage(message: CoapMessage): void {
    this.armPing();
    switch (message.code) {
      case Code.Csm:
        this.onCsm(message);
        return;
      case Code.Ping:
        this.socket?.write(encodeFrame({ code: Code.Pong, token: message.token, options: [], payload: Buffer.alloc(0) }));
        return;
      case Code.Release:
        this.shutDown(new CoapTransportError('ConnectionReleased', `${this.describe()} released the connection`));
        return;
      case Code.Abort:
        this.shutDown(new CoapTransportError('ConnectionAborted', `${this.describe()} aborted the connection (diagnostic payload of ${describeUntrusted(message.payload)})`));
        return;
    }
    // Responses, and our Pongs, are matched by token.
    const key = message.token.toString('hex');
    const waiting = this.pending.get(key);
    if (!waiting) return;
    this.pending.delete(key);
    clearTimeout(waiting.timer);
    waiting.resolve({ code: message.code, payload: message.payload });
  }

  /** After pingIntervalMs without traffic, Ping; no Pong within timeoutMs ends the connection. */
  private armPing(): void {
    clearTimeout(this.idleTimer);
    if (this.closed) return;
    this.idleTimer = setBoundedTimeout(() => {
      this.ping().catch((error) => {
        this.socket?.destroy();
        this.shutDown(error instanceof CoapTransportError ? error : new CoapTransportError('Timeout', String(error)));
      });
    }, this.options.pingIntervalMs);
    this.idleTimer.unref();
  }

  /** RFC 8323 section 5.4: resolves on the Pong. */
  ping(): Promise<void> {
    return this.request({ code: Code.Ping, options: [], payload: Buffer.alloc(0) }).then((response) => {
      if (response.code !== Code.Pong) throw new CoapTransportError('ProtocolError', `Ping answered with code ${response.code}`);
    });
  }

  private abort(reason: string): void {
    this.socket?.end(encodeFrame({ code: Code.Abort, token: Buffer.alloc(0), options: [], payload: Buffer.from(reason) }));
    this.socket?.destroy(new CoapTransportError('ProtocolError', reason));
  }

  private shutDown(error: CoapTransportError): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.socket?.destroy();
    this.failPending(error);
    this.options.onClose(error);
  }

  private failPending(error: Error): void {
    for (const [key, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      this.pending.delete(key);
      waiting.reject(error);
    }
  }
}

/** Maps a socket/TLS error to the condition reason a user can act on (TLS reasons as for MQTT). */
export function classifySocketError(error: Error, where: string): CoapTransportError {
  if (error instanceof CoapTransportError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const reason =
    classifyTlsError(error) ??
    (code === 'ECONNREFUSED'
      ? 'ConnectionRefused'
      : code === 'ETIMEDOUT'
        ? 'Timeout'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'HostNotFound'
          : code === 'ECONNRESET' || code === 'EPIPE'
            ? 'ConnectionLost'
            : 'ConnectionFailed');
  return new CoapTransportError(reason, `${where}: ${error.message}${code ? ` (${code})` : ''}`, { cause: error });
}
