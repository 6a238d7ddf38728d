// coordination.k8s.io/v1 Leases: the node heartbeat (the kubelet's node Lease, renewed every 10 s)
// and leader election with client-go's semantics (tools/leaderelection):
// - a candidate GETs the lease every retry period; a lease held by another identity is taken over
//   only when its record has not changed for leaseDurationSeconds as observed on this agent's own
//   clock (observedTime: tolerant of clock skew between nodes, not of skew rate);
// - every write is an update carrying the resourceVersion read, so of two racing candidates exactly
//   one wins and the other gets 409 Conflict;
// - the leader renews every `renewIntervalMs` (5 s, a third of the lease: client-go renews every
//   retry period, 30 writes a minute, more than a kubelet's whole node budget), and every retry
//   period only after a failed renewal;
// - safety: the leader steps down (a timer, not the next attempt, so a hung request cannot delay
//   it) once the renew deadline has passed since the START of its last successful renewal, or when
//   it sees another holder. A successor takes over only after the record stayed unchanged for the
//   lease duration since it saw that renewal, which it can only have seen after it was sent, so
//   the old leader has stopped acting at least leaseDuration - renewDeadline (5 s) before;
// - on a clean stop it releases the lease (holder "", leaseDurationSeconds 1: client-go's
//   ReleaseOnCancel) so a successor need not wait.
import type { Logger } from '../observability/logger.js';
import { apiErrorFrom, type KubernetesConnection } from '../sources/kubernetes/connection.js';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface LeaseObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string>; ownerReferences?: OwnerReference[] };
  spec: LeaseSpec;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

export const LEASES_API = '/apis/coordination.k8s.io/v1';

export function leasesPath(namespace: string, name?: string): string {
  return `${LEASES_API}/namespaces/${encodeURIComponent(namespace)}/leases${name ? `/${encodeURIComponent(name)}` : ''}`;
}

/** Kubernetes MicroTime: RFC 3339 with six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Reads a lease: the object, or undefined when there is none. */
export async function getLease(connection: KubernetesConnection, namespace: string, name: string): Promise<LeaseObject | undefined> {
  const path = leasesPath(namespace, name);
  const response = await connection.request('GET', path);
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw apiErrorFrom('GET', path, response);
  return response.body as LeaseObject;
}

/** Creates (no resourceVersion) or updates (with it) a lease; `conflict` when another writer won. */
export async function writeLease(connection: KubernetesConnection, lease: LeaseObject): Promise<LeaseObject | 'conflict'> {
  const creating = !lease.metadata.resourceVersion;
  const path = creating ? leasesPath(lease.metadata.namespace) : leasesPath(lease.metadata.namespace, lease.metadata.name);
  const response = await connection.request(creating ? 'POST' : 'PUT', path, { body: JSON.stringify(lease), contentType: 'application/json' });
  if (response.status === 200 || response.status === 201) return response.body as LeaseObject;
  if (response.status === 409 || (!creating && response.status === 404)) return 'conflict';
  throw apiErrorFrom(creating ? 'POST' : 'PUT', path, response);
}

export interface LeaderElectorOptions {
  connection: KubernetesConnection;
  namespace: string;
  /** The election lease's name. */
  name: string;
  /** This candidate (the node name). */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** The leader's renewal period after a successful renewal; shorter than renewDeadlineMs. */
  renewIntervalMs: number;
  logger: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** The last record seen and when (on our clock) it last changed. */
  private observed: { spec: string; at: number } | undefined;
  /** When the last successful acquire or renewal was sent (not answered: see the safety note above). */
  private lastRenewedAt = 0;
  private lastAttemptSucceeded = false;
  private current: LeaseObject | undefined;
  private attempt: Promise<void> = Promise.resolve();
  /** The holder this candidate took an expired lease over from, and when its last record was seen (our clock). */
  private takenOverFrom: { identity: string; lastSeenAt: number } | undefined;

  constructor(private readonly options: LeaderElectorOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * When this agent leads after taking over an expired lease: the former holder and when its last
   * renewal was seen. The lease was that node's sign of life while it led (it writes no heartbeat
   * then), so the roll-up dates the node from it.
   */
  get predecessor(): { identity: string; lastSeenAt: number } | undefined {
    return this.takenOverFrom;
  }

