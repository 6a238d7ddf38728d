// Resumable artifact download over HTTP(S).
//
// The bytes on disk are the truth: a restart (or a new attempt after a cut connection) asks for
// `Range: bytes=<have>-` with `If-Range: <validator>` (a strong ETag, else Last-Modified) saved from
// the response that produced those bytes. The server answers:
//   206 from <have>   → append;
//   200               → it ignored Range, or the artifact changed (If-Range failed): truncate and
//                       take the whole body from the start (never splice two versions);
//   416               → complete when <have> equals the expected size, else start over;
//   4xx (not 408/429) → DownloadFailed at once; 5xx / network errors / a body cut short → retry with
//                       capped exponential backoff. The failure budget counts attempts that made no
//                       progress, so a link that keeps dropping but moves forward always finishes.
// More bytes than `size` is SizeMismatch (the partial file is removed). A bandwidth limit paces reads
// (backpressure reaches the server through TCP), and an idle timeout catches a stalled link.
import http from 'node:http';
import https from 'node:https';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import type { ConnectionOptions } from 'node:tls';
import { OtaError } from './errors.js';
import { writeFileDurable } from './state.js';

export interface DownloadOptions {
  url: string;
  /** Where the artifact is assembled; `<file>.meta.json` keeps the validator of the bytes in it. */
  file: string;
  /** Expected size in bytes (spec.artifact.size). */
  size: number;
  /** https: client certificate, key and CA (mutual TLS). */
  tls?: ConnectionOptions;
  /** Bytes per second; unlimited when absent or 0. */
  bandwidthLimit?: number;
  /** Consecutive attempts without progress before DownloadFailed. */
  maxAttempts?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** A response that sends nothing for this long is abandoned and retried. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?(bytes: number, total: number): void;
  onAttempt?(info: { attempt: number; from: number; status?: number; error?: string }): void;
}

export interface DownloadResult {
  bytes: number;
  requests: number;
  /** Times the server ignored Range or the validator changed, and the download began again. */
  restarts: number;
}

interface Meta {
  url: string;
  etag?: string;
  lastModified?: string;
}

const DEFAULTS = { maxAttempts: 8, backoff: { initialMs: 250, maxMs: 10_000 }, idleTimeoutMs: 30_000 };

class Retry extends Error {}

export async function downloadArtifact(options: DownloadOptions): Promise<DownloadResult> {
  const maxAttempts = options.maxAttempts ?? DEFAULTS.maxAttempts;
  const backoff = options.backoff ?? DEFAULTS.backoff;
  mkdirSync(path.dirname(options.file), { recursive: true });
  const metaFile = `${options.file}.meta.json`;
  let meta = readMeta(metaFile);
  if (!meta || meta.url !== options.url) {
    // Bytes of another URL (or of unknown origin) are never resumed.
    rmSync(options.file, { force: true });
    meta = { url: options.url };
    writeFileDurable(metaFile, JSON.stringify(meta));
  }
  let requests = 0;
  let restarts = 0;
  let failures = 0;
  for (;;) {
    if (options.signal?.aborted) throw new OtaError('Aborted', 'download aborted', { terminal: false });
    const have = existsSync(options.file) ? statSync(options.file).size : 0;
    if (have > options.size) {
      rmSync(options.file, { force: true });
      throw new OtaError('SizeMismatch', `the artifact is larger than spec.artifact.size (${options.size} bytes)`);
    }
    options.onProgress?.(have, options.size);
    requests++;
    const before = have;
    try {
      // The validator on disk belongs to the bytes on disk (written before them).
      meta = readMeta(metaFile) ?? meta;
      const outcome = await attempt(options, meta, have);
      if (outcome.restarted) restarts++;
      meta = outcome.meta;
      if (outcome.complete) {
        const bytes = statSync(options.file).size;
        if (bytes !== options.size) {
          rmSync(options.file, { force: true });
          throw new OtaError('SizeMismatch', `the server sent ${bytes} bytes; spec.artifact.size is ${options.size}`);
        }
        options.onProgress?.(bytes, options.size);
        return { bytes, requests, restarts };
      }
      throw new Retry('the response ended before the artifact was complete');
    } catch (error) {
      if (error instanceof OtaError) throw error;
      // Cut by the abort (shutdown, a changed spec): not a failure of the link to report or retry.
      if (options.signal?.aborted) throw new OtaError('Aborted', 'download aborted', { terminal: false });
      const now = existsSync(options.file) ? statSync(options.file).size : 0;
      failures = now > before ? 1 : failures + 1;
      options.onAttempt?.({ attempt: requests, from: before, error: (error as Error).message });
      if (failures >= maxAttempts) {
        throw new OtaError('DownloadFailed', `${options.url}: ${(error as Error).message} (${failures} attempts without progress)`, { cause: error, terminal: false });
      }
      const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (failures - 1));
      await sleep(delay * (0.5 + Math.random() / 2), options.signal);
    }
  }
}

function readMeta(file: string): Meta | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Meta;
  } catch {
    return undefined;
  }
}

type AttemptOutcome = { complete: boolean; restarted: boolean; meta: Meta };

/**
 * One request; resolves with complete=false when the body ended early without an error. The
 * signal spans the whole download, so the abort listener belongs to the attempt and leaves with it:
 * otherwise every retry on a flaky link would leave one more behind on the signal.
 */
