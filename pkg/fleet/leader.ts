// What the elected agent does: folds every NodeReport into each resource's status and watches the
// fleet's heartbeats. Only the leader runs this, so only the leader receives other nodes' reports
// and heartbeat Leases (label selectors), and its cost is one status write per resource whose
// roll-up changed, never one per node.
//
// - A node whose heartbeat Lease was not renewed for `nodeGraceMs` (40 s) counts as Unknown. Time
//   is observed on this agent's clock (when the Lease's renewTime last changed), like the node
//   lifecycle controller, so clock skew between nodes does not matter; a Lease seen for the first
//   time is dated by its renewTime (bounded by now), so a node dead before a failover is not given
//   a fresh 40 s. A leader writes no heartbeat (the leader lease is its sign of life), so the
//   leader's own node is alive by definition, and the node it took the lease over from is dated by
//   the last renewal of the leader lease it saw (the predecessor resumes its heartbeat the moment
//   it steps down, so while alive it never looks stale; once killed it is Unknown 40 s after its
//   last renewal).
// - Reports of Nodes that no longer exist are left out at once; the objects themselves go with
//   their Node (ownerReference, the garbage collector).
// - Each roll-up is a JSON merge patch of the status subresource that also removes `status.nodes`,
//   the per-node entries earlier versions wrote: an upgrade cleans them up on the first roll-up.
//   On becoming leader and every `rewriteIntervalMs` (10 min) after, the leader lists the resources
//   and writes each one whose stored status the roll-up's patch would change, so entries an agent
//   of the earlier version wrote during a rolling upgrade go too; in steady state that costs a few
//   list reads and no write, and a new leader rewrites nothing its predecessor already wrote.
import { isDeepStrictEqual } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { API_GROUP, type Kind } from '../api/schemas.js';
import { KIND_NAMES } from '../api/crds.js';
import type { Logger } from '../observability/logger.js';
import { apiErrorFrom, type KubernetesConnection } from '../sources/kubernetes/connection.js';
import { SupervisedInformer } from '../sources/kubernetes/informer.js';
import { HEARTBEAT_LABEL, LEASES_API, NODE_LABEL, type LeaseObject } from './lease.js';
import { reportsPath, type NodeReportObject } from './report.js';
import { HEARTBEAT_STALE_REASON, rollUp, type NodeOutcome, type RolledUpStatus } from './rollup.js';

/** The declared resources the roll-up writes to (the agent's store). */
export interface ResourceCatalog {
  list(): readonly { kind: Kind; namespace: string; name: string }[];
}

export interface FleetLeaderOptions {
  connection: KubernetesConnection;
  /** The agent namespace: where reports and heartbeat Leases live. */
  namespace: string;
  resources: ResourceCatalog;
  nodeGraceMs: number;
  rollupIntervalMs: number;
  /** Compare every stored status with its roll-up after this long (and at start); default 10 minutes. */
  rewriteIntervalMs?: number;
  /** This agent's node: alive while it leads (it renews the leader lease instead of its heartbeat). */
  selfNode: string;
  /** The node this agent took the leader lease over from, and when it last saw that node renew it (our clock). */
  predecessor?: { identity: string; lastSeenAt: number };
  logger: Logger;
}

const HEARTBEAT_STALE_MESSAGE = "the node's heartbeat Lease has not been renewed within the grace period; its last report may be stale";

export class FleetLeader {
  private readonly reports = new Map<string, NodeReportObject>();
  /** node → when its heartbeat last changed, on our clock. */
  private readonly heartbeats = new Map<string, { renewTime: string | undefined; at: number }>();
  private readonly nodes = new Set<string>();
  private readonly informers: SupervisedInformer[];
  /** key → the status last written (JSON), to write only what changed. */
  private readonly written = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** When every stored status was last compared with its roll-up (0: at the first pass). */
  private lastRewriteAt = 0;
  statusWrites = 0;
  statusFailures = 0;
  /** When each key's roll-up last changed on the server (for tests and the bench). */
  readonly lastRollupAt = new Map<string, number>();

