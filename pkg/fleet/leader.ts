// What the elected agent does: folds every NodeReport into each resource's status and watches the
// fleet's heartbeats. Only the leader runs this, so only the leader receives other nodes' reports
// and heartbeat Leases (label selectors), and its cost is one status write per resource whose
// roll-up changed, never one per node.
//
// - A node whose heartbeat Lease was not renewed for `nodeGraceMs` (40 s) counts as Unknown. Time
//   is observed on this agent's clock (when the Lease's renewTime last changed), like the node
//   lifecycle controller, so clock skew between nodes does not matter; a Lease seen for the first
//   time is dated by its renewTime (bounded by now), so a node dead before a failover is not given
//   a fresh 40 s.
// - Reports of Nodes that no longer exist are left out at once; the objects themselves go with
//   their Node (ownerReference, the garbage collector).
// - Each roll-up is a JSON merge patch of the status subresource that also removes `status.nodes`,
//   the per-node entries earlier versions wrote: an upgrade cleans them up on the first roll-up.
//   Every `rewriteIntervalMs` (10 min) each roll-up is sent again even if unchanged, so entries an
//   agent of the earlier version wrote during a rolling upgrade go too (an unchanged status is a
//   no-op for the API server: no new resourceVersion, no watch event).
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
  /** Send every roll-up again after this long, changed or not; default 10 minutes. */
  rewriteIntervalMs?: number;
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
  private lastRewriteAt = Date.now();
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
    const heartbeat = this.heartbeats.get(node);
    return !heartbeat || now - heartbeat.at > this.options.nodeGraceMs;
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
    if (Date.now() - this.lastRewriteAt >= (this.options.rewriteIntervalMs ?? 10 * 60_000)) {
      this.lastRewriteAt = Date.now();
      this.written.clear();
    }
    const all = this.computeAll();
    for (const [key, status] of all) {
      if (this.stopped) return;
      const text = JSON.stringify(status);
      if (this.written.get(key) === text) continue;
      const [kind, namespace, name] = key.split('/') as [Kind, string, string];
      if (await this.writeStatus(kind, namespace, name, status)) {
        this.written.set(key, text);
        this.lastRollupAt.set(key, Date.now());
      }
    }
    for (const key of this.written.keys()) if (!all.has(key)) this.written.delete(key);
  }

  private async writeStatus(kind: Kind, namespace: string, name: string, status: RolledUpStatus): Promise<boolean> {
    const path = `/apis/${API_GROUP}/v1alpha1/namespaces/${encodeURIComponent(namespace)}/${KIND_NAMES[kind].plural}/${encodeURIComponent(name)}/status`;
    // Merge patch: absent fields are null (removed), so a roll-up leaves no field of an older one.
    const body = { status: { observedGeneration: null, ...status, nodes: null } };
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
