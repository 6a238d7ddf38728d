// The console's live feed: Server-Sent Events on GET /console/events. A new client gets a
// `snapshot` (every resource, every Sensor's recent points); then all clients get one `update` a
// second at most, holding only what changed: resources whose view differs, resources gone, and
// the points each Sensor added since the last update.
//
// Cost is paid only while someone watches: the timer runs while a client is connected, and one
// update is built per tick for all clients. Budgets: MAX_CLIENTS streams at once, and a client that
// does not read (its unsent bytes pass MAX_UNSENT_BYTES) is cut; its page reconnects and starts over
// with a snapshot. A snapshot is written in slices, waiting for the socket to drain (a thousand
// Sensors' history is megabytes); the page gets no updates meanwhile, and one catch-up update
// after it with whatever changed since each part was written.
import { once } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type http from 'node:http';
import type { ResourceList } from '../admin/server.js';
import type { ReadingHistory, Series } from './history.js';
import { clip, resourceView, type ListedItem } from './view.js';

export const TICK_MS = 1000;
export const MAX_CLIENTS = 8;
const MAX_UNSENT_BYTES = 1024 * 1024;
/** The longest a snapshot waits for the page to take the next slice; then the page is cut. */
export const SNAPSHOT_STALL_MS = 30_000;
/** Points per Sensor in a snapshot: a sparkline is ~160 px wide; live points then come one a second. */
export const SNAPSHOT_POINTS = 150;
/** Bytes gathered before a write. */
const WRITE_BYTES = 64 * 1024;
/** A quiet stream still sends a comment this often, so that proxies and the page see it alive. */
const KEEPALIVE_MS = 15_000;
/** The longest one tick works before it lets the event loop turn (thousands of resources). */
const SLICE_MS = 10;
/** Acknowledged-readings samples kept per Sink: the delivery rate is averaged over this many seconds. */
const DELIVERY_WINDOW = 10;

/** Who the agent is, for the page's header. Nothing secret: the same as `sensorlet get` and /metrics show. */
export interface AgentOverview {
  device: string;
  node: string;
  version: string;
  slot?: string;
  startedAt: string;
  ready: boolean;
}

export interface ConsoleSources {
  overview(): AgentOverview;
  /** The admin API's resource list (GET /api/v1/resources). */
  resources(): ResourceList;
  /** The samples of the Sinks' acknowledged-readings counter (prom-client's `get()`), labelled by sink. */
  acknowledged(): Promise<{ values?: MetricSample[] }>;
  history: ReadingHistory;
  now?: () => number;
}

export interface MetricSample {
  labels?: Record<string, string | number>;
  value: number;
}

export class ConsoleFeed {
  private readonly clients = new Set<http.ServerResponse>();
  /** Pages whose snapshot is being written: they skip updates, and catch up after it. */
  private readonly joining = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The first tick after nobody watched: every snapshot waits for it (views are empty before). */
  private primed: Promise<void> | undefined;
  private lastWrite = 0;
  /** Each resource's view as last sent, as JSON: a tick sends the ones that differ. */
  private readonly views = new Map<string, string>();
  private errorsJson = '[]';
  private overviewJson = '';
  /** Per Sensor, the newest point's second already sent. */
  private readonly sentUpTo = new Map<string, number>();
  /** Per Sink key, recent samples of its acknowledged-readings total. */
  private readonly delivered = new Map<string, { at: number; total: number }[]>();
  private closed = false;
  private readonly now: () => number;

