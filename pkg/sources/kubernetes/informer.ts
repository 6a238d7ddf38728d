// A supervised informer: client-node's ListWatch (list, then watch from the list's version; a 410
// relists and reports deletions it missed) wrapped with what the library leaves to the caller:
// - restart with capped, jittered exponential backoff after any error (ListWatch stops on errors);
// - a guard against a server that ends every watch at once (ListWatch re-watches immediately);
// - `relist()`: a fresh ListWatch from scratch, with objects that vanished reported as deleted;
// - `synced`: the first full listing has been delivered.
// Handlers see raw API objects; they must be idempotent (a relist re-delivers everything).
import type { KubernetesObject, ListWatch } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import { apiErrorFrom, type KubernetesConnection } from './connection.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

export interface InformerHandlers {
  upsert(object: KubernetesObject): void;
  remove(object: KubernetesObject): void;
}

export interface SupervisedInformerOptions {
  connection: KubernetesConnection;
  /** Collection path, e.g. `/apis/sensorlet.io/v1alpha1/sensors` or `/api/v1/nodes`. */
  path: string;
  fieldSelector?: string;
  /** Only objects with these labels (e.g. `sensorlet.io/heartbeat=true`): the server filters, so others cost nothing. */
  labelSelector?: string;
  handlers: InformerHandlers;
  logger: Logger;
  backoff?: BackoffOptions;
  onSynced?: () => void;
  /**
   * A 404 on the collection (its CRD is not installed, e.g. an upgrade that skipped new CRDs)
   * lists as empty, so the other kinds still sync and run; the watch keeps retrying with backoff
   * and picks the kind up once the CRD appears.
   */
  tolerateMissing?: boolean;
}

/** More watch (re)connects than this within CONNECT_WINDOW_MS means the server drops us at once. */
const MAX_CONNECTS_PER_WINDOW = 5;
const CONNECT_WINDOW_MS = 1_000;

export class SupervisedInformer {
  private current: ListWatch<KubernetesObject> | undefined;
  private stopped = true;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private listCount = 0;
  private syncedOnce = false;
  /** Watch starts in the last CONNECT_WINDOW_MS, and how many windows in a row were overfull. */
  private connects: number[] = [];
  private stormStreak = 0;
  /** What a replaced instance held, until a new instance has listed and deletions can be computed. */
  private carryOver: readonly KubernetesObject[] | undefined;
  private readonly backoff: BackoffOptions;

  constructor(private readonly options: SupervisedInformerOptions) {
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  /** The cached objects of the current ListWatch. */
  list(): readonly KubernetesObject[] {
    return this.current?.list() ?? [];
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.startFresh();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const instance = this.current;
    if (instance) await instance.stop();
  }

  /** Lists everything again with a new ListWatch; what the old cache held and the list lacks is removed. */
  async relist(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.startFresh();
  }

  // A stopped ListWatch is never started again: stopping aborts its live watch, and the abort
  // arrives later as an error that would kill a newer watch of the same instance.
  private async startFresh(): Promise<void> {
    const previous = this.current;
    if (previous) {
      this.carryOver ??= previous.list();
      this.current = undefined;
      await previous.stop();
    }
    const instance = this.create();
    this.current = instance;
    await this.run(instance);
  }

  private async run(instance: ListWatch<KubernetesObject>): Promise<void> {
    const listsBefore = this.listCount;
    await instance.start();
    if (this.listCount === listsBefore || instance !== this.current || this.stopped) return;
    if (this.carryOver) {
      const present = new Set(instance.list().map(identity));
      const vanished = this.carryOver.filter((object) => !present.has(identity(object)));
      this.carryOver = undefined;
      for (const object of vanished) this.options.handlers.remove(object);
    }
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      this.options.onSynced?.();
    }
  }

  private create(): ListWatch<KubernetesObject> {
    const { connection, path, fieldSelector, labelSelector, handlers, logger } = this.options;
    const client = connection.client;
    let instance: ListWatch<KubernetesObject> | undefined;
    const mine = () => instance !== undefined && instance === this.current && !this.stopped;
    const stormDelay = () => this.stormDelay();
    const markHealthy = () => {
      this.failures = 0;
    };
    // Bookmarks advance the resume version, so a dropped watch resumes instead of relisting. The
    // storm delay is applied here because ListWatch re-watches at once when a stream ends.
    class SupervisedWatch extends client.Watch {
      override async watch(...args: Parameters<InstanceType<typeof client.Watch>['watch']>): Promise<AbortController> {
        const [watchPath, query, callback, done] = args;
        const delay = stormDelay();
        if (delay > 0) {
          logger.warn({ path, retryInMs: delay }, 'watch ends as soon as it starts; backing off');
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
        if (!mine()) {
          // Retired while waiting: do not connect, and leave this instance idle.
          const idle = new AbortController();
          idle.abort();
          return idle;
        }
        const healthy: typeof callback = (phase, object, event) => {
          markHealthy();
          callback(phase, object, event);
        };
        return super.watch(watchPath, { ...query, allowWatchBookmarks: true }, healthy, done);
      }
    }
    const listFn = async () => {
      const response = await connection.request('GET', path, { query: { fieldSelector, labelSelector } });
      if (response.status === 404 && this.options.tolerateMissing) {
        logger.warn({ path }, 'the collection does not exist (is its CRD installed? kubectl apply -f manifests/crds/); treating it as empty and retrying');
        this.listCount++;
        return { items: [], metadata: {} };
      }
      if (response.status !== 200) throw apiErrorFrom('GET', path, response);
      const list = response.body as { items?: KubernetesObject[]; metadata?: { resourceVersion?: string } };
      this.listCount++;
      this.failures = 0;
      logger.debug({ path, items: list.items?.length ?? 0, resourceVersion: list.metadata?.resourceVersion }, 'listed');
      return { ...list, items: list.items ?? [] };
    };
    const created = new client.ListWatch<KubernetesObject>(path, new SupervisedWatch(connection.config), listFn, false, labelSelector, fieldSelector);
    instance = created;
    created.on('add', (object) => mine() && handlers.upsert(object));
    created.on('update', (object) => mine() && handlers.upsert(object));
    created.on('delete', (object) => mine() && handlers.remove(object));
    created.on('error', (error) => {
      if (mine()) this.scheduleRestart(created, error);
    });
    return created;
  }

  private stormDelay(): number {
    const now = Date.now();
    this.connects = this.connects.filter((at) => now - at < CONNECT_WINDOW_MS);
    this.connects.push(now);
    if (this.connects.length <= MAX_CONNECTS_PER_WINDOW) {
      this.stormStreak = 0;
      return 0;
    }
    this.stormStreak++;
    return this.delayFor(this.stormStreak);
  }

  private delayFor(attempt: number): number {
    const exponential = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(attempt - 1, 20));
    // Jitter so a fleet of agents does not reconnect to the API server in lockstep.
    return Math.round(exponential * (0.8 + Math.random() * 0.4));
  }

  // After an error the ListWatch has already closed its request, so the same instance can be
  // started again: it resumes the watch from its last version (or relists after a 410).
  private scheduleRestart(instance: ListWatch<KubernetesObject>, error: unknown): void {
    if (this.stopped || instance !== this.current || this.restartTimer) return;
    this.failures++;
    const delay = this.delayFor(this.failures);
    this.options.logger.warn({ path: this.options.path, err: errorText(error), retryInMs: delay, failures: this.failures }, 'informer failed; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped || instance !== this.current) return;
      void this.run(instance);
    }, delay);
  }
}

function identity(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
