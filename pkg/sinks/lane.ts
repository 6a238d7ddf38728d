// One connection of a sink: an outbox and the transport that drains it. Several sends are on the
// wire at once while connected (the transport's maxInFlightBatches, else MAX_IN_FLIGHT), so
// acknowledgements overlap with sending, but they are acknowledged to the outbox strictly in
// order. A chunk the outbox let grow past the Sink's batch size while the sink was behind goes out
// as several sends, and is acknowledged once the last of them is. When a send fails, every later
// send in flight is abandoned, the outbox rewinds to its oldest unacknowledged batch, and delivery
// resumes after a capped backoff: the far end may see duplicates (at-least-once), never gaps.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Reading } from '../api/reading.js';
import { messageOf, reasonOf } from '../api/errors.js';
import type { Outbox, OutboxBatch } from '../outbox/outbox.js';
import type { Logger } from '../observability/logger.js';
import type { ConnectionIdentity, ConnectionState, Transport } from './transport.js';

const MAX_IN_FLIGHT = 4;
const RETRY_BASE_MS = 250;
const RETRY_CAP_MS = 30_000;

export interface LaneEvents {
  onState(state: ConnectionState): void;
  onDelivered(count: number): void;
  onSendError(reason: string, message: string): void;
  /** Queued readings of another tenant, dropped instead of sent (see dispatch). */
  onForeignTenant(count: number): void;
  /** An established connection went down, with the transport's reason (SessionTakenOver, ConnectionReset...). */
  onConnectionLost(reason: string): void;
}

export class Lane {
  private transport: Transport | undefined;
  private running = false;
  private epoch = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  private ackChain: Promise<void> = Promise.resolve();
  private retryDelay = RETRY_BASE_MS;
  private loop: Promise<void> | undefined;
  private slotWaiter: (() => void) | undefined;
  /**
   * Set from a failed send until the outbox has been rewound; batches handed out meanwhile are
   * discarded (the rewind hands them out again). The rewind runs after a timer, so a batch handed
   * out before it is always seen by the delivery loop while this is still set.
   */
  private recovering: Promise<void> | undefined;
  /** Ends a recovery's backoff early when the connection is re-established. */
  private wakeRetry: (() => void) | undefined;
  private reconnectedSinceFailure = false;
  private readonly retiredRejections: Record<string, number> = {};
  state: ConnectionState = { connected: false, reason: 'Connecting', message: 'connecting' };

  constructor(
    readonly identity: ConnectionIdentity,
    readonly outbox: Outbox,
    private readonly createTransport: (identity: ConnectionIdentity, onState: (state: ConnectionState) => void) => Transport,
    private readonly events: LaneEvents,
    private readonly logger: Logger,
    /** The Sink's batch size: the most readings one send() gets. */
    private readonly maxReadingsPerSend = Infinity,
  ) {}

  get tenant(): string | undefined {
    return this.identity.tenant;
  }

  async start(): Promise<void> {
    await this.outbox.open();
    this.installTransport(this.identity);
    this.running = true;
    this.loop = this.deliver();
  }

  /** Readings the far end refused for good (CoAP 4.xx), per code, over every connection this lane had. */
  permanentFailures(): Record<string, number> {
    return addCounts({ ...this.retiredRejections }, this.transport?.permanentFailures?.() ?? {});
  }

  append(readings: Reading[]) {
    return this.outbox.append(readings);
  }

  /** Swaps the connection (certificate rotation): in-flight batches are re-sent on the new one. */
  async replaceTransport(identity: ConnectionIdentity): Promise<void> {
    const previous = this.transport;
    // A transport counts its refusals from its own start: keep what the old one counted.
    addCounts(this.retiredRejections, previous?.permanentFailures?.() ?? {});
    (this as { identity: ConnectionIdentity }).identity = identity;
    this.installTransport(identity);
    await previous?.close();
  }

  async stop(): Promise<void> {
    this.running = false;
    // A delivery retry may be sleeping for up to RETRY_CAP_MS: shutdown must not wait it out.
    this.wakeRetry?.();
    await this.outbox.flush().catch(() => undefined);
    await this.transport?.close().catch(() => undefined);
    this.wakeSlotWaiter();
    await this.outbox.close();
    await this.loop?.catch(() => undefined);
  }

  /** Creates the connection and makes it current before starting it, so even a report made
   * synchronously inside start() speaks for the lane; a replaced connection no longer does. */
  private installTransport(identity: ConnectionIdentity): void {
    const transport = this.createTransport(identity, (state) => {
      if (transport !== this.transport) return;
      const reconnected = state.connected && !this.state.connected;
      if (this.state.connected && !state.connected && this.running) this.events.onConnectionLost(state.reason ?? 'Disconnected');
      this.state = state;
      this.events.onState(state);
      if (reconnected) {
        this.reconnectedSinceFailure = true;
        this.wakeRetry?.();
        this.wakeSlotWaiter(); // the window is open again (see window())
      }
    });
    this.transport = transport;
    transport.start();
  }

