// Runs one Sink: one lane (outbox + connection) per tenant identity. A reading goes only to the
// lane whose tenant equals the reading's tenant; a Sensor that names no tenant uses the Sink's
// only lane. Readings that fit no lane never leave (the Sensor's Routed condition says why).
// A lane whose Certificate has not loaded yet waits: it keeps readings in its outbox and does not
// dial, and it is given the identity (and starts sending) once the Certificate loads.
import type { Reading } from '../api/reading.js';
import type { StoredResource } from '../api/resource.js';
import { parseDuration, parseQuantity } from '../api/units.js';
import type { StatusStore } from '../controller/status.js';
import type { Logger } from '../observability/logger.js';
import { resourceLabels, type Metrics } from '../observability/metrics.js';
import type { Outbox, OutboxOptions, OutboxWarning, StorageFault } from '../outbox/outbox.js';
import { MAX_UNWRITTEN_BYTES } from '../outbox/core.js';
import type { RouteTarget } from '../router/router.js';
import { Lane } from './lane.js';
import { selectedTransport } from './registry.js';
import { batchReadings, type CommandOutcome, type ConnectionIdentity, type ConnectionState, type Credentials, type RemoteCommand, type Transport } from './transport.js';
import { redactCredentials } from '../api/redact.js';

export interface SinkRunnerDeps {
  logger: Logger;
  metrics: Metrics;
  status: StatusStore;
  /** `laneId` is stable per sink and tenant, so a durable outbox finds its backlog again. */
  createOutbox(laneId: string, options: OutboxOptions): Outbox;
  /** whenFull: block — the router pauses the Sensors feeding this sink while it is full. */
  onFullChange(sinkKey: string, full: boolean): void;
  /** Remote desired values received on this Sink's connections (mqtt.commands), for the agent to apply. */
  onCommand?(sink: { namespace: string; name: string }, command: RemoteCommand): Promise<CommandOutcome>;
}

/**
 * While the sink is behind, an outbox chunk grows to this many readings (when the Sink's batch is
 * smaller) and goes out as several batches: under overload every chunk costs a file's creation,
 * fsync, rename, index entry and deletion whether it is delivered or dropped, and those per-chunk
 * costs took the event loop's time from delivery. Measured with 500-reading batches at 4×
 * overload with dropOldest: about 1.2× the readings delivered with 2000-reading chunks than with
 * 500-reading ones.
 */
const CHUNK_READINGS_WHEN_BEHIND = 2000;

export function outboxOptions(resource: StoredResource<'Sink'>): OutboxOptions {
  const spec = resource.object!.spec;
  const maxReadings = batchReadings(spec);
  return {
    maxReadings,
    maxChunkReadings: Math.max(maxReadings, CHUNK_READINGS_WHEN_BEHIND),
    maxDelayMs: parseDuration(spec.batch?.maxDelay ?? '200ms'),
    maxBytes: parseQuantity(spec.outbox?.maxBytes ?? '256Mi'),
    maxAgeMs: parseDuration(spec.outbox?.maxAge ?? '168h'),
    whenFull: spec.outbox?.whenFull ?? 'dropOldest',
  };
}

export class SinkRunner implements RouteTarget {
  readonly key: string;
  readonly namespace: string;
  readonly generation: number;
  readonly selector;
  private readonly lanes: Lane[] = [];
  private readonly logger: Logger;
  private statsTimer: NodeJS.Timeout | undefined;
  private full = false;
  /** The storage fault last reported (reason), '' once reported as cleared, undefined when never seen. */
  private storageReported: string | undefined;
  private warningReported = false;
  private stopped = false;
  /** The transport's name (mqtt, coap, stdout), for messages. */
  private protocol = '';
  private unroutable = 0;
  /** Per code, how much of the rejected total the metric already counts. */
  private readonly rejectedCounted: Record<string, number> = {};

  constructor(
    private readonly resource: StoredResource<'Sink'>,
    readonly identities: ConnectionIdentity[],
    private readonly deps: SinkRunnerDeps,
    private readonly credentials: Credentials = {},
  ) {
    this.key = resource.key;
    this.namespace = resource.namespace;
    this.generation = resource.generation;
    this.selector = resource.object!.spec.selector;
    this.logger = deps.logger.child({ sink: `${resource.namespace}/${resource.name}` });
  }

  /** Whether these are the credentials the connections log in with (a rotated password reconnects). */
  sameCredentials(credentials: Credentials): boolean {
    return credentials.username === this.credentials.username && credentials.password === this.credentials.password;
  }