  /** The holder of the lease as last observed (undefined before the first read). */
  get holder(): string | undefined {
    return this.current?.spec.holderIdentity || undefined;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /**
   * Stops campaigning; a leader releases the lease so another candidate can take over at once.
   * `release: false` leaves the lease as a crash would (benchmarks measure failover with it).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
    await this.attempt;
    if (!this.leading) return;
    if (options.release === false) {
      this.setLeading(false);
      return;
    }
    this.setLeading(false);
    const lease = this.current;
    if (!lease || lease.spec.holderIdentity !== this.options.identity) return;
    const now = Date.now();
    try {
      await writeLease(this.options.connection, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) } });
    } catch (error) {
      this.options.logger.warn({ err: String(error) }, 'could not release the leader lease; another agent takes over once it expires');
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.attempt = this.tick().finally(() => {
        // A leader renews on the renew interval, and retries every retry period after a failure;
        // candidates poll every retry period with client-go's JitterFactor 1.2.
        if (this.leading) this.schedule(this.lastAttemptSucceeded ? this.options.renewIntervalMs : this.options.retryPeriodMs);
        else this.schedule(this.options.retryPeriodMs * (1 + Math.random() * 0.2));
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const sentAt = Date.now();
    let acquired = false;
    try {
      acquired = await this.tryAcquireOrRenew(sentAt);
    } catch (error) {
      this.options.logger.debug({ err: String(error) }, 'leader election attempt failed');
    }
    if (this.stopped) return;
    // An answer that took longer than the renew deadline is too late to act on: the next attempt renews again.
    this.lastAttemptSucceeded = acquired && Date.now() - sentAt < this.options.renewDeadlineMs;
    if (this.lastAttemptSucceeded) {
      this.lastRenewedAt = sentAt;
      this.armDeadline();
      if (!this.leading) this.setLeading(true);
    } else if (this.leading && this.holder !== undefined && this.holder !== this.options.identity) {
      this.stepDown('another agent holds the leader lease');
    }
  }

  /** Steps down once the renew deadline has passed since the last successful renewal was sent. */
  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    const check = () => {
      const sinceRenewalMs = Date.now() - this.lastRenewedAt;
      if (!this.leading || this.stopped) return;
      if (sinceRenewalMs >= this.options.renewDeadlineMs) this.stepDown('could not renew the leader lease within the renew deadline');
      else this.deadlineTimer = setTimeout(check, this.options.renewDeadlineMs - sinceRenewalMs);
    };
    this.deadlineTimer = setTimeout(check, this.lastRenewedAt + this.options.renewDeadlineMs - Date.now());
  }

  private stepDown(why: string): void {
    clearTimeout(this.deadlineTimer);
    this.options.logger.warn({ holder: this.holder, sinceRenewalMs: Date.now() - this.lastRenewedAt, why }, 'lost the leader lease; stepping down');
    this.setLeading(false);
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    this.options.logger.info({ identity: this.options.identity, lease: this.options.name }, leading ? 'became the fleet leader' : 'no longer the fleet leader');
    try {
      if (leading) this.options.onStartedLeading();
      else this.options.onStoppedLeading();
    } catch (error) {
      this.options.logger.error({ err: String(error) }, 'leader election callback threw');
    }
  }

  private async tryAcquireOrRenew(now: number): Promise<boolean> {
    const { connection, namespace, name, identity } = this.options;
    const leaseDurationSeconds = Math.max(1, Math.round(this.options.leaseDurationMs / 1000));
    const existing = await getLease(connection, namespace, name);
    if (!existing) {
      const created = await writeLease(connection, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      });
      if (created === 'conflict') return false;
      this.takenOverFrom = undefined;
      this.observe(created, Date.now());
      return true;
    }
    this.observe(existing, Date.now());
    const record = existing.spec;
    const heldByOther = !!record.holderIdentity && record.holderIdentity !== identity;
    if (heldByOther && this.observed!.at + (record.leaseDurationSeconds ?? 0) * 1000 > Date.now()) return false;
    const lastSeenOfOther = heldByOther ? { identity: record.holderIdentity!, lastSeenAt: this.observed!.at } : undefined;
    const mine = record.holderIdentity === identity;
    const updated = await writeLease(connection, {
      ...existing,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds,
        acquireTime: mine && record.acquireTime ? record.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (record.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    });
    if (updated === 'conflict') return false;
    if (!mine) this.takenOverFrom = lastSeenOfOther;
    this.observe(updated, Date.now());
    return true;
  }

