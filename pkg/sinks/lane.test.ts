import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lane, type LaneEvents } from './lane.js';
import { createMemoryOutbox } from '../outbox/memory.js';
import { silentLogger } from '../observability/logger.js';
import type { Reading } from '../api/reading.js';
import type { ConnectionState, Transport } from './transport.js';
import type { Outbox, OutboxOptions } from '../outbox/outbox.js';
import { assertInOrderWithoutGaps } from '../../test/support/sequences.js';

const OUTBOX: OutboxOptions = { maxReadings: 10, maxDelayMs: 5, maxBytes: 64 * 1024 * 1024, maxAgeMs: 3_600_000, whenFull: 'dropNewest' };
const NO_EVENTS: LaneEvents = { onState() {}, onDelivered() {}, onSendError() {}, onForeignTenant() {}, onConnectionLost() {} };

const reading = (seq: number): Reading => ({ device: 'd', sensor: 's', namespace: 'default', seq, time: new Date().toISOString(), quality: 'good', value: seq });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends in flight at once: now, and the most seen. */
interface Concurrency {
  now: number;
  peak: number;
}

function counted(concurrency: Concurrency, send: Promise<void>): Promise<void> {
  concurrency.peak = Math.max(concurrency.peak, ++concurrency.now);
  return send.finally(() => concurrency.now--);
}

/**
 * One ordered connection, like MQTT over TCP: sends are processed in order, acknowledged after a
 * random delay, and a failure resets the connection, failing every send already queued behind it.
 * It reports itself connected, so the lane keeps several sends in flight.
 */
function flakyTransport(delivered: number[], shouldFail: () => boolean, onState: (state: ConnectionState) => void, concurrency: Concurrency = { now: 0, peak: 0 }): Transport {
  let issued = 0;
  let failedThrough = 0;
  let wire: Promise<void> = Promise.resolve();
  return {
    start() {
      onState({ connected: true });
    },
    send(readings) {
      const number = ++issued;
      const result = wire.then(async () => {
        if (number <= failedThrough || shouldFail()) {
          failedThrough = Math.max(failedThrough, issued);
          throw Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
        }
        delivered.push(...readings.map((r) => r.seq));
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      });
      wire = result.catch(() => undefined);
      return counted(concurrency, result);
    },
    async close() {},
  };
}

/** Appends seq 1..total in one event-loop turn, 50 at a time: the sink is behind from the first sealed chunk on. */
function appendInOneTurn(lane: Lane, total: number): void {
  for (let seq = 1; seq <= total; seq += 50) lane.append(Array.from({ length: Math.min(50, total - seq + 1) }, (_, i) => reading(seq + i)));
}

