// The admin HTTP API: health, readiness, Prometheus metrics, every resource with its status, and
// a reload trigger. It binds to loopback by default: it is for the device's operator, not the network.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface AdminHandlers {
  ready(): boolean;
  resources(): unknown;
  reload(): Promise<void>;
  registry: Registry;
}

export interface AdminServer {
  address: string;
  close(): Promise<void>;
}

export function parseHostPort(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!match) throw new Error(`--admin-addr must be HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: match[1] || '127.0.0.1', port: Number(match[2]) };
}

/** How long close() lets requests under way finish before cutting their connections. */
const CLOSE_GRACE_MS = 300;

export async function startAdminServer(address: string, handlers: AdminHandlers): Promise<AdminServer> {
  const { host, port } = parseHostPort(address);
  let closing = false;
  const server = http.createServer((request, response) => {
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      // Once closing, every answer ends its connection: server.close() waits for connections that
      // were busy when it was called, and a client reusing one (keep-alive polling) would keep the
      // agent's shutdown, or a self-update restart, waiting for ever.
      response.writeHead(status, { 'content-type': type, ...(closing ? { connection: 'close' } : {}) });
      response.end(body);
    };
    const route = `${request.method} ${new URL(request.url ?? '/', 'http://localhost').pathname}`;
    switch (route) {
      case 'GET /healthz':
        return send(200, 'ok\n');
      case 'GET /readyz':
        return handlers.ready() ? send(200, 'ready\n') : send(503, 'not ready: the first sync has not been applied\n');
      case 'GET /metrics':
        return void handlers.registry.metrics().then(
          (text) => send(200, text, handlers.registry.contentType),
          (error) => send(500, String(error)),
        );
      case 'GET /api/v1/resources':
        return send(200, JSON.stringify(handlers.resources()), 'application/json');
      case 'POST /reload':
        return void handlers.reload().then(
          () => send(200, 'reloaded\n'),
          (error) => send(500, `reload failed: ${String(error)}\n`),
        );
      default:
        return send(404, 'not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () =>
      new Promise((resolve) => {
        closing = true;
        server.close(() => resolve());
        server.closeIdleConnections();
        // A request still being answered (a reload reading a slow folder) gets a moment, then its
        // connection is cut: shutdown does not wait on a client.
        setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      }),
  };
}
