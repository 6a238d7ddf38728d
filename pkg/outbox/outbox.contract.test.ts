// The outbox contract, run against every store: memory and durable (real files in a temp dir).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Reading } from '../api/reading.js';
import { silentLogger } from '../observability/logger.js';
import { createDurableOutbox } from './durable.js';
import { createMemoryOutbox } from './memory.js';
import type { Outbox, OutboxBatch, OutboxOptions } from './outbox.js';

class ManualClock {
  constructor(public time = Date.parse('2024-01-01T00:00:00Z')) {}
  now(): number {
    return this.time;
  }
}

type Factory = (options: OutboxOptions, clock: ManualClock) => Outbox;

const tempRoot = mkdtempSync(path.join(tmpdir(), 'sensorlet-outbox-contract-'));
after(() => rmSync(tempRoot, { recursive: true, force: true }));
let dirCounter = 0;

const implementations: Array<[string, Factory]> = [
  ['memory', (options, clock) => createMemoryOutbox(options, { clock })],
  ['durable', (options, clock) => createDurableOutbox(path.join(tempRoot, `o${++dirCounter}`), options, silentLogger(), { clock })],
];

const defaults: OutboxOptions = { maxReadings: 10, maxDelayMs: 60_000, maxBytes: Infinity, maxAgeMs: Infinity, whenFull: 'dropOldest' };

export function makeReading(seq: number, time = Date.parse('2024-01-01T00:00:00Z')): Reading {
  return { device: 'dev-1', sensor: 'temp', namespace: 'default', seq, time: new Date(time).toISOString(), value: seq * 0.5, unit: 'Cel', quality: 'good' };
}

function readingsFrom(first: number, count: number, time?: number): Reading[] {
  return Array.from({ length: count }, (_, i) => makeReading(first + i, time));
}

/** Takes batches until `count` readings came out; fails instead of hanging. */
async function take(outbox: Outbox, count: number, ack = true): Promise<{ seqs: number[]; batches: OutboxBatch[] }> {
  const seqs: number[] = [];
  const batches: OutboxBatch[] = [];
  while (seqs.length < count) {
    const batch = await withTimeout(outbox.next(), 2000, `batch after ${seqs.length} of ${count} readings`);
    assert.ok(batch, 'outbox closed early');
    batches.push(batch);
    seqs.push(...batch.readings.map((r) => r.seq));
    if (ack) await outbox.ack(batch);
  }
  return { seqs, batches };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function isPending(promise: Promise<unknown>, ms = 30): Promise<boolean> {
  const marker = Symbol('pending');
  const result = await Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(marker), ms))]);
  return result === marker;
}

function range(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}