/** Waits until the outbox holds nothing (every reading acknowledged or dropped), at most `timeoutMs`. */
async function untilEmpty(outbox: Outbox, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (outbox.stats().readings > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** At-least-once, in order: the first occurrences are exactly 1..total. */
function assertEveryReadingInOrder(delivered: number[], total: number): void {
  assertInOrderWithoutGaps(delivered.map((seq) => ({ seq })), 'delivered');
  assert.deepEqual([delivered[0], new Set(delivered).size], [1, total], 'from the first reading on, every one');
}

test('with failing sends, every reading is delivered, first occurrences in order, and all are acknowledged', async () => {
  const outbox = createMemoryOutbox(OUTBOX);
  const delivered: number[] = [];
  let sends = 0;
  const concurrency = { now: 0, peak: 0 };
  const lane = new Lane({ device: 'd' }, outbox, (_identity, onState) => flakyTransport(delivered, () => ++sends % 25 === 3, onState, concurrency), NO_EVENTS, silentLogger());
  await lane.start();
  const total = 1500;
  appendInOneTurn(lane, total);
  await untilEmpty(outbox, 20_000);
  await lane.stop();
  assert.equal(outbox.stats().readings, 0, 'everything acknowledged');
  assertEveryReadingInOrder(delivered, total);
  assert.ok(sends >= 150, "every batch was sent, several twice after failures");
  assert.ok(concurrency.peak > 1, `failures met later sends in flight (at most ${concurrency.peak} at once)`);
});

test('while the connection is down one send waits for it and the rest stays in the outbox; once it is up, the window opens', async () => {
  const outbox = createMemoryOutbox(OUTBOX);
  let report!: (state: ConnectionState) => void;
  let up = false;
  const waitingForConnection: (() => void)[] = [];
  const concurrency = { now: 0, peak: 0 };
  const delivered: number[] = [];
  const lane = new Lane(
    { device: 'd' },
    outbox,
    (_identity, onState) => {
      report = onState;
      return {
        start() {
          onState({ connected: false, reason: 'Connecting', message: 'connecting' });
        },
        send(readings) {
          const connected = up ? Promise.resolve() : new Promise<void>((resolve) => waitingForConnection.push(resolve));
          return counted(
            concurrency,
            connected.then(() => sleep(5)).then(() => void delivered.push(...readings.map((r) => r.seq))),
          );
        },
        async close() {},
      };
    },
    NO_EVENTS,
    silentLogger(),
  );
  await lane.start();
  appendInOneTurn(lane, 500);
  await sleep(100);
  assert.equal(concurrency.peak, 1, 'one send while the connection is down');
  up = true;
  report({ connected: true });
  for (const connect of waitingForConnection) connect();
  await untilEmpty(outbox, 5000);
  await lane.stop();
  assert.ok(concurrency.peak > 1, `several sends in flight once connected (at most ${concurrency.peak})`);
  assertEveryReadingInOrder(delivered, 500);
});

test("a lane with a tenant never sends another tenant's queued readings; it counts them instead", async () => {
  const outbox = createMemoryOutbox(OUTBOX);
  const sent: Reading[] = [];
  let foreign = 0;
  const lane = new Lane(
    { device: 'd', tenant: 'acme' },
    outbox,
    () => ({ start() {}, async send(readings) { sent.push(...readings); }, async close() {} }),
    { ...NO_EVENTS, onForeignTenant: (count) => (foreign += count) },
    silentLogger(),
  );
  await lane.start();
  lane.append([
    { ...reading(1), tenant: 'acme' },
    { ...reading(2), tenant: 'globex' },
    reading(3),
    { ...reading(4), tenant: 'globex' },
  ]);
  await untilEmpty(outbox, 5000);
  await lane.stop();
  assert.deepEqual(sent.map((r) => r.seq), [1, 3]);
  assert.equal(foreign, 2);
  assert.equal(outbox.stats().readings, 0, 'the foreign readings leave the outbox: dropped, not retried');
});

test('a chunk grown past the batch size goes out in batch-sized sends, acknowledged once, and failures re-send it whole', async () => {
  const outbox = createMemoryOutbox({ ...OUTBOX, maxChunkReadings: 40 });
  const chunkSizes: number[] = [];
  const next = outbox.next.bind(outbox);
  outbox.next = async () => {
    const batch = await next();
    if (batch) chunkSizes.push(batch.readings.length);
    return batch;
  };
  const delivered: number[] = [];
  const sendSizes: number[] = [];
  let sends = 0;
  let acknowledged = 0;
  const lane = new Lane(
    { device: 'd' },
    outbox,
    (_identity, onState) => {
      const transport = flakyTransport(delivered, () => ++sends % 25 === 3, onState);
      const send = transport.send.bind(transport);
      transport.send = (readings) => (sendSizes.push(readings.length), send(readings));
      return transport;
    },
    { ...NO_EVENTS, onDelivered: (count) => (acknowledged += count) },
    silentLogger(),
    10,
  );
  await lane.start();
  const total = 1500;
  appendInOneTurn(lane, total);
  await untilEmpty(outbox, 20_000);
  await lane.stop();
  assert.equal(outbox.stats().readings, 0, 'everything acknowledged');
  assert.ok(chunkSizes.some((size) => size > 10), `some chunk grew past the batch size: ${chunkSizes.join(',')}`);
  assert.ok(chunkSizes.every((size) => size <= 40), `no chunk grew past maxChunkReadings: ${chunkSizes.join(',')}`);
  assert.ok(sendSizes.every((size) => size <= 10), `every send within the batch size: ${sendSizes.join(',')}`);
  assertEveryReadingInOrder(delivered, total);
  assert.ok(delivered.length > total, 'some sends failed and were repeated');
  assert.equal(acknowledged, total, 'each reading counted delivered exactly once, at its chunk’s acknowledgement');
});