  /** One outbox per connection: what a drain (before a firmware update) flushes and waits on. */
  outboxes(): Outbox[] {
    return this.lanes.map((lane) => lane.outbox);
  }

  /** The tenants this sink has connections for; undefined means one anonymous connection. */
  tenants(): (string | undefined)[] {
    return this.lanes.map((lane) => lane.tenant);
  }

  /** Which lane a Sensor's readings take, or why none: used for the Routed condition. */
  laneFor(sensorTenant: string | undefined): { lane?: Lane; problem?: string } {
    if (this.lanes.length === 1 && (this.lanes[0].tenant === undefined || sensorTenant === undefined || sensorTenant === this.lanes[0].tenant)) {
      return { lane: this.lanes[0] };
    }
    if (sensorTenant === undefined) {
      return { problem: `Sink ${this.resource.name} has ${this.lanes.length} tenant connections (${this.describeLanes()}); set spec.tenant to choose one` };
    }
    const lane = this.lanes.find((candidate) => candidate.tenant === sensorTenant);
    if (lane) return { lane };
    // A Certificate that has not loaded may turn out to be this tenant's: keep the readings in its
    // lane rather than lose them. If it loads with another tenant, they are dropped, never sent.
    const waiting = this.lanes.find((candidate) => candidate.identity.waiting);
    if (waiting) return { lane: waiting };
    return { problem: `Sink ${this.resource.name} has no connection for tenant ${sensorTenant} (it has: ${this.describeLanes() || 'none'})` };
  }

  private describeLanes(): string {
    return this.lanes.map((lane) => lane.tenant ?? (lane.identity.waiting ? `${lane.identity.certificate} (not loaded)` : 'anonymous')).join(', ');
  }

  async start(): Promise<void> {
    const spec = this.resource.object!.spec;
    const { factory, config } = selectedTransport(spec);
    const options = outboxOptions(this.resource);
    const sinkLabels = resourceLabels('sink', this.resource);
    for (const identity of this.identities) {
      // Keyed by Certificate (known before it loads, unlike its tenant) so a backlog kept while it
      // was broken is found again; anonymous connections by the Sink alone.
      const laneId = `${this.resource.namespace}.${this.resource.name}${identity.certificate ? `.${identity.certificate}` : identity.tenant ? `.${identity.tenant}` : ''}`;
      const outbox = this.deps.createOutbox(laneId, options);
      outbox.onFullChange((full) => this.updateFull());
      const lane = new Lane(
        identity,
        outbox,
        (laneIdentity, onState) =>
          laneIdentity.waiting
            ? waitingTransport(laneIdentity.waiting, onState)
            : factory.create(config, {
                sink: { namespace: this.resource.namespace, name: this.resource.name },
                spec,
                identity: laneIdentity,
                credentials: this.credentials,
                logger: this.logger,
                onState,
                onTakeover: () => this.deps.metrics.takeovers.inc(sinkLabels),
                onCommand: this.deps.onCommand && ((command) => this.deps.onCommand!({ namespace: this.resource.namespace, name: this.resource.name }, command)),
              }),
        {
          onState: () => this.reportConnection(),
          onDelivered: (count) => this.deps.metrics.published.inc(sinkLabels, count),
          onSendError: (reason) => this.deps.metrics.sendErrors.inc({ ...sinkLabels, reason }),
          onForeignTenant: (count) => (this.unroutable += count),
          onConnectionLost: (reason) => this.deps.metrics.connectionsLost.inc({ ...sinkLabels, reason }),
        },
        this.logger.child({ tenant: identity.tenant }),
        options.maxReadings,
      );
      this.lanes.push(lane);
    }
    this.protocol = factory.name;
    await Promise.all(this.lanes.map((lane) => lane.start()));
    this.deps.status.update(this.key, {
      observedGeneration: this.generation,
      // Facts for `kubectl get sinks` (JSONPath cannot name a union's key); undefined clears a stale url.
      facts: { protocol: factory.name, url: typeof (config as { url?: unknown } | undefined)?.url === 'string' ? redactCredentials((config as { url: string }).url) : undefined },
    });
    this.reportConnection();
    this.statsTimer = setInterval(() => this.reportQueue(), 1000);
    this.statsTimer.unref();
  }

  accept(_sensorKey: string, readings: Reading[]): void {
    const tenant = readings[0]?.tenant;
    const { lane } = this.laneFor(tenant);
    if (!lane) {
      this.unroutable += readings.length;
      return;
    }
    // Readings are shared by every sink they go to: stamp the lane's tenant on copies only.
    const stamped = lane.tenant && tenant === undefined ? readings.map((reading) => ({ ...reading, tenant: lane.tenant })) : readings;
    const result = lane.append(stamped);
    if (result.full !== this.full) this.updateFull();
  }