  constructor(
    private readonly sources: ConsoleSources,
    private readonly snapshotStallMs = SNAPSHOT_STALL_MS,
  ) {
    this.now = sources.now ?? Date.now;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Answers GET /console/events (already authenticated by the admin server). */
  async subscribe(_request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (this.closed || this.clients.size >= MAX_CLIENTS) {
      response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' });
      response.end(`the console serves at most ${MAX_CLIENTS} live pages at once\n`);
      return;
    }
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-accel-buffering': 'no',
    });
    response.socket?.setNoDelay(true);
    this.clients.add(response);
    this.joining.add(response);
    // The response closes when the page goes away (its connection ends) or the stream is cut.
    response.once('close', () => this.unsubscribe(response));
    // The first page starts the feed: the state must be current before any snapshot is built from
    // it, including those of pages that arrive while that first tick runs.
    this.primed ??= this.runTick(false);
    await this.primed;
    if (response.destroyed || !this.clients.has(response)) return;
    if (!this.timer) {
      this.timer = setInterval(() => void this.runTick(true), TICK_MS);
      this.timer.unref();
    }
    await this.writeSnapshot(response);
  }

  /** Ends every stream (the admin server is closing). */
  close(): void {
    this.closed = true;
    for (const response of this.clients) response.end();
    this.clients.clear();
    this.stop();
  }

  private unsubscribe(response: http.ServerResponse): void {
    this.joining.delete(response);
    if (!this.clients.delete(response)) return;
    if (this.clients.size === 0) this.stop();
  }

  /** Nobody watches: no timer, and nothing kept but the rings (which the agent keeps anyway). */
  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.primed = undefined;
    this.joining.clear();
    this.views.clear();
    this.sentUpTo.clear();
    this.delivered.clear();
    this.errorsJson = '[]';
    this.overviewJson = '';
  }

  private runTick(broadcast: boolean): Promise<void> {
    // A tick that takes longer than a second (a huge resource list) is not stacked up.
    this.ticking ??= this.tick(broadcast).finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async tick(broadcast: boolean): Promise<void> {
    const now = this.now();
    const deliveredTotals = await this.publishedTotals();
    const list = this.sources.resources();
    const changed: string[] = [];
    const seen = new Set<string>();
    const sensorKeys = new Set<string>();
    const points: Record<string, Series> = {};
    const context = {
      history: this.sources.history,
      now,
      deliveryRate: (key: string, name: string, namespace: string) => this.deliveryRate(key, deliveredTotals(name, namespace), now),
    };
    let sliceStarted = performance.now();
    for (const item of list.items as Iterable<ListedItem>) {
      const view = resourceView(item, context);
      seen.add(view.key);
      const json = JSON.stringify(view);
      if (this.views.get(view.key) !== json) {
        this.views.set(view.key, json);
        changed.push(json);
      }
      if (view.kind === 'Sensor') {
        sensorKeys.add(view.key);
        const newest = this.sources.history.lastSecond(view.key);
        const sent = this.sentUpTo.get(view.key) ?? -1;
        if (newest > sent) {
          const series = this.sources.history.series(view.key, sent);
          if (series) points[view.key] = series;
          this.sentUpTo.set(view.key, newest);
        }
      }
      if (performance.now() - sliceStarted >= SLICE_MS) {
        await nextTurn();
        sliceStarted = performance.now();
      }
    }
    const removed = [...this.views.keys()].filter((key) => !seen.has(key));
    for (const key of removed) {
      this.views.delete(key);
      this.sentUpTo.delete(key);
      this.delivered.delete(key);
    }
    // Rings of Sensors that are gone (deleted, or not for this node) are dropped here.
    this.sources.history.retain(sensorKeys);
    const errorsJson = JSON.stringify(orphanErrors(list.errors));
    const errorsChanged = errorsJson !== this.errorsJson;
    this.errorsJson = errorsJson;
    const overviewJson = JSON.stringify(this.sources.overview());
    const overviewChanged = overviewJson !== this.overviewJson;
    this.overviewJson = overviewJson;
    if (!broadcast) return;
    // Nothing new: no update (the page counts uptime and ages on its own clock), only a keep-alive now and then.
    const quiet = changed.length === 0 && removed.length === 0 && Object.keys(points).length === 0 && !errorsChanged && !overviewChanged;
    if (quiet) {
      if (now - this.lastWrite >= KEEPALIVE_MS) for (const response of this.clients) this.write(response, ': keep-alive\n\n');
      return;
    }
    const parts = [`"now":${now}`, `"agent":${overviewJson}`];
    if (changed.length) parts.push(`"changed":[${changed.join(',')}]`);
    if (removed.length) parts.push(`"removed":${JSON.stringify(removed)}`);
    if (Object.keys(points).length) parts.push(`"points":${JSON.stringify(points)}`);
    if (errorsChanged) parts.push(`"errors":${errorsJson}`);
    const text = event('update', `{${parts.join(',')}}`);
    for (const response of this.clients) this.write(response, text);
  }

  /**
   * The page's first event: every resource, every Sensor's recent points (at most SNAPSHOT_POINTS
   * each), written in slices of at most SLICE_MS of work, waiting for the socket when it is full;
   * then one update with what changed while it was written. Only references to what was written
   * are kept meanwhile, never queued updates: a slow page costs no memory.
   */
  private async writeSnapshot(response: http.ServerResponse): Promise<void> {
    const written = new Map<string, string>();
    const pointsUpTo = new Map<string, number>();
    let buffered = `retry: 2000\nevent: snapshot\ndata: {"now":${this.now()},"agent":${this.overviewJson},"resources":[`;
    let sliceStarted = performance.now();
    const flush = async () => {
      const chunk = buffered;
      buffered = '';
      if (response.destroyed || response.write(chunk)) return;
      let timer: NodeJS.Timeout | undefined;
      const stalled = await Promise.race([
        once(response, 'drain').then(() => false),
        once(response, 'close').then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.snapshotStallMs))),
      ]);
      clearTimeout(timer);
      if (stalled) response.destroy();
    };
    const put = async (text: string) => {
      buffered += text;
      if (buffered.length < WRITE_BYTES && performance.now() - sliceStarted < SLICE_MS) return;
      await flush();
      await nextTurn();
      sliceStarted = performance.now();
    };
    let first = true;
    // A copy of the keys: ticks change the views while the snapshot waits on the socket.
    const keys = [...this.views.keys()];
    for (const key of keys) {
      const json = this.views.get(key);
      if (json === undefined) continue;
      written.set(key, json);
      await put(`${first ? '' : ','}${json}`);
      first = false;
      if (response.destroyed) return;
    }
    await put(`],"errors":${this.errorsJson},"series":{`);
    first = true;
    for (const key of keys) {
      if (!key.startsWith('Sensor/')) continue;
      pointsUpTo.set(key, this.sources.history.lastSecond(key));
      const series = this.sources.history.series(key, -1, SNAPSHOT_POINTS);
      if (!series) continue;
      await put(`${first ? '' : ','}${JSON.stringify(key)}:${JSON.stringify(series)}`);
      first = false;
      if (response.destroyed) return;
    }
    buffered += '}}\n\n';
    await flush();
    if (response.destroyed) return;
    this.joining.delete(response);
    // The catch-up: views that changed or went away since they were written, points since then.
    const changed = [...this.views].filter(([key, json]) => written.get(key) !== json).map(([, json]) => json);
    const removed = [...written.keys()].filter((key) => !this.views.has(key));
    const points: Record<string, Series> = {};
    for (const key of this.views.keys()) {
      if (!key.startsWith('Sensor/') || this.sources.history.lastSecond(key) <= (pointsUpTo.get(key) ?? -1)) continue;
      const series = this.sources.history.series(key, pointsUpTo.get(key) ?? -1);
      if (series) points[key] = series;
    }
    if (changed.length === 0 && removed.length === 0 && Object.keys(points).length === 0) return;
    this.write(response, event('update', `{"now":${this.now()},"agent":${this.overviewJson},"changed":[${changed.join(',')}],"removed":${JSON.stringify(removed)},"points":${JSON.stringify(points)},"errors":${this.errorsJson}}`));
  }

  private write(response: http.ServerResponse, text: string): void {
    if (response.destroyed) return;
    // Its snapshot is still being written: it catches up after it.
    if (this.joining.has(response)) return;
    // A page that stopped reading (a frozen tab, a dead link) would make the agent hold every
    // update for it: past the budget it is cut, and starts over when it comes back.
    if (response.writableLength > MAX_UNSENT_BYTES) {
      response.destroy();
      this.unsubscribe(response);
      return;
    }
    response.write(text);
    this.lastWrite = this.now();
  }

  /**
   * The Sinks' acknowledged-readings totals, by name (and namespace, where the counter has one);
   * 0 for a Sink that has no series yet (nothing acknowledged).
   */
  private async publishedTotals(): Promise<(name: string, namespace: string) => number> {
    const samples = (await this.sources.acknowledged()).values ?? [];
    return (name, namespace) => {
      let total = 0;
      for (const sample of samples) {
        const labels = sample.labels ?? {};
        if (labels.sink !== name) continue;
        if (labels.namespace !== undefined && labels.namespace !== namespace) continue;
        total += sample.value;
      }
      return total;
    };
  }

  /** Readings per second acknowledged over the last DELIVERY_WINDOW seconds. */
  private deliveryRate(key: string, total: number, now: number): number | undefined {
    const samples = this.delivered.get(key) ?? [];
    samples.push({ at: now, total });
    while (samples.length > DELIVERY_WINDOW + 1) samples.shift();
    this.delivered.set(key, samples);
    const first = samples[0];
    const seconds = (now - first.at) / 1000;
    if (seconds <= 0) return undefined;
    return Math.round(((total - first.total) / seconds) * 1000) / 1000;
  }
}

function event(name: string, data: string): string {
  return `event: ${name}\ndata: ${data}\n\n`;
}

/** Files that could not be read as resources, as the page lists them (bounded). */
function orphanErrors(errors: unknown): { file?: string; line?: number; errors: { path: string; message: string; reason: string }[] }[] {
  if (!Array.isArray(errors)) return [];
  return errors.slice(0, 50).map((orphan: { origin?: { file?: unknown; line?: unknown }; errors?: unknown }) => ({
    file: clip(orphan.origin?.file, 512),
    line: typeof orphan.origin?.line === 'number' ? orphan.origin.line : undefined,
    errors: (Array.isArray(orphan.errors) ? orphan.errors : []).slice(0, 10).map((error: Record<string, unknown>) => ({
      path: clip(error.path) ?? '',
      message: clip(error.message, 1000) ?? '',
      reason: clip(error.reason, 128) ?? '',
    })),
  }));
}

