// The console's page and its assets, served by the agent itself (no CDN: a device may be
// air-gapped). `npm run build` writes them to dist/console/ (cmd/bundle/main.ts); they are read
// and gzipped once, on the first request, and kept compressed.
//
// They are static and the same on every agent: no data, no token, nothing about this device. They
// are therefore served without credentials (a browser cannot send a bearer token when it opens a
// page); everything the page shows comes from GET /console/events, which the admin API's
// authentication guards like every other endpoint.
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type http from 'node:http';
import { PACKAGE_ROOT } from '../api/schemas.js';

export const ASSETS_DIR = path.join(PACKAGE_ROOT, 'dist', 'console');

/** URL path → file in ASSETS_DIR and its type. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

/**
 * Only the agent's own files, no inline script or style, no frames, no forms, and fetches only
 * to the agent: even a string that slipped through unescaped could not run or send anything.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface LoadedAsset {
  type: string;
  gzipped: Buffer;
  etag: string;
}

let loaded: Map<string, LoadedAsset> | undefined;

function load(dir: string): Map<string, LoadedAsset> {
  const assets = new Map<string, LoadedAsset>();
  for (const [route, { file, type }] of Object.entries(ASSETS)) {
    const body = readFileSync(path.join(dir, file));
    assets.set(route, { type, gzipped: gzipSync(body, { level: 9 }), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

/** The URL paths of the console's files (the admin server answers 405 on them for other methods). */
export const CONSOLE_ASSET_PATHS = Object.keys(ASSETS);

export function isConsoleAsset(pathname: string): boolean {
  return Object.prototype.hasOwnProperty.call(ASSETS, pathname);
}

/** Every asset's gzipped size in bytes, by URL path (the bench prints them). */
export function consoleSizes(dir = ASSETS_DIR): Record<string, number> {
  return Object.fromEntries([...load(dir)].map(([route, asset]) => [route, asset.gzipped.length]));
}

export function serveConsoleAsset(pathname: string, request: http.IncomingMessage, response: http.ServerResponse, extraHeaders: Record<string, string> = {}): void {
  try {
    loaded ??= load(ASSETS_DIR);
  } catch (error) {
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...extraHeaders });
    response.end(`the console is not built into this agent (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}: run npm run build)\n`);
    return;
  }
  const asset = loaded.get(pathname)!;
  const headers: Record<string, string> = {
    'content-type': asset.type,
    etag: asset.etag,
    // Revalidated on every load: an updated agent serves its new page at once.
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-frame-options': 'DENY',
    vary: 'accept-encoding',
    ...extraHeaders,
  };
  if (request.headers['if-none-match'] === asset.etag) {
    response.writeHead(304, headers);
    response.end();
    return;
  }
  const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  const body = gzip ? asset.gzipped : gunzipSync(asset.gzipped);
  response.writeHead(200, { ...headers, ...(gzip ? { 'content-encoding': 'gzip' } : {}), 'content-length': String(body.length) });
  response.end(request.method === 'HEAD' ? undefined : body);
}
