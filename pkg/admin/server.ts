// The admin HTTP API: health, readiness, Prometheus metrics, every resource with its status, and
// a reload trigger. It binds to loopback by default: it is for the device's operator, not the network.
// Anywhere else it needs an authenticator (see auth.ts) for everything but /healthz and /readyz.
// On loopback without one, it answers only requests addressed to loopback by their Host header: a
// web page whose name an attacker rebinds to 127.0.0.1 (DNS rebinding) reaches the socket, but not
// with a loopback Host.
//
// /healthz is the liveness probe: no request may hold the event loop long enough to delay it.
// The large answers (/api/v1/resources, /metrics) are therefore written in slices, letting the
// event loop turn every SLICE_MS, and the work behind POST /reload yields the same way.
import http from 'node:http';
import { once } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { FlagError } from '../api/errors.js';
import { redactCredentials } from '../api/redact.js';
import { isLoopbackAddress, isLoopbackHost, type Authenticator } from './auth.js';
import { CONSOLE_ASSET_PATHS, isConsoleAsset, serveConsoleAsset } from '../console/assets.js';

/** The longest an answer keeps the event loop busy before it lets other requests in. */
const SLICE_MS = 10;
/** Bytes gathered before a write: fewer syscalls, still small next to the socket buffer. */
const WRITE_BYTES = 64 * 1024;

export interface ResourceList {
  apiVersion: 'v1';
  kind: 'List';
  /** Built one by one while the answer is written. */
  items: Iterable<unknown>;
  errors: unknown;
}

export interface AdminHandlers {
  ready(): boolean;
  resources(): ResourceList;
  reload(): Promise<void>;
  registry: Registry;
  /** A request refused for its credentials (401/403): counted, not logged (anyone can cause it). */
  onDenied?(status: number): void;
  /** The web console's live feed (pkg/console), behind the same authentication as the API. */
  console?: ConsoleFeedHandler;
}

export interface ConsoleFeedHandler {
  /** GET /console/events: a Server-Sent Events stream that stays open. */
  subscribe(request: http.IncomingMessage, response: http.ServerResponse): Promise<void>;
  /** Ends every open stream (the server is closing). */
  close(): void;
}

export interface AdminSecurity {
  /** When set, every endpoint but /healthz and /readyz needs credentials it accepts. */
  authenticator?: Authenticator;
  /** The operator's explicit choice to serve a non-loopback address without authentication. */
  allowUnauthenticated?: boolean;
}

export interface AdminServer {
  address: string;
  close(): Promise<void>;
}

export function parseHostPort(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  const port = Number(match?.[2]);
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new FlagError('--admin-addr', 'AdminAddressInvalid', `--admin-addr ${JSON.stringify(address)}: expected HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9470`);
  }
  return { host: match[1] || '127.0.0.1', port };
}

/** Why the admin API cannot listen, naming the flag: the usual operator mistakes get their own words. */
function listenError(address: string, error: NodeJS.ErrnoException): Error {
  switch (error.code) {
    case 'EADDRINUSE':
      return new FlagError('--admin-addr', 'AdminAddressInUse', `--admin-addr ${address}: the address is already in use (another sensorlet agent?); give each agent its own --admin-addr`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new FlagError('--admin-addr', 'AdminAddressUnavailable', `--admin-addr ${address}: no network interface of this machine has that address`);
    case 'EACCES':
      return new FlagError('--admin-addr', 'AdminAddressNotPermitted', `--admin-addr ${address}: not permitted (ports below 1024 need privileges)`);
    default:
      return error;
  }
}

/** The methods of every path the admin API serves (HEAD answers as GET does in Node's http). */
const API_METHODS: Record<string, string[]> = {
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/api/v1/resources': ['GET', 'HEAD'],
  '/reload': ['POST'],
};
/** The console's paths: served (and answered 405 for other methods) only when the console is on. */
const CONSOLE_METHODS: Record<string, string[]> = {
  '/console/events': ['GET', 'HEAD'],
  ...Object.fromEntries(CONSOLE_ASSET_PATHS.map((path) => [path, ['GET', 'HEAD']])),
};

/**
 * Whether a Host header addresses this server on loopback: `localhost`, a loopback literal
 * (127.x.y.z, [::1]) or the exact address it was bound to, with or without a port. A missing Host
 * (HTTP/1.0) is accepted: browsers always send one.
 */
export function isLoopbackHostHeader(header: string | undefined, boundHost: string): boolean {
  if (header === undefined) return true;
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::[0-9]{1,5})?$/.exec(header.trim());
  if (!match) return false;
  const name = match[1].toLowerCase();
  if (name === 'localhost' || name === boundHost.toLowerCase() || name === `[${boundHost.toLowerCase()}]`) return true;
  return isLoopbackAddress(name);
}

