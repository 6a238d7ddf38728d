import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lane } from './lane.js';
import { createMemoryOutbox } from '../outbox/memory.js';
import { silentLogger } from '../observability/logger.js';
import type { Reading } from '../api/reading.js';
import type { Transport } from './transport.js';

const reading = (seq: number): Reading => ({ device: 'd', sensor: 's', namespace: 'default', seq, time: new Date().toISOString(), quality: 'good', value: seq });

/**
 * One ordered connection, like MQTT over TCP: sends are processed in order, acknowledged after a
 * random delay, and a failure resets the connection, failing every send already queued behind it.
 */
function flakyTransport(delivered: number[], shouldFail: () => boolean): Transport {
  let issued = 0;
  let failedThrough = 0;
  let wire: Promise<void> = Promise.resolve();
  return {
    start() {},
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
      return result;
    },
    async close() {},
  };
}

test('with failing sends, every reading is delivered, first occurrences in order, and all are acknowledged', async () => {
  const outbox = createMemoryOutbox({ maxReadings: 10, maxDelayMs: 5, maxBytes: 64 * 1024 * 1024, maxAgeMs: 3_600_000, whenFull: 'dropNewest' });
  const delivered: number[] = [];
  let sends = 0;
  const lane = new Lane(
    { device: 'd' },
    outbox,
    () => flakyTransport(delivered, () => ++sends % 25 === 3),
    { onState() {}, onDelivered() {}, onSendError() {}, onForeignTenant() {}, onConnectionLost() {} },
    silentLogger(),
  );
  await lane.start();
  const total = 1500;
  for (let seq = 1; seq <= total; seq += 50) lane.append(Array.from({ length: 50 }, (_, i) => reading(seq + i)));
  const deadline = Date.now() + 20_000;
  while (outbox.stats().readings > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  await lane.stop();
  assert.equal(outbox.stats().readings, 0, 'everything acknowledged');
  const seen = new Set<number>();
  const firsts = delivered.filter((seq) => (seen.has(seq) ? false : (seen.add(seq), true)));
  assert.deepEqual(firsts, Array.from({ length: total }, (_, i) => i + 1));
  assert.ok(sends >= 150, "every batch was sent, several twice after failures");
});

test("a lane with a tenant never sends another tenant's queued readings; it counts them instead", async () => {
  const outbox = createMemoryOutbox({ maxReadings: 10, maxDelayMs: 5, maxBytes: 64 * 1024 * 1024, maxAgeMs: 3_600_000, whenFull: 'dropNewest' });
  const sent: Reading[] = [];
  let foreign = 0;
  const lane = new Lane(
    { device: 'd', tenant: 'acme' },
    outbox,
    () => ({ start() {}, async send(readings) { sent.push(...readings); }, async close() {} }),
    { onState() {}, onDelivered() {}, onSendError() {}, onForeignTenant: (count) => (foreign += count), onConnectionLost() {} },
    silentLogger(),
  );
  await lane.start();
  lane.append([
    { ...reading(1), tenant: 'acme' },
    { ...reading(2), tenant: 'globex' },
    reading(3),
    { ...reading(4), tenant: 'globex' },
  ]);
  const deadline = Date.now() + 5000;
  while (outbox.stats().readings > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  await lane.stop();
  assert.deepEqual(sent.map((r) => r.seq), [1, 3]);
  assert.equal(foreign, 2);
  assert.equal(outbox.stats().readings, 0, 'the foreign readings leave the outbox: dropped, not retried');
});

test('a chunk grown past the batch size goes out in batch-sized sends, acknowledged once, and failures re-send it whole', async () => {
  const outbox = createMemoryOutbox({ maxReadings: 10, maxChunkReadings: 40, maxDelayMs: 5, maxBytes: 64 * 1024 * 1024, maxAgeMs: 3_600_000, whenFull: 'dropNewest' });
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
    () => {
      const transport = flakyTransport(delivered, () => ++sends % 25 === 3);
      const send = transport.send.bind(transport);
      transport.send = (readings) => (sendSizes.push(readings.length), send(readings));
      return transport;
    },
    { onState() {}, onDelivered: (count) => (acknowledged += count), onSendError() {}, onForeignTenant() {}, onConnectionLost() {} },
    silentLogger(),
    10,
  );
  await lane.start();
  // All in one turn: the sink is behind from the first sealed chunk on.
  const total = 1500;
  for (let seq = 1; seq <= total; seq += 50) lane.append(Array.from({ length: 50 }, (_, i) => reading(seq + i)));
  const deadline = Date.now() + 20_000;
  while (outbox.stats().readings > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  await lane.stop();
  assert.equal(outbox.stats().readings, 0, 'everything acknowledged');
  assert.ok(chunkSizes.some((size) => size > 10), `some chunk grew past the batch size: ${chunkSizes.join(',')}`);
  assert.ok(chunkSizes.every((size) => size <= 40), `no chunk grew past maxChunkReadings: ${chunkSizes.join(',')}`);
  assert.ok(sendSizes.every((size) => size <= 10), `every send within the batch size: ${sendSizes.join(',')}`);
  const seen = new Set<number>();
  const firsts = delivered.filter((seq) => (seen.has(seq) ? false : (seen.add(seq), true)));
  assert.deepEqual(firsts, Array.from({ length: total }, (_, i) => i + 1));
  assert.ok(delivered.length > total, 'some sends failed and were repeated');
  assert.equal(acknowledged, total, 'each reading counted delivered exactly once, at its chunk’s acknowledgement');
});