  room(_sensorKey: string, tenant: string | undefined, count: number): number {
    const { lane } = this.laneFor(tenant);
    return lane ? lane.outbox.room(count) : count;
  }

  shed(_sensorKey: string, tenant: string | undefined, count: number): void {
    const { lane } = this.laneFor(tenant);
    if (!lane) {
      this.unroutable += count;
      return;
    }
    lane.outbox.refuse(count);
    if (!this.full) this.updateFull();
  }

  /**
   * Certificate rotation, or a Certificate that loaded at last: reconnect the lane of that
   * Certificate (of that tenant, for identities without one) with the new identity.
   */
  async rotate(identity: ConnectionIdentity): Promise<boolean> {
    const lane = this.lanes.find((candidate) =>
      identity.certificate !== undefined ? candidate.identity.certificate === identity.certificate : candidate.tenant === identity.tenant,
    );
    if (!lane) return false;
    const index = this.identities.indexOf(lane.identity);
    await lane.replaceTransport(identity);
    if (index >= 0) this.identities[index] = identity;
    return true;
  }

  async stop(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.stopped = true;
    await Promise.all(this.lanes.map((lane) => lane.stop()));
    this.reportQueue();
    // A replacement runner reports its own connections (their tenants may differ).
    for (const lane of this.lanes) this.deps.metrics.connected.remove(this.connectionLabels(lane));
  }

  private updateFull(): void {
    const full = this.lanes.some((lane) => lane.outbox.stats().full);
    if (full === this.full) return;
    this.full = full;
    this.deps.status.update(this.key, {
      conditions: [
        full
          ? { type: 'BufferFull', status: 'True', reason: 'OutboxFull', message: `the outbox reached spec.outbox.maxBytes (whenFull: ${this.resource.object!.spec.outbox?.whenFull ?? 'dropOldest'})` }
          : { type: 'BufferFull', status: 'False', reason: 'OutboxAccepting', message: '' },
      ],
    });
    // Only `block` pauses producers; the drop policies keep accepting and drop by their rule.
    if (this.resource.object!.spec.outbox?.whenFull === 'block') this.deps.onFullChange(this.key, full);
  }

  /** The `connection` label of a lane's sensorlet_sink_connected series. */
  private connectionLabels(lane: Lane): Record<string, string> {
    return resourceLabels('sink', this.resource, { connection: lane.tenant ?? lane.identity.certificate ?? 'default' });
  }

  /**
   * Connected, and Ready with it: a Sink is ready when it can deliver, so a connection down (a
   * broker unreachable, a Certificate not loaded) is Ready=False with the same reason, while its
   * readings wait in the outbox.
   */
  reportConnection(): void {
    if (this.stopped) return;
    for (const lane of this.lanes) this.deps.metrics.connected.set(this.connectionLabels(lane), lane.state.connected ? 1 : 0);
    const down = this.lanes.filter((lane) => !lane.state.connected);
    const connected = down.length === 0;
    const first = down[0]?.state;
    const reason = first?.reason ?? 'Disconnected';
    const described = down.map((lane) => lane.tenant ?? lane.identity.certificate).filter(Boolean).join(', ');
    this.deps.status.update(this.key, {
      conditions: connected
        ? [
            { type: 'Connected', status: 'True', reason: 'Connected', message: `${this.lanes.length} connection(s) up` },
            { type: 'Ready', status: 'True', reason: 'Connected', message: `${this.protocol} sink delivering over ${this.lanes.length} connection(s)` },
          ]
        : [
            { type: 'Connected', status: 'False', reason, message: first?.message ?? '' },
            {
              type: 'Ready',
              status: 'False',
              reason,
              message: `${down.length} of ${this.lanes.length} connection(s) down${described ? ` (${described})` : ''}: ${first?.message || reason}; readings wait in the outbox`,
            },
          ],
      facts: { connected },
    });
  }