  private observe(lease: LeaseObject, now: number): void {
    this.current = lease;
    const spec = JSON.stringify(lease.spec);
    if (this.observed?.spec !== spec) this.observed = { spec, at: now };
  }
}

export interface HeartbeatOptions {
  connection: KubernetesConnection;
  namespace: string;
  nodeName: string;
  /** The Node's uid once known: the Lease is then owned by the Node and deleted with it. */
  nodeUid(): string | undefined;
  intervalMs: number;
  /** Written as leaseDurationSeconds: how long readers should wait before calling the node dead. */
  graceMs: number;
  logger: Logger;
}

export const HEARTBEAT_LABEL = 'sensorlet.io/heartbeat';
export const NODE_LABEL = 'sensorlet.io/node';

export function heartbeatLeaseName(nodeName: string): string {
  return `sensorlet-node-${nodeName}`;
}

/**
 * The node's heartbeat: one Lease update per interval, whatever the node runs. Paused while the node
 * leads the fleet: the leader lease it renews is then its sign of life, and one Lease is enough.
 */
export class NodeHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private lease: LeaseObject | undefined;
  private stopped = false;
  private paused = false;
  private ownedByNode = false;
  /** Bumped by every start, stop and resume, so a beat of an earlier run does not schedule another. */
  private run = 0;
  renewals = 0;
  failures = 0;

  constructor(private readonly options: HeartbeatOptions) {}

  start(): void {
    this.stopped = false;
    this.beatFromNow();
  }

  stop(): void {
    this.stopped = true;
    this.run++;
    clearTimeout(this.timer);
  }

  /**
   * No renewal until resume(), once the Lease carries its Node as owner (so it still goes with the
   * Node, by the garbage collector, if the node is deleted while it leads).
   */
  pause(): void {
    this.paused = true;
  }

  /** Renews at once, then every interval (unless stopped). */
  resume(): void {
    this.paused = false;
    if (!this.stopped) this.beatFromNow();
  }

  /** One renewal now, whatever the state (a leader stepping down on shutdown leaves a fresh sign of life). */
  async renewOnce(): Promise<void> {
    await this.renew().catch((error) => {
      this.failures++;
      this.options.logger.warn({ err: String(error) }, 'heartbeat renewal failed');
    });
  }

  private beatFromNow(): void {
    clearTimeout(this.timer);
    const run = ++this.run;
    const beat = async () => {
      if (this.paused && this.ownedByNode) return;
      await this.renewOnce();
      if (run === this.run && !this.stopped) this.timer = setTimeout(() => void beat(), this.options.intervalMs);
    };
    void beat();
  }

  private async renew(): Promise<void> {
    const { connection, namespace, nodeName } = this.options;
    const name = heartbeatLeaseName(nodeName);
    const uid = this.options.nodeUid();
    const now = microTime(Date.now());
    const base: LeaseObject = this.lease ?? {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, labels: { [HEARTBEAT_LABEL]: 'true', [NODE_LABEL]: nodeName } },
      spec: {},
    };
    const next: LeaseObject = {
      ...base,
      metadata: { ...base.metadata, labels: { [HEARTBEAT_LABEL]: 'true', [NODE_LABEL]: nodeName }, ...(uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid }] } : {}) },
      spec: { holderIdentity: nodeName, leaseDurationSeconds: Math.max(1, Math.round(this.options.graceMs / 1000)), renewTime: now },
    };
    let written = await writeLease(connection, next);
    if (written === 'conflict') {
      // Another write happened (or the lease is gone): read it back and try once more.
      const current = await getLease(connection, namespace, name);
      written = await writeLease(connection, { ...next, metadata: { ...next.metadata, resourceVersion: current?.metadata.resourceVersion } });
      if (written === 'conflict') throw new Error('heartbeat Lease changed concurrently');
    }
    this.lease = written;
    this.ownedByNode = !!uid;
    this.renewals++;
  }
}