/** How long close() lets requests under way finish before cutting their connections. */
const CLOSE_GRACE_MS = 300;

/**
 * Refuses an admin address that other machines can reach when nothing authenticates its clients
 * and the operator did not opt out: the API shows every spec and status, and reloads the agent.
 */
export async function checkAdminExposure(address: string, security: { authenticated: boolean; allowUnauthenticated?: boolean }): Promise<void> {
  const { host } = parseHostPort(address);
  if (security.authenticated || security.allowUnauthenticated || (await isLoopbackHost(host))) return;
  throw new FlagError(
    '--admin-addr',
    'AdminAuthRequired',
    `--admin-addr ${address} is not a loopback address and the admin API would answer anyone: give --admin-token-file FILE (or --admin-insecure-no-auth to accept that)`,
  );
}

/**
 * Writes the pieces as one body, in slices of at most SLICE_MS of work, waiting for the socket to
 * drain when its buffer is full. Stops early if the client went away.
 */
async function writeInSlices(response: http.ServerResponse, pieces: Iterable<string> | AsyncIterable<string>): Promise<void> {
  let buffered = '';
  let sliceStarted = performance.now();
  const flush = async () => {
    if (buffered === '') return;
    const text = buffered;
    buffered = '';
    if (!response.write(text)) await Promise.race([once(response, 'drain'), once(response, 'close')]);
  };
  for await (const piece of pieces) {
    if (response.destroyed) return;
    buffered += piece;
    if (buffered.length >= WRITE_BYTES) await flush();
    if (performance.now() - sliceStarted >= SLICE_MS) {
      await flush();
      await nextTurn();
      sliceStarted = performance.now();
    }
  }
  await flush();
  response.end();
}

function* resourceListJson(list: ResourceList): Generator<string> {
  yield `{"apiVersion":${JSON.stringify(list.apiVersion)},"kind":${JSON.stringify(list.kind)},"items":[`;
  let first = true;
  for (const item of list.items) {
    yield (first ? '' : ',') + JSON.stringify(item);
    first = false;
  }
  yield `],"errors":${JSON.stringify(list.errors)}}`;
}

/** What prom-client's metrics hand out for the Prometheus text format (metric.get()). */
interface MetricData {
  name: string;
  help: string;
  type: string;
  values?: { labels?: Record<string, string | number>; sharedLabels?: Record<string, string | number>; metricName?: string; value: number }[];
}