  constructor(private readonly options: FleetLeaderOptions) {
    const { connection, namespace, logger } = options;
    const informer = (path: string, labelSelector: string | undefined, upsert: (o: KubernetesObject) => void, remove: (o: KubernetesObject) => void) =>
      new SupervisedInformer({ connection, path, labelSelector, handlers: { upsert, remove }, logger: logger.child({ path }) });
    this.informers = [
      informer(reportsPath(namespace), NODE_LABEL, (object) => this.reports.set(object.metadata!.name!, object as NodeReportObject), (object) => this.reports.delete(object.metadata!.name!)),
      informer(
        `${LEASES_API}/namespaces/${encodeURIComponent(namespace)}/leases`,
        `${HEARTBEAT_LABEL}=true`,
        (object) => this.observeHeartbeat(object as unknown as LeaseObject),
        (object) => this.heartbeats.delete((object as unknown as LeaseObject).metadata.labels?.[NODE_LABEL] ?? ''),
      ),
      informer('/api/v1/nodes', undefined, (object) => this.nodes.add(object.metadata!.name!), (object) => this.nodes.delete(object.metadata!.name!)),
    ];
  }

  get synced(): boolean {
    return this.informers.every((informer) => informer.synced);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await Promise.all(this.informers.map((informer) => informer.start()));
    const tick = () => {
      if (this.stopped) return;
      this.running = this.rollUpAll()
        .catch((error) => this.options.logger.warn({ err: String(error) }, 'fleet roll-up failed'))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.options.rollupIntervalMs);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await Promise.all(this.informers.map((informer) => informer.stop()));
  }

  /** Every resource's roll-up as it stands now (what the next pass writes). */
  computeAll(now = Date.now()): Map<string, RolledUpStatus> {
    const outcomes = new Map<string, NodeOutcome[]>();
    for (const report of this.reports.values()) {
      const node = report.nodeName;
      // A report of a Node that no longer exists is not part of the fleet (the GC deletes it).
      if (!this.nodes.has(node)) continue;
      const stale = this.isStale(node, now);
      for (const resource of report.resources ?? []) {
        const key = `${resource.kind}/${resource.namespace}/${resource.name}`;
        const outcome: NodeOutcome = stale
          ? { name: node, state: 'Unknown', reason: HEARTBEAT_STALE_REASON, message: HEARTBEAT_STALE_MESSAGE }
          : { name: node, state: resource.state, ...(resource.reason ? { reason: resource.reason } : {}), ...(resource.message ? { message: resource.message } : {}) };
        if (!stale && resource.observedGeneration !== undefined) outcome.observedGeneration = resource.observedGeneration;
        const list = outcomes.get(key);
        if (list) list.push(outcome);
        else outcomes.set(key, [outcome]);
      }
    }
    const result = new Map<string, RolledUpStatus>();
    for (const resource of this.options.resources.list()) {
      const key = `${resource.kind}/${resource.namespace}/${resource.name}`;
      result.set(key, rollUp(outcomes.get(key) ?? []));
    }
    return result;
  }

  private isStale(node: string, now: number): boolean {
    if (node === this.options.selfNode) return false;
    const heartbeatAt = this.heartbeats.get(node)?.at ?? -Infinity;
    const predecessor = this.options.predecessor;
    const leaseAt = predecessor?.identity === node ? predecessor.lastSeenAt : -Infinity;
    return now - Math.max(heartbeatAt, leaseAt) > this.options.nodeGraceMs;
  }

  private observeHeartbeat(lease: LeaseObject): void {
    const node = lease.metadata.labels?.[NODE_LABEL];
    if (!node) return;
    const renewTime = lease.spec?.renewTime;
    const previous = this.heartbeats.get(node);
    if (previous?.renewTime === renewTime) return;
    const now = Date.now();
    const at = previous ? now : Math.min(now, Date.parse(renewTime ?? '') || now);
    this.heartbeats.set(node, { renewTime, at });
  }