  private async deliver(): Promise<void> {
    while (this.running) {
      const batch = await this.outbox.next();
      if (!batch || !this.running) return;
      if (this.recovering) {
        // Handed out before the rewind: the rewind hands it out again, in order.
        await this.recovering;
        continue;
      }
      const epoch = this.epoch;
      const size = this.maxReadingsPerSend;
      for (let from = 0; from < batch.readings.length; from += size) {
        while (this.inFlight.size >= this.window() && this.running) await new Promise<void>((resolve) => (this.slotWaiter = resolve));
        if (!this.running) return;
        // A failure while this batch waited for a slot: the rewind re-sends the whole chunk.
        if (epoch !== this.epoch || this.recovering) break;
        const to = Math.min(batch.readings.length, from + size);
        this.dispatch(batch, from === 0 && to === batch.readings.length ? batch.readings : batch.readings.slice(from, to), to === batch.readings.length);
        // A send of hundreds of messages holds the event loop for milliseconds; with a window of
        // several, sends back to back held it for tens, and the Sensors' timers (and the acks
        // that free the window) waited behind them. One send per event-loop turn.
        await nextTurn();
      }
      if (epoch !== this.epoch || this.recovering) await this.recovering;
    }
  }

  /**
   * How many sends may be in flight. While the connection is down, one: that send finds out when
   * it is back (or fails and rewinds), and every batch handed out beyond it would only sit in the
   * transport, out of dropOldest's reach, instead of in the outbox.
   */
  private window(): number {
    if (!this.state.connected) return 1;
    return this.transport?.maxInFlightBatches ?? MAX_IN_FLIGHT;
  }

  private wakeSlotWaiter(): void {
    this.slotWaiter?.();
    this.slotWaiter = undefined;
  }

  /** Sends `readings`, part of `batch`; the batch is acknowledged to the outbox after its `last` part. */
  private dispatch(batch: OutboxBatch, readings: Reading[], last: boolean): void {
    const epoch = this.epoch;
    const sent = this.sendOwnTenant(readings);
    const settled = sent.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => {
      this.inFlight.delete(settled);
      this.wakeSlotWaiter();
    });
    this.ackChain = this.ackChain.then(async () => {
      try {
        await sent;
      } catch (error) {
        if (epoch === this.epoch) {
          this.recovering = this.recover(error);
          await this.recovering;
        }
        return;
      }
      if (epoch !== this.epoch) return; // abandoned by a failure before it: it will be sent again
      this.retryDelay = RETRY_BASE_MS;
      if (!last) return;
      await this.outbox.ack(batch);
      // Counted with the outbox's ack, so delivered + queued + dropped always adds up.
      this.events.onDelivered(batch.readings.length);
    });
  }

  /**
   * A reading never crosses tenants. A lane whose Certificate had not loaded queued readings for
   * the tenant it was expected to have; any of another tenant are dropped (and counted), not sent.
   */
  private sendOwnTenant(readings: Reading[]): Promise<void> {
    const tenant = this.identity.tenant;
    const own = tenant === undefined ? readings : readings.filter((reading) => reading.tenant === undefined || reading.tenant === tenant);
    if (own.length < readings.length) {
      this.events.onForeignTenant(readings.length - own.length);
      this.logger.warn({ tenant, dropped: readings.length - own.length }, 'dropped queued readings of another tenant');
    }
    return own.length > 0 ? this.transport!.send(own) : Promise.resolve();
  }

  private async recover(error: unknown): Promise<void> {
    this.epoch++;
    // Stopping (the transport's close fails what is in flight): what was not acknowledged stays in
    // the outbox for the next start; no failure to report, no backoff to wait out.
    if (!this.running) {
      this.recovering = undefined;
      return;
    }
    this.reconnectedSinceFailure = false;
    const reason = reasonOf(error, 'SendFailed');
    this.events.onSendError(reason, messageOf(error));
    this.logger.warn({ reason, err: messageOf(error), retryInMs: this.retryDelay }, 'delivery failed; rewinding the outbox');
    await Promise.all([...this.inFlight]);
    if (!this.running) {
      this.recovering = undefined;
      return;
    }
    // The rewind must come after a macrotask (a timer or a connection event), so that any batch
    // handed out before it has already been seen (and discarded) by the delivery loop.
    // Back off, but resume at once when the connection comes back: after an outage the backlog
    // should start draining when the broker returns, not when the backoff happens to expire.
    const reconnected = await new Promise<boolean>((resolve) => {
      // A connection that came back while in-flight sends were still settling counts too.
      const timer = setTimeout(() => resolve(this.reconnectedSinceFailure), this.reconnectedSinceFailure ? 0 : this.retryDelay);
      this.wakeRetry = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    this.wakeRetry = undefined;
    this.retryDelay = reconnected ? RETRY_BASE_MS : Math.min(RETRY_CAP_MS, this.retryDelay * 2);
    // Rewind and clear the flag in one synchronous step: a batch handed out after this point is
    // the new head and must be sent, not discarded.
    this.outbox.rewind();
    this.recovering = undefined;
  }
}

function addCounts(into: Record<string, number>, counts: Record<string, number>): Record<string, number> {
  for (const [code, count] of Object.entries(counts)) into[code] = (into[code] ?? 0) + count;
  return into;
}