  private reportQueue(): void {
    let readings = 0;
    let bytes = 0;
    let oldest: number | undefined;
    const dropped: Record<string, number> = {};
    let corrupt = 0;
    let torn = 0;
    let unwritten = 0;
    let storage: StorageFault | undefined;
    let warning: OutboxWarning | undefined;
    for (const lane of this.lanes) {
      const stats = lane.outbox.stats();
      unwritten += stats.unwrittenBytes;
      storage ??= stats.storage;
      warning ??= stats.warning;
      readings += stats.readings;
      bytes += stats.bytes;
      corrupt += stats.corruptChunks;
      torn += stats.tornFrames;
      if (stats.oldestTime !== undefined) oldest = oldest === undefined ? stats.oldestTime : Math.min(oldest, stats.oldestTime);
      for (const [reason, count] of Object.entries(stats.dropped)) dropped[reason] = (dropped[reason] ?? 0) + count;
    }
    const sink = resourceLabels('sink', this.resource);
    const metrics = this.deps.metrics;
    const rejected = this.rejectedTotals();
    for (const [code, count] of Object.entries(rejected)) {
      const delta = count - (this.rejectedCounted[code] ?? 0);
      if (delta > 0) metrics.rejected.inc({ ...sink, code }, delta);
      this.rejectedCounted[code] = count;
    }
    metrics.queueDepth.set(sink, readings);
    metrics.outboxReadings.set(sink, readings);
    metrics.outboxBytes.set(sink, bytes);
    metrics.outboxOldest.set(sink, oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
    // The outbox keeps these totals (persisted): exported as counters of what is new.
    metrics.advanceCounter(metrics.outboxCorrupt, sink, corrupt);
    metrics.advanceCounter(metrics.outboxTornFrames, sink, torn);
    for (const [reason, count] of Object.entries(dropped)) metrics.advanceCounter(metrics.outboxDropped, { ...sink, reason }, count);
    metrics.outboxUnwrittenBytes.set(sink, unwritten);
    metrics.outboxStorageFull.set(sink, storage ? 1 : 0);
    this.reportStorage(storage, unwritten);
    if (warning && !this.warningReported) {
      this.warningReported = true;
      this.deps.metrics.stateRecovered.inc({ area: 'outbox', reason: warning.reason });
      this.deps.status.update(this.key, { conditions: [{ type: 'IndexRebuilt', status: 'True', reason: warning.reason, message: warning.message }] });
    }
    this.deps.status.update(this.key, {
      facts: {
        queued: readings,
        queuedBytes: bytes,
        oldestQueued: oldest === undefined ? null : new Date(oldest).toISOString(),
        dropped,
        corruptChunks: corrupt,
        tornFrames: torn,
        unroutable: this.unroutable,
        rejected,
      },
    });
  }

  /**
   * StorageFull: the outbox cannot write to disk and holds sealed chunks in memory. Shown from the
   * first fault on (absent on a Sink that never had one), False again once writes succeed.
   */
  private reportStorage(storage: StorageFault | undefined, unwritten: number): void {
    if (storage) {
      if (this.storageReported !== storage.reason) this.deps.metrics.stateWriteErrors.inc({ area: 'outbox', reason: storage.reason });
      this.storageReported = storage.reason;
      const whenFull = this.resource.object!.spec.outbox?.whenFull ?? 'dropOldest';
      this.deps.status.update(this.key, {
        conditions: [
          {
            type: 'StorageFull',
            status: 'True',
            reason: storage.reason,
            message: `${storage.message} (since ${new Date(storage.since).toISOString()}); ${unwritten} bytes held in memory, whenFull: ${whenFull} applies past ${MAX_UNWRITTEN_BYTES}`,
          },
        ],
        facts: { unwrittenBytes: unwritten },
      });
    } else if (this.storageReported) {
      this.storageReported = '';
      this.deps.status.update(this.key, {
        conditions: [{ type: 'StorageFull', status: 'False', reason: 'StorageWritable', message: 'outbox chunks are written to disk again' }],
        facts: { unwrittenBytes: unwritten },
      });
    }
  }

  /** Readings dropped for good because the far end refused them (CoAP 4.xx), per code, since the sink started. */
  private rejectedTotals(): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const lane of this.lanes) {
      for (const [code, count] of Object.entries(lane.permanentFailures())) totals[code] = (totals[code] ?? 0) + count;
    }
    return totals;
  }
}

/** The connection of a lane whose Certificate has not loaded: never dials; sends wait until close(). */
function waitingTransport(waiting: { reason: string; message: string }, onState: (state: ConnectionState) => void): Transport {
  const pending = new Set<(error: Error) => void>();
  return {
    start() {
      onState({ connected: false, reason: waiting.reason, message: waiting.message });
    },
    send() {
      return new Promise<void>((_resolve, reject) => pending.add(reject));
    },
    async close() {
      const error = Object.assign(new Error('the connection was replaced before it could send'), { code: 'CertificateNotReady' });
      for (const reject of pending) reject(error);
      pending.clear();
    },
  };
}