  private async rollUpAll(): Promise<void> {
    if (!this.synced) return;
    const all = this.computeAll();
    // Now and then, what the API server holds decides what to write, not what this leader last wrote.
    const stored = Date.now() - this.lastRewriteAt >= (this.options.rewriteIntervalMs ?? 10 * 60_000) ? await this.storedStatuses(all.keys()) : undefined;
    if (stored?.complete) this.lastRewriteAt = Date.now();
    for (const [key, status] of all) {
      if (this.stopped) return;
      const text = JSON.stringify(status);
      const onServer = stored?.statuses.get(key);
      if (onServer === 'absent') continue; // deleted meanwhile: nothing to roll up into
      const upToDate = onServer ? isDeepStrictEqual(mergePatched(onServer, statusPatch(status)), onServer) : this.written.get(key) === text;
      if (upToDate) {
        this.written.set(key, text);
        continue;
      }
      const [kind, namespace, name] = key.split('/') as [Kind, string, string];
      if (await this.writeStatus(kind, namespace, name, status)) {
        this.written.set(key, text);
        this.lastRollupAt.set(key, Date.now());
      }
    }
    for (const key of this.written.keys()) if (!all.has(key)) this.written.delete(key);
  }

  /** The status each resource has on the API server (a list per kind and namespace; reads, not writes). */
  private async storedStatuses(keys: Iterable<string>): Promise<{ statuses: Map<string, Record<string, unknown> | 'absent'>; complete: boolean }> {
    const groups = new Map<string, { kind: Kind; namespace: string; keys: string[] }>();
    for (const key of keys) {
      const [kind, namespace] = key.split('/') as [Kind, string];
      const group = groups.get(`${kind}/${namespace}`) ?? { kind, namespace, keys: [] };
      group.keys.push(key);
      groups.set(`${kind}/${namespace}`, group);
    }
    const statuses = new Map<string, Record<string, unknown> | 'absent'>();
    let complete = true;
    for (const { kind, namespace, keys: groupKeys } of groups.values()) {
      const path = `/apis/${API_GROUP}/v1alpha1/namespaces/${encodeURIComponent(namespace)}/${KIND_NAMES[kind].plural}`;
      try {
        const response = await this.options.connection.request('GET', path);
        if (response.status !== 200) throw apiErrorFrom('GET', path, response);
        const byName = new Map(((response.body as { items?: KubernetesObject[] }).items ?? []).map((item) => [item.metadata?.name, ((item as { status?: Record<string, unknown> }).status ?? {})]));
        for (const key of groupKeys) statuses.set(key, byName.get(key.split('/')[2]) ?? 'absent');
      } catch (error) {
        // Those resources are compared with what this leader last wrote; the comparison is tried again next pass.
        complete = false;
        this.options.logger.warn({ path, err: String(error) }, 'could not list stored statuses; will retry');
      }
    }
    return { statuses, complete };
  }

  private async writeStatus(kind: Kind, namespace: string, name: string, status: RolledUpStatus): Promise<boolean> {
    const path = `/apis/${API_GROUP}/v1alpha1/namespaces/${encodeURIComponent(namespace)}/${KIND_NAMES[kind].plural}/${encodeURIComponent(name)}/status`;
    const body = { status: statusPatch(status) };
    try {
      const response = await this.options.connection.request('PATCH', path, { body: JSON.stringify(body), contentType: 'application/merge-patch+json' });
      if (response.status === 200) {
        this.statusWrites++;
        return true;
      }
      if (response.status === 404) return true; // deleted meanwhile: nothing to roll up into
      this.statusFailures++;
      this.options.logger.warn({ path, err: apiErrorFrom('PATCH', path, response).message }, 'fleet status write failed; will retry');
    } catch (error) {
      this.statusFailures++;
      this.options.logger.warn({ path, err: String(error) }, 'fleet status write failed; will retry');
    }
    return false;
  }
}

/** The merge patch of a roll-up: absent fields are null (removed), so a roll-up leaves no field of an older one. */
function statusPatch(status: RolledUpStatus): Record<string, unknown> {
  return JSON.parse(JSON.stringify({ observedGeneration: null, ...status, nodes: null })) as Record<string, unknown>;
}

/** RFC 7386 JSON merge patch applied to a copy of `target`. */
function mergePatched(target: unknown, patch: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else if (typeof value === 'object' && !Array.isArray(value)) result[key] = mergePatched(result[key], value as Record<string, unknown>);
    else result[key] = value;
  }
  return result;
}