for (const [name, create] of implementations) {
  describe(`outbox contract: ${name}`, () => {
    async function openOutbox(overrides: Partial<OutboxOptions> = {}, clock = new ManualClock()): Promise<Outbox> {
      const outbox = create({ ...defaults, ...overrides }, clock);
      await outbox.open();
      return outbox;
    }

    it('hands out readings in FIFO order, sealed by count', async () => {
      const outbox = await openOutbox();
      outbox.append(readingsFrom(1, 25));
      const { seqs, batches } = await take(outbox, 20);
      assert.deepEqual(seqs, range(1, 20));
      assert.deepEqual(batches.map((b) => b.readings.length), [10, 10]);
      assert.ok(batches[1].id > batches[0].id, 'batch ids increase');
      // The 5 left are still open: next() waits until they are sealed.
      const pending = outbox.next();
      assert.equal(await isPending(pending), true);
      await outbox.flush();
      const last = await withTimeout(pending, 1000, 'flushed batch');
      assert.deepEqual(last?.readings.map((r) => r.seq), range(21, 5));
      await outbox.close();
    });

    it('grows the open chunk up to maxChunkReadings while earlier chunks wait, and seals it when the sink asks', async () => {
      const outbox = await openOutbox({ maxChunkReadings: 40 });
      outbox.append(readingsFrom(1, 10));
      assert.equal(outbox.stats().chunks, 1, 'nothing queued before: sealed at maxReadings');
      outbox.append(readingsFrom(11, 35));
      assert.equal(outbox.stats().chunks, 1, 'behind the queued chunk, the open one keeps filling');
      const first = await take(outbox, 10);
      assert.deepEqual(first.seqs, range(1, 10));
      const onDemand = await withTimeout(outbox.next(), 1000, 'the open chunk, sealed on demand');
      assert.deepEqual(onDemand?.readings.map((r) => r.seq), range(11, 35), 'more than maxReadings: the sink asked and it was full enough');
      await outbox.ack(onDemand!);

      outbox.append(readingsFrom(46, 10));
      outbox.append(readingsFrom(56, 45));
      assert.equal(outbox.stats().chunks, 2, 'the growing chunk is sealed at maxChunkReadings');
      const { batches } = await take(outbox, 50);
      assert.deepEqual(batches.map((b) => b.readings.length), [10, 40]);
      const pending = outbox.next();
      assert.equal(await isPending(pending), true, 'fewer than maxReadings left open: it waits for maxDelay or more readings');
      await outbox.flush();
      assert.deepEqual((await withTimeout(pending, 1000, 'flushed batch'))?.readings.map((r) => r.seq), range(96, 5));
      await outbox.close();
    });

    it('seals the open chunk maxDelay after its first reading', async () => {
      const outbox = await openOutbox({ maxDelayMs: 40 });
      const started = Date.now();
      outbox.append(readingsFrom(1, 3));
      const batch = await withTimeout(outbox.next(), 2000, 'delay-sealed batch');
      assert.ok(Date.now() - started >= 30, 'not sealed before maxDelay');
      assert.deepEqual(batch?.readings.map((r) => r.seq), [1, 2, 3]);
      await outbox.close();
    });

    it('acks remove readings; rewind hands out everything unacknowledged again, oldest first', async () => {
      const outbox = await openOutbox();
      outbox.append(readingsFrom(1, 30));
      const first = await outbox.next();
      const second = await outbox.next();
      assert.deepEqual([first?.readings[0].seq, second?.readings[0].seq], [1, 11]);
      await outbox.ack(first!);
      assert.equal(outbox.stats().readings, 20);
      outbox.rewind();
      const again = await outbox.next();
      assert.equal(again?.id, second?.id, 'the unacked batch comes back first');
      assert.deepEqual(again?.readings.map((r) => r.seq), range(11, 10));
      const third = await outbox.next();
      assert.deepEqual(third?.readings.map((r) => r.seq), range(21, 10));
      await outbox.ack(again!);
      await outbox.ack(third!);
      const stats = outbox.stats();
      assert.equal(stats.readings, 0);
      assert.equal(stats.chunks, 0);
      assert.equal(stats.oldestTime, undefined);
      await outbox.close();
    });

    it('is at-least-once: an ack of a later batch never loses an earlier unacked one', async () => {
      const outbox = await openOutbox();
      outbox.append(readingsFrom(1, 30));
      const [a, b, c] = [await outbox.next(), await outbox.next(), await outbox.next()];
      await outbox.ack(b!);
      await outbox.ack(b!); // duplicate acks are harmless
      outbox.rewind();
      const { seqs } = await take(outbox, 20);
      assert.deepEqual(seqs, [...range(1, 10), ...range(21, 10)]);
      assert.ok(a && c);
      assert.equal(outbox.stats().readings, 0);
      await outbox.close();
    });

    it('keeps accepting new readings at the tail while the backlog drains', async () => {
      const outbox = await openOutbox();
      outbox.append(readingsFrom(1, 50));
      const drained: number[] = [];
      for (let round = 0; round < 5; round++) {
        drained.push(...(await take(outbox, 10)).seqs);
        outbox.append(readingsFrom(51 + round * 10, 10));
      }
      drained.push(...(await take(outbox, 50)).seqs);
      assert.deepEqual(drained, range(1, 100));
      await outbox.close();
    });

    it('reports readings, bytes, chunks and the oldest reading time', async () => {
      const clock = new ManualClock();
      const outbox = await openOutbox({}, clock);
      outbox.append(readingsFrom(1, 10, clock.time - 5000));
      outbox.append(readingsFrom(11, 5, clock.time));
      const stats = outbox.stats();
      assert.equal(stats.readings, 15);
      assert.equal(stats.chunks, 1);
      assert.ok(stats.bytes > 0);
      assert.equal(stats.oldestTime, clock.time - 5000);
      assert.deepEqual(stats.dropped, { dropOldest: 0, dropNewest: 0, maxAge: 0, corrupt: 0 });
      assert.equal(stats.full, false);
      await outbox.close();
    });

    it('whenFull=dropNewest refuses what does not fit and counts it', async () => {
      const outbox = await openOutbox({ maxBytes: 6000, whenFull: 'dropNewest' });
      let accepted = 0;
      let dropped = 0;
      let sawFull = false;
      for (let i = 0; i < 20; i++) {
        const result = outbox.append(readingsFrom(1 + i * 10, 10));
        accepted += result.accepted;
        dropped += result.dropped.dropNewest ?? 0;
        sawFull ||= result.full;
      }
      assert.equal(accepted + dropped, 200);
      assert.ok(dropped > 0 && accepted > 0);
      assert.ok(sawFull);
      const stats = outbox.stats();
      assert.equal(stats.dropped.dropNewest, dropped);
      assert.equal(stats.readings, accepted);
      assert.ok(stats.bytes <= 6000 * 1.05, `bytes ${stats.bytes} stay near maxBytes`);
      await outbox.flush();
      const { seqs } = await take(outbox, accepted);
      // The oldest readings are kept; what each append accepted is a prefix of it.
      assert.equal(seqs[0], 1);
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
      await outbox.close();
    });

    it('room() tells a producer what dropNewest would refuse, so it need not make it; refuse() counts it', async () => {
      const outbox = await openOutbox({ maxBytes: 6000, whenFull: 'dropNewest' });
      let made = 0;
      let refused = 0;
      for (let i = 0; i < 20; i++) {
        const room = outbox.room(10);
        assert.ok(room >= 0 && room <= 10);
        const result = outbox.append(readingsFrom(1 + made, room));
        assert.equal(result.accepted, room, 'what room() admits is accepted whole');
        made += room;
        outbox.refuse(10 - room);
        refused += 10 - room;
      }
      assert.ok(refused > 0 && made > 0);
      const stats = outbox.stats();
      assert.equal(stats.dropped.dropNewest, refused, 'every reading not made is counted');
      assert.equal(stats.readings, made);
      assert.equal(stats.full, true);
      await outbox.close();
      const other = await openOutbox({ maxBytes: 6000, whenFull: 'dropOldest' });
      for (let i = 0; i < 20; i++) other.append(readingsFrom(1 + i * 10, 10));
      assert.equal(other.room(10), 10, 'dropOldest keeps every new reading');
      await other.close();
    });

    it('whenFull=dropOldest drops whole oldest chunks and keeps the newest readings', async () => {
      const outbox = await openOutbox({ maxBytes: 6000, whenFull: 'dropOldest' });
      let droppedByAppends = 0;
      for (let i = 0; i < 20; i++) droppedByAppends += outbox.append(readingsFrom(1 + i * 10, 10)).dropped.dropOldest ?? 0;
      const stats = outbox.stats();
      assert.ok(stats.dropped.dropOldest > 0);
      assert.equal(stats.dropped.dropOldest, droppedByAppends);
      assert.equal(stats.readings + stats.dropped.dropOldest, 200, 'every reading is queued or counted as dropped');
      assert.ok(stats.bytes <= 6000 * 1.05, `bytes ${stats.bytes} stay near maxBytes`);
      assert.equal(stats.full, true);
      await outbox.flush();
      const { seqs } = await take(outbox, stats.readings);
      assert.deepEqual(seqs, range(201 - stats.readings, stats.readings), 'the newest survive, contiguous and in order');
      await outbox.close();
    });

    it('whenFull=dropOldest never drops a batch out for delivery, so every count is exact', async () => {
      const outbox = await openOutbox({ maxBytes: 6000, whenFull: 'dropOldest' });
      outbox.append(readingsFrom(1, 10));
      await outbox.flush();
      const inFlight = await outbox.next();
      for (let i = 1; i < 20; i++) outbox.append(readingsFrom(1 + i * 10, 10));
      const stats = outbox.stats();
      assert.ok(stats.dropped.dropOldest > 0);
      assert.equal(stats.readings + stats.dropped.dropOldest, 200);
      await outbox.ack(inFlight!); // still queued: the ack removes it
      const held = inFlight!.readings.length;
      assert.equal(inFlight!.readings[0].seq, 1);
      assert.equal(outbox.stats().readings, stats.readings - held);
      outbox.rewind();
      await outbox.flush();
      const { seqs } = await take(outbox, stats.readings - held);
      assert.deepEqual(seqs, range(201 - seqs.length, seqs.length), 'after the in-flight batch, the newest survive');
      await outbox.close();
    });

    it('whenFull=block reports full, admits reads under way up to a hard ceiling, and signals room again', async () => {
      const maxBytes = 12_000;
      const outbox = await openOutbox({ maxBytes, whenFull: 'block' });
      const flips: boolean[] = [];
      outbox.onFullChange((full) => flips.push(full));
      let accepted = 0;
      let result;
      for (let i = 0; i < 100; i++) {
        result = outbox.append(readingsFrom(accepted + 1, 5));
        accepted += result.accepted;
        if (result.full) break;
      }
      assert.equal(result?.full, true);
      assert.deepEqual(flips, [true]);
      assert.equal(outbox.stats().dropped.dropNewest, 0, 'nothing lost when the producer pauses at once');
      // Readings already under way when `full` flipped are still admitted, up to the hard ceiling.
      const underWay = outbox.append(readingsFrom(accepted + 1, 5));
      assert.equal(underWay.accepted, 5);
      accepted += 5;
      // A producer that ignores the pause runs into the ceiling; the refused readings are counted.
      let refused = 0;
      for (let i = 0; i < 50 && refused === 0; i++) {
        const more = outbox.append(readingsFrom(accepted + 1, 10));
        accepted += more.accepted;
        refused = more.dropped.dropNewest ?? 0;
        assert.equal(more.full, true);
      }
      assert.ok(refused > 0, 'a hard ceiling exists');
      assert.equal(outbox.stats().dropped.dropNewest, refused);
      assert.ok(outbox.stats().bytes <= maxBytes * 1.3, `bytes ${outbox.stats().bytes} bounded`);
      await outbox.flush();
      const { seqs } = await take(outbox, accepted);
      assert.deepEqual(seqs, range(1, accepted), 'everything accepted is delivered, in order');
      assert.deepEqual(flips, [true, false]);
      assert.equal(outbox.stats().full, false);
      assert.equal(outbox.append(readingsFrom(accepted + 1, 5)).accepted, 5);
      await outbox.close();
    });

    it('drops chunks older than maxAge, counted as maxAge', async () => {
      const clock = new ManualClock();
      const outbox = await openOutbox({ maxAgeMs: 60_000 }, clock);
      outbox.append(readingsFrom(1, 20, clock.time));
      clock.time += 30_000;
      outbox.append(readingsFrom(21, 10, clock.time));
      clock.time += 40_000; // the first 20 are now 70 s old, the last 10 are 40 s old
      const result = outbox.append(readingsFrom(31, 10, clock.time));
      assert.equal(result.dropped.maxAge, 20);
      const stats = outbox.stats();
      assert.equal(stats.dropped.maxAge, 20);
      assert.equal(stats.readings, 20);
      const { seqs } = await take(outbox, 20);
      assert.deepEqual(seqs, range(21, 20));
      clock.time += 120_000;
      outbox.append(readingsFrom(41, 10, clock.time - 100_000));
      await outbox.flush();
      const waiting = outbox.next();
      assert.equal(await isPending(waiting), true, 'an expired chunk is never handed out');
      assert.equal(outbox.stats().dropped.maxAge, 30);
      await outbox.close();
      assert.equal(await waiting, undefined);
    });

    it('next() resolves undefined once closed', async () => {
      const outbox = await openOutbox();
      const waiting = outbox.next();
      await outbox.close();
      assert.equal(await withTimeout(waiting, 1000, 'next after close'), undefined);
      assert.equal(await outbox.next(), undefined);
    });
  });
}
