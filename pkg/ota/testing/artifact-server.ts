// A real HTTP artifact server for tests, with faults on demand: the connection cut at a fraction
// of the body, a slow link, Range ignored, corrupted bytes, an error status. Every request is
// logged with the bytes it was actually sent, so tests can assert what a resume fetched.
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface ServedRequest {
  range?: string;
  ifRange?: string;
  status: number;
  start: number;
  bytesSent: number;
}

export interface ArtifactFaults {
  /** Each request that reaches one of these fractions of the body is cut there; each is used once. */
  cutAt: number[];
  /** Bytes per second the server sends at (slow link). */
  bytesPerSecond?: number;
  ignoreRange?: boolean;
  /** Flip one byte in the middle of what is served. */
  corrupt?: boolean;
  /** The next request stops sending after this many bytes and keeps the connection open (a stalled link); used once. */
  stallOnceAfterBytes?: number;
  /** Answer every request with this status. */
  status?: number;
  /** Send only ETag (default both ETag and Last-Modified); 'none' sends no validator. */
  validators?: 'both' | 'etag' | 'none';
}

export class ArtifactServer {
  readonly log: ServedRequest[] = [];
  faults: ArtifactFaults = { cutAt: [] };
  private body: Buffer;
  private etag: string;
  private readonly lastModified = new Date(Date.UTC(2024, 0, 1)).toUTCString();

  private constructor(
    private readonly server: http.Server,
    body: Buffer,
  ) {
    this.body = body;
    this.etag = etagOf(body);
  }

  static async start(body: Buffer): Promise<ArtifactServer> {
    const server = http.createServer();
    const instance = new ArtifactServer(server, body);
    server.on('request', (request, response) => instance.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return instance;
  }

  url(file = 'artifact.bin'): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/${file}`;
  }

  /** A new version of the artifact at the same URL (a new ETag). */
  setBody(body: Buffer): void {
    this.body = body;
    this.etag = etagOf(body);
  }

  bytesServed(): number {
    return this.log.reduce((sum, entry) => sum + entry.bytesSent, 0);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const entry: ServedRequest = { range: header(request, 'range'), ifRange: header(request, 'if-range'), status: 200, start: 0, bytesSent: 0 };
    this.log.push(entry);
    if (this.faults.status) {
      entry.status = this.faults.status;
      response.writeHead(this.faults.status).end();
      return;
    }
    const body = this.faults.corrupt ? corrupted(this.body) : this.body;
    const validators = this.faults.validators ?? 'both';
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    if (validators !== 'none') headers.etag = this.etag;
    if (validators === 'both') headers['last-modified'] = this.lastModified;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(entry.range ?? '');
    const validatorMatches = entry.ifRange === undefined || entry.ifRange === this.etag || entry.ifRange === this.lastModified;
    if (range && !this.faults.ignoreRange && validatorMatches) {
      start = Number(range[1]);
      if (start >= body.length) {
        entry.status = 416;
        response.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      entry.status = 206;
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    }
    entry.start = start;
    headers['content-length'] = body.length - start;
    response.writeHead(entry.status, headers);
    // A cut applies when it falls inside what this response would send.
    const cutIndex = this.faults.cutAt.findIndex((fraction) => Math.floor(body.length * fraction) > start);
    const end = cutIndex >= 0 ? Math.floor(body.length * this.faults.cutAt.splice(cutIndex, 1)[0]) : body.length;
    void this.send(response, body, start, end, entry);
  }

  private async send(response: http.ServerResponse, body: Buffer, start: number, end: number, entry: ServedRequest): Promise<void> {
    const step = this.faults.bytesPerSecond ? Math.max(1, Math.floor(this.faults.bytesPerSecond / 20)) : 64 * 1024;
    let offset = start;
    const stallAt = this.faults.stallOnceAfterBytes;
    this.faults.stallOnceAfterBytes = undefined;
    while (offset < end) {
      if (response.destroyed) return;
      if (stallAt !== undefined && entry.bytesSent >= stallAt) {
        // Silent but open, until the client gives up on the connection.
        await new Promise<void>((resolve) => response.once('close', () => resolve()));
        return;
      }
      const chunk = body.subarray(offset, Math.min(end, offset + step, stallAt === undefined ? end : start + stallAt));
      await new Promise<void>((resolve) => response.write(chunk, () => resolve()));
      entry.bytesSent += chunk.length;
      offset += chunk.length;
      if (this.faults.bytesPerSecond) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (end < body.length) {
      // Cut: the bytes so far reach the client (as on a link that drops after delivering them),
      // then the connection closes mid-body.
      await new Promise((resolve) => setTimeout(resolve, 150));
      response.socket?.end();
      return;
    }
    response.end();
  }
}

function header(request: http.IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function etagOf(body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
}

function corrupted(body: Buffer): Buffer {
  const copy = Buffer.from(body);
  copy[Math.floor(copy.length / 2)] ^= 0xff;
  return copy;
}