const escapeText = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (value: string | number) => (typeof value === 'string' ? escapeText(value).replace(/"/g, '\\"') : value);
const labelPairs = (labels: Record<string, string | number>) => Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
const sampleValue = (value: number) => (Number.isNaN(value) ? 'Nan' : value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : `${value}`);
/** Samples per piece: a family with 10k series (one per Sensor) is written in several slices. */
const SAMPLES_PER_PIECE = 500;

/**
 * The registry's Prometheus text, exactly as registry.metrics() writes it (server.test.ts compares
 * them), but piece by piece: registry.metrics() formats everything in one go, which with thousands
 * of Sensors holds the event loop for tens of milliseconds per metric family.
 */
export async function* metricsText(registry: Registry): AsyncGenerator<string> {
  let first = true;
  for (const metric of registry.getMetricsAsArray() as unknown as { get(): Promise<MetricData>; getForPromString?(): Promise<MetricData> }[]) {
    // Histograms keep `le` apart (sharedLabels) in getForPromString, as registry.metrics() reads them.
    const data = metric.getForPromString ? await metric.getForPromString() : await metric.get();
    const name = escapeText(data.name);
    let text = `${first ? '' : '\n\n'}# HELP ${name} ${escapeText(data.help)}\n# TYPE ${name} ${data.type}`;
    first = false;
    let samples = 0;
    for (const sample of data.values ?? []) {
      const shared = sample.sharedLabels ?? {};
      const own = Object.fromEntries(Object.entries(sample.labels ?? {}).filter(([label]) => !Object.prototype.hasOwnProperty.call(shared, label)));
      const pairs = [...labelPairs(own), labelPairs(shared).join(',')].filter(Boolean);
      text += `\n${sample.metricName ?? name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${sampleValue(sample.value)}`;
      if (++samples % SAMPLES_PER_PIECE === 0) {
        yield text;
        text = '';
      }
    }
    yield text;
  }
  yield '\n';
}

export async function startAdminServer(address: string, handlers: AdminHandlers, security: AdminSecurity = {}): Promise<AdminServer> {
  await checkAdminExposure(address, { authenticated: security.authenticator !== undefined, allowUnauthenticated: security.allowUnauthenticated });
  const { host, port } = parseHostPort(address);
  const allowedMethods: Record<string, string[]> = handlers.console ? { ...API_METHODS, ...CONSOLE_METHODS } : API_METHODS;
  // Nothing authenticates requests on loopback: the Host header must then say loopback too.
  const checkHost = !security.authenticator && (await isLoopbackHost(host));
  let closing = false;

  const handle = async (request: http.IncomingMessage, response: http.ServerResponse): Promise<void> => {
    // Once closing, every answer ends its connection: server.close() waits for connections that
    // were busy when it was called, and a client reusing one (keep-alive polling) would keep the
    // agent's shutdown, or a self-update restart, waiting for ever.
    const head = (status: number, type: string, extra: Record<string, string> = {}) =>
      response.writeHead(status, { 'content-type': type, ...extra, ...(closing ? { connection: 'close' } : {}) });
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8', extra: Record<string, string> = {}) => {
      head(status, type, extra);
      response.end(body);
    };
    const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
    // HEAD is GET without a body (Node's http leaves the body out).
    const route = `${request.method === 'HEAD' ? 'GET' : request.method} ${pathname}`;
    // A known path asked with another method: 405 naming the methods it takes (RFC 9110 15.5.6).
    const allowed = allowedMethods[pathname];
    if (allowed && !allowed.includes(request.method ?? '')) {
      return send(405, `method ${request.method} not allowed on ${pathname}; use ${allowed.join(' or ')}\n`, 'text/plain; charset=utf-8', { allow: allowed.join(', ') });
    }
    // The kubelet's probes carry no credentials; their answers reveal nothing.
    if (route === 'GET /healthz') return send(200, 'ok\n');
    if (route === 'GET /readyz') return handlers.ready() ? send(200, 'ready\n') : send(503, 'not ready: the first sync has not been applied\n');
    if (checkHost && !isLoopbackHostHeader(request.headers.host, host)) {
      handlers.onDenied?.(421);
      return send(421, 'this admin API answers only requests addressed to localhost or a loopback address (Host header)\n');
    }
    // The console's page is static and holds no data (a browser opening it cannot send a token);
    // its data comes from /console/events below, which needs credentials like the API.
    if (handlers.console && (request.method === 'GET' || request.method === 'HEAD') && isConsoleAsset(pathname)) {
      return serveConsoleAsset(pathname, request, response, closing ? { connection: 'close' } : {});
    }
    if (security.authenticator) {
      const verdict = await security.authenticator.check(request);
      if (!verdict.allowed) {
        handlers.onDenied?.(verdict.status);
        return send(verdict.status, `${verdict.message}\n`, 'text/plain; charset=utf-8', verdict.status === 401 ? { 'www-authenticate': 'Bearer realm="sensorlet"' } : {});
      }
    }
    switch (route) {
      case 'GET /metrics':
        head(200, handlers.registry.contentType);
        return writeInSlices(response, metricsText(handlers.registry));
      case 'GET /console/events':
        if (!handlers.console) return send(404, 'not found\n');
        // A HEAD would otherwise hold one of the feed's few stream slots until its socket closed.
        if (request.method === 'HEAD') return send(200, '', 'text/event-stream; charset=utf-8', { 'cache-control': 'no-store' });
        return handlers.console.subscribe(request, response);
      case 'GET /api/v1/resources':
        head(200, 'application/json');
        return writeInSlices(response, resourceListJson(handlers.resources()));
      case 'POST /reload':
        try {
          await handlers.reload();
          return send(200, 'reloaded\n');
        } catch (error) {
          return send(500, `reload failed: ${redactCredentials(String(error))}\n`);
        }
      default:
        return send(404, 'not found\n');
    }
  };

  const server = http.createServer((request, response) => {
    handle(request, response).catch((error) => {
      // Headers may be out already (a failure mid-answer): then only cutting the answer is honest.
      if (response.headersSent) response.destroy();
      else {
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(`internal error: ${(error as Error).message}\n`);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(address, error)));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () =>
      new Promise((resolve) => {
        closing = true;
        handlers.console?.close();
        server.close(() => resolve());
        server.closeIdleConnections();
        // A request still being answered (a reload reading a slow folder) gets a moment, then its
        // connection is cut: shutdown does not wait on a client.
        setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      }),
  };
}
