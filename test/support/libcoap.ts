// A real libcoap server (coap-server-openssl from Debian libcoap3-bin) for a test: started on free
// loopback ports, stopped by the test. It listens on `port` for UDP and TCP and, with a certificate,
// on `port + 1` for DTLS and TLS. `-d` lets PUT/POST create resources on any path; at verbosity 7 it
// logs every PDU it receives, which the tests use to count what arrived.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { freePort, waitFor } from './ports.js';

export const LIBCOAP_SERVER = '/usr/bin/coap-server-openssl';

export interface LibcoapOptions {
  /** `-l`: e.g. '30%' to drop that share of the datagrams the server sends. */
  loss?: string;
  /** PKI for the TLS/DTLS listener on port + 1: server cert and key, and the CA that must have signed client certs (`-C`). */
  tls?: { certFile: string; keyFile: string; caFile: string };
  port?: number;
}

export interface ReceivedPdu {
  type: string;
  code: string;
  messageId: string;
  path: string;
  /** The options as libcoap prints them, e.g. `Uri-Path:a, Content-Format:application/senml+cbor`. */
  options: string;
  /** Text payloads as printed; empty for those libcoap prints as binary (CBOR, SenML). */
  payload: string;
}

export class LibcoapServer {
  output = '';
  private process: ChildProcess | undefined;

  private constructor(readonly port: number, private readonly options: LibcoapOptions) {}

  static async start(options: LibcoapOptions = {}): Promise<LibcoapServer> {
    if (!existsSync(LIBCOAP_SERVER)) throw new Error('coap-server-openssl is not installed: run the README test command (apt-get install libcoap3-bin)');
    // The TLS listener takes port + 1: look for a pair that is free for both.
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = options.port ?? (await freePort());
      if (options.tls && !(await isFree(port + 1))) continue;
      const server = new LibcoapServer(port, options);
      try {
        await server.restart();
        return server;
      } catch (error) {
        await server.stop();
        if (options.port !== undefined || attempt === 19) throw error;
      }
    }
    throw new Error('no free port pair for coap-server-openssl');
  }

  get udpUrl(): string {
    return `coap://127.0.0.1:${this.port}`;
  }
  get tcpUrl(): string {
    return `coap+tcp://127.0.0.1:${this.port}`;
  }
  get tlsUrl(): string {
    return `coaps+tcp://127.0.0.1:${this.port + 1}`;
  }

  async restart(): Promise<void> {
    const args = ['-A', '127.0.0.1', '-p', String(this.port), '-d', '1000', '-v', '7'];
    if (this.options.loss) args.push('-l', this.options.loss);
    if (this.options.tls) args.push('-c', this.options.tls.certFile, '-j', this.options.tls.keyFile, '-C', this.options.tls.caFile);
    // stdbuf: libcoap logs through stdio, which a pipe would block-buffer; line buffering lets the
    // test read each PDU as soon as it is handled.
    const child = spawn('stdbuf', ['-oL', '-eL', LIBCOAP_SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (data) => (this.output += data));
    child.stderr!.on('data', (data) => (this.output += data));
    this.process = child;
    const exited = new Promise<void>((_, reject) => child.once('exit', (code) => reject(new Error(`coap-server-openssl exited with ${code}: ${this.output}`))));
    exited.catch(() => undefined);
    await Promise.race([
      waitFor(async () => (await canConnect(this.port)) && (!this.options.tls || (await canConnect(this.port + 1))), {
        timeoutMs: 10_000,
        what: `coap-server-openssl on ${this.port}`,
      }),
      exited,
    ]);
  }

  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Makes the server log something: its PDU log can trail the ACKs it sent by a few lines (stdio
   * buffering that stdbuf does not always undo), and more output pushes those lines through.
   */
  async poke(count = 20): Promise<void> {
    const socket = dgram.createSocket('udp4');
    // A NON GET of /.well-known/core: version 1, type NON, no token, a random message ID.
    for (let index = 0; index < count; index++) {
      const datagram = Buffer.from([0x50, 0x01, Math.floor(Math.random() * 256), index, 0xbb, ...Buffer.from('.well-known'), 0x04, ...Buffer.from('core')]);
      await new Promise<void>((resolve) => socket.send(datagram, this.port, '127.0.0.1', () => resolve()));
    }
    socket.close();
  }

  /** The requests the server logged as received (PUT/POST), retransmissions included. */
  receivedRequests(): ReceivedPdu[] {
    const requests: ReceivedPdu[] = [];
    for (const match of this.output.matchAll(/^v:1 t:(\w+) c:(PUT|POST) i:([0-9a-f]+) \{[0-9a-f]*\} \[([^\]]*)\](?: :: '(.*)'| :: binary data.*)?$/gm)) {
      const path = [...match[4].matchAll(/Uri-Path:([^,\s]+)/g)].map((segment) => segment[1]).join('/');
      requests.push({ type: match[1], code: match[2], messageId: match[3], path, options: match[4].trim(), payload: match[5] ?? '' });
    }
    return requests;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