async function attempt(options: DownloadOptions, meta: Meta, have: number): Promise<AttemptOutcome> {
  let request: http.ClientRequest | undefined;
  const abort = () => request?.destroy(new Error('aborted'));
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    return await exchange(options, meta, have, (created) => (request = created));
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
}

async function exchange(options: DownloadOptions, meta: Meta, have: number, track: (request: http.ClientRequest) => void): Promise<AttemptOutcome> {
  const url = new URL(options.url);
  const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'sensorlet-ota' };
  const validator = meta.etag && !meta.etag.startsWith('W/') ? meta.etag : meta.lastModified;
  if (have > 0) {
    headers.range = `bytes=${have}-`;
    // Without a validator, a Range request could splice two versions of the artifact: ask for all.
    if (validator) headers['if-range'] = validator;
    else delete headers.range;
  }
  const client = url.protocol === 'https:' ? https : http;
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const request = client.request(url, { method: 'GET', headers, ...(url.protocol === 'https:' ? { ...(options.tls ?? {}), agent: false } : {}) }, resolve);
    request.on('error', reject);
    request.setTimeout(options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs, () => request.destroy(new Error('timed out waiting for the server')));
    track(request);
    request.end();
  });
  const status = response.statusCode ?? 0;
  options.onAttempt?.({ attempt: 0, from: headers.range ? have : 0, status });
  const nextMeta: Meta = { url: options.url, etag: header(response, 'etag'), lastModified: header(response, 'last-modified') };
  if (status === 416) {
    response.resume();
    if (have === options.size) return { complete: true, restarted: false, meta };
    truncateTo(options.file, 0);
    throw new Retry('416 Range Not Satisfiable: starting again');
  }
  if (status === 408 || status === 429 || status >= 500) {
    response.resume();
    throw new Retry(`HTTP ${status}`);
  }
  if (status !== 200 && status !== 206) {
    response.resume();
    throw new OtaError('DownloadFailed', `${options.url}: HTTP ${status}`);
  }
  let start = 0;
  let restarted = false;
  if (status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(response, 'content-range') ?? '');
    if (!range || Number(range[1]) !== have) {
      response.destroy();
      truncateTo(options.file, 0);
      throw new Retry(`unexpected Content-Range ${header(response, 'content-range')}: starting again`);
    }
    if (range[3] !== '*' && Number(range[3]) !== options.size) {
      response.destroy();
      rmSync(options.file, { force: true });
      throw new OtaError('SizeMismatch', `the server's artifact is ${range[3]} bytes; spec.artifact.size is ${options.size}`);
    }
    start = have;
  } else {
    // 200: Range ignored, or If-Range said the artifact changed. Never splice: start from zero.
    restarted = have > 0;
    const length = header(response, 'content-length');
    if (length !== undefined && Number(length) !== options.size) {
      response.destroy();
      rmSync(options.file, { force: true });
      throw new OtaError('SizeMismatch', `the server's artifact is ${length} bytes; spec.artifact.size is ${options.size}`);
    }
  }
  // The validator goes to disk before the bytes it vouches for.
  writeFileDurable(`${options.file}.meta.json`, JSON.stringify(nextMeta));
  truncateTo(options.file, start);
  const expectedEnd = options.size;
  let written = start;
  const out = createWriteStream(options.file, { flags: 'a' });
  const began = Date.now();
  let paced = 0;
  // Flowing mode: every byte the socket delivered reaches the file even when the connection is then
  // cut (an async iterator would drop what it had buffered when the response errors).
  let holds = 0;
  const hold = () => holds++ === 0 && response.pause();
  const release = () => --holds === 0 && response.resume();
  let failure: Error | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      response.on('data', (chunk: Buffer) => {
        if (failure) return;
        if (written + chunk.length > options.size) {
          failure = new OtaError('SizeMismatch', `the server sent more than spec.artifact.size (${options.size} bytes)`);
          response.destroy();
          return reject(failure);
        }
        written += chunk.length;
        paced += chunk.length;
        if (!out.write(chunk)) {
          hold();
          out.once('drain', release);
        }
        options.onProgress?.(written, options.size);
        if (options.bandwidthLimit && options.bandwidthLimit > 0) {
          const wait = began + (paced / options.bandwidthLimit) * 1000 - Date.now();
          if (wait > 0) {
            hold();
            setTimeout(release, wait);
          }
        }
      });
      response.on('end', resolve);
      response.on('error', reject);
      response.on('close', () => (response.complete ? resolve() : reject(new Error('the connection closed before the body was complete'))));
    });
  } finally {
    out.end();
    await once(out, 'close').catch(() => undefined);
  }
  if (failure instanceof OtaError) {
    rmSync(options.file, { force: true });
    throw failure;
  }
  await fsyncFile(options.file);
  return { complete: written === options.size, restarted, meta: nextMeta };
}

function header(response: http.IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function truncateTo(file: string, size: number): void {
  if (!existsSync(file)) return;
  if (statSync(file).size !== size) truncateSync(file, size);
}

async function fsyncFile(file: string): Promise<void> {
  if (!existsSync(file)) return;
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Backoff that an abort cuts short; whichever ends it first removes the other. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // A listener added to a signal already aborted never fires: do not wait out the backoff.
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
