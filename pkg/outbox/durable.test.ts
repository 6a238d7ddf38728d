// Durable outbox specifics: restart, crash, corruption, start-up recovery, sequences, offline stats.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import type { Reading } from '../api/reading.js';
import { silentLogger } from '../observability/logger.js';
import { encodeChunkStart, encodeReadingsFrame } from './chunk-file.js';
import { CHUNKS_DIR, CORRUPT_DIR, META_FILE, createDurableOutbox } from './durable.js';
import type { Outbox, OutboxOptions } from './outbox.js';
import { MAX_BLOCK, SEQUENCES_ALT_FILE, SEQUENCES_FILE, SequenceStore } from './sequence.js';
import { outboxDir, readOutboxStats } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const tempRoot = mkdtempSync(path.join(tmpdir(), 'sensorlet-outbox-durable-'));
after(() => rmSync(tempRoot, { recursive: true, force: true }));
let dirCounter = 0;
const freshDir = (): string => path.join(tempRoot, `d${++dirCounter}`);

const options: OutboxOptions = { maxReadings: 10, maxDelayMs: 60_000, maxBytes: Infinity, maxAgeMs: Infinity, whenFull: 'dropOldest' };

function reading(seq: number): Reading {
  return { device: 'dev-1', sensor: 'temp', namespace: 'default', seq, time: new Date().toISOString(), value: seq, quality: 'good' };
}
const readings = (first: number, count: number): Reading[] => Array.from({ length: count }, (_, i) => reading(first + i));
const range = (first: number, count: number): number[] => Array.from({ length: count }, (_, i) => first + i);

async function open(dir: string): Promise<Outbox> {
  const outbox = createDurableOutbox(dir, options, silentLogger());
  await outbox.open();
  return outbox;
}

/** Drains everything currently sealed (acking it) and returns the seqs in delivery order. */
async function drain(outbox: Outbox): Promise<number[]> {
  const seqs: number[] = [];
  while (outbox.stats().chunks > 0) {
    const batch = await outbox.next();
    assert.ok(batch);
    seqs.push(...batch.readings.map((r) => r.seq));
    await outbox.ack(batch);
  }
  return seqs;
}

function chunkFiles(dir: string): string[] {
  return readdirSync(path.join(dir, CHUNKS_DIR)).filter((f) => f.endsWith('.chunk')).sort();
}

/** Runs a module snippet in a child process that gets SIGKILLed once it prints READY. */
async function runAndKill(script: string): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  child.stderr.on('data', (data: Buffer) => (errors += data.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child never got ready: ${errors}`)), 10_000);
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString();
      if (output.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${errors}`)));
  });
  child.removeAllListeners('exit');
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  return output;
}

const moduleUrl = (file: string): string => pathToFileURL(path.join(here, file)).href;

describe('durable outbox', () => {
  it('delivers the unacknowledged backlog in order after close and reopen', async () => {
    const dir = freshDir();
    const first = await open(dir);
    first.append(readings(1, 55));
    const handed = await first.next(); // out for delivery, never acked: must come back
    const acked = await first.next();
    assert.deepEqual([handed?.readings[0].seq, acked?.readings[0].seq], [1, 11]);
    await first.ack(acked!);
    await first.close(); // seals the 5 still open
    const second = await open(dir);
    assert.equal(second.stats().readings, 45);
    assert.equal(second.stats().chunks, 5);
    second.append(readings(56, 10));
    assert.deepEqual(await drain(second), [...range(1, 10), ...range(21, 45)]);
    await second.close();
    const third = await open(dir);
    assert.equal(third.stats().readings, 0);
    assert.equal(chunkFiles(dir).length, 0);
    await third.close();
  });

  it('after kill -9 delivers every reading appended an event-loop turn before, the open chunk too', async () => {
    const dir = freshDir();
    await runAndKill(`
      import { createDurableOutbox } from ${JSON.stringify(moduleUrl('durable.js'))};
      const outbox = createDurableOutbox(${JSON.stringify(dir)}, ${JSON.stringify(options)});
      await outbox.open();
      const r = (seq) => ({ device: 'd', sensor: 's', namespace: 'default', seq, time: new Date().toISOString(), value: seq, quality: 'good' });
      for (let seq = 1; seq <= 1005; seq++) outbox.append([r(seq)]);
      const first = await outbox.next();
      await outbox.ack(first);
      await outbox.flush(); // 1..1000 sealed and fsynced; 1001..1005 sealed by flush too
      for (let seq = 1006; seq <= 1009; seq++) outbox.append([r(seq)]); // open chunk: written at the end of the turn
      setTimeout(() => console.log('READY'), 200); // the open chunk's file is opened in the thread pool
      setInterval(() => {}, 1000);
    `);
    const outbox = await open(dir);
    const seqs = await drain(outbox);
    // The ack of 1..10 may or may not have reached the disk before the kill: at-least-once.
    const start = seqs[0];
    assert.ok(start === 1 || start === 11, `starts at ${start}`);
    assert.deepEqual(seqs, range(start, 1010 - start));
    await outbox.close();
  });

  it('recovers leftovers of a crash mid-write: temp files, chunks missing from the index, a lost index', async () => {
    const dir = freshDir();
    const first = await open(dir);
    first.append(readings(1, 30));
    await first.close();
    writeFileSync(path.join(dir, CHUNKS_DIR, '000000000099.chunk.tmp'), 'half a chunk');
    unlinkSync(path.join(dir, META_FILE)); // as if every index write was lost
    const second = await open(dir);
    assert.equal(second.stats().readings, 30);
    assert.equal(existsSync(path.join(dir, CHUNKS_DIR, '000000000099.chunk.tmp')), false, 'temp file removed');
    assert.deepEqual(await drain(second), range(1, 30));
    second.append(readings(31, 10));
    await second.flush();
    assert.deepEqual(await drain(second), range(31, 10));
    await second.close();
  });

  it('recovers a chunk file a crash left unsealed: every whole frame kept, a torn last frame cut off and counted', async () => {
    const dir = freshDir();
    mkdirSync(path.join(dir, CHUNKS_DIR), { recursive: true });
    const torn = encodeReadingsFrame(readings(21, 5));
    const temp = path.join(dir, CHUNKS_DIR, '000000000007.chunk.tmp');
    // Three turns of an open chunk; the process died while the third frame was being written.
    writeFileSync(temp, Buffer.concat([encodeChunkStart(7, Date.now()), encodeReadingsFrame(readings(1, 12)), encodeReadingsFrame(readings(13, 8)), torn.subarray(0, torn.length - 9)]));
    const first = await open(dir);
    assert.equal(first.stats().readings, 20);
    assert.equal(first.stats().tornFrames, 1);
    assert.equal(existsSync(temp), false, 'sealed and renamed');
    await first.close();
    // Sealed for good: a second start finds a plain chunk, delivers it once and counts nothing new.
    const second = await open(dir);
    assert.equal(second.stats().tornFrames, 1);
    assert.deepEqual(await drain(second), range(1, 20));
    second.append(readings(21, 10));
    await second.flush();
    assert.deepEqual(await drain(second), range(21, 10));
    await second.close();
  });

  it('moves a truncated chunk and a bit-flipped chunk aside, counts both, delivers the rest', async () => {
    const dir = freshDir();
    const logs: string[] = [];
    // A real pino logger writing into an array, to see what the outbox reports.
    const reporting = pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });
    const first = createDurableOutbox(dir, options, reporting);
    await first.open();
    first.append(readings(1, 50));
    await first.close();
    const files = chunkFiles(dir);
    assert.equal(files.length, 5);
    const truncated = path.join(dir, CHUNKS_DIR, files[1]); // seqs 11..20
    truncateSync(truncated, statSync(truncated).size - 7);
    const flipped = path.join(dir, CHUNKS_DIR, files[3]); // seqs 31..40
    const bytes = readFileSync(flipped);
    bytes[bytes.length - 20] ^= 0x01;
    writeFileSync(flipped, bytes);

    const second = createDurableOutbox(dir, options, reporting);
    await second.open();
    assert.deepEqual(await drain(second), [...range(1, 10), ...range(21, 10), ...range(41, 10)]);
    const stats = second.stats();
    assert.equal(stats.corruptChunks, 2);
    assert.equal(stats.dropped.corrupt, 20);
    assert.equal(readdirSync(path.join(dir, CORRUPT_DIR)).length, 2, 'both kept for inspection');
    assert.ok(logs.some((line) => line.includes('corrupt')), 'reported through the logger');
    second.append(readings(51, 10));
    await second.flush();
    assert.deepEqual(await drain(second), range(51, 10), 'never wedges');
    await second.close();
    // The counters survive a restart.
    const third = await open(dir);
    assert.equal(third.stats().corruptChunks, 2);
    await third.close();
  });

  it('reads stats from disk with the agent stopped', async () => {
    const stateDir = freshDir();
    const outbox = createDurableOutbox(outboxDir(stateDir, 'default', 'plant-mqtt'), { ...options, maxBytes: 1 << 20, whenFull: 'dropNewest' }, silentLogger());
    await outbox.open();
    outbox.append(readings(1, 35));
    const batch = await outbox.next();
    await outbox.ack(batch!);
    await outbox.close();
    const stats = await readOutboxStats(stateDir);
    assert.equal(stats.length, 1);
    assert.equal(stats[0].sink, 'default.plant-mqtt');
    assert.equal(stats[0].readings, 25);
    assert.equal(stats[0].chunks, 3);
    assert.ok(stats[0].bytes > 0);
    assert.equal(typeof stats[0].oldestTime, 'number');
    assert.equal(stats[0].full, false);
    assert.deepEqual(await readOutboxStats(path.join(stateDir, 'nothing-here')), []);
  });
});

describe('SequenceStore', () => {
  it('is monotonic per sensor across a clean reopen, without a gap', async () => {
    const dir = freshDir();
    const first = await SequenceStore.open(dir);
    const a = Array.from({ length: 2500 }, () => first.next('default/boiler'));
    assert.deepEqual(a, range(1, 2500));
    assert.equal(first.next('default/other'), 1);
    await first.close();
    const second = await SequenceStore.open(dir);
    assert.equal(second.next('default/boiler'), 2501);
    assert.equal(second.next('default/other'), 2);
    await second.close();
  });

  it('sensors registered together share one write for their first blocks, and one when their blocks run out together', async () => {
    const dir = freshDir();
    const store = await SequenceStore.open(dir);
    const keys = Array.from({ length: 200 }, (_, index) => `default/s${index}`);
    for (const key of keys) store.register(key);
    assert.equal(store.writes, 0, 'registering writes nothing');
    for (const key of keys) assert.equal(store.next(key), 1);
    assert.equal(store.writes, 1, 'the first next() reserved a block for every registered sensor');
    // Each uses its block up (1000 numbers), one reading at a time, in turn, as sensors on one
    // interval do: the first to run out tops up the others past half their block.
    for (let seq = 2; seq <= 1001; seq++) for (const key of keys) assert.equal(store.next(key), seq);
    assert.equal(store.writes, 2);
    await store.close();
    // Every number handed out stays below what was persisted: a restart never reuses one.
    const reopened = await SequenceStore.open(dir);
    for (const key of keys) assert.equal(reopened.next(key), 1002);
    await reopened.close();
  });

  it('never reuses a number after kill -9', async () => {
    const dir = freshDir();
    for (let round = 0; round < 2; round++) {
      const output = await runAndKill(`
        import { SequenceStore } from ${JSON.stringify(moduleUrl('sequence.js'))};
        const store = await SequenceStore.open(${JSON.stringify(dir)});
        let last = 0;
        for (let i = 0; i < 5000; i++) last = store.next('default/counter');
        console.log('LAST ' + last + ' READY');
        setInterval(() => {}, 1000);
      `);
      const last = Number(/LAST (\d+)/.exec(output)?.[1]);
      const store = await SequenceStore.open(dir);
      const resumed = store.next('default/counter');
      assert.ok(resumed > last, `resumed at ${resumed} after ${last}`);
      await store.close();
    }
  });

  it('a damaged slot resumes past anything the lost generation could have reserved, and says so', async () => {
    const dir = freshDir();
    const store = await SequenceStore.open(dir);
    let last = 0;
    for (let i = 0; i < 5000; i++) last = store.next('default/a');
    await store.close();
    // Damage the newest slot: whichever it is, the restart must number above every reserved block.
    const slots = [SEQUENCES_FILE, SEQUENCES_ALT_FILE].map((name) => path.join(dir, name));
    const newest = slots.map((file) => JSON.parse(readFileSync(file, 'utf8').split('\n')[0]).generation as number);
    writeFileSync(slots[newest[0] > newest[1] ? 0 : 1], '{"version":2,"gene');
    const recovered = await SequenceStore.open(dir);
    assert.equal(recovered.recovery?.reason, 'SequenceStateCorrupt');
    const resumed = recovered.next('default/a');
    assert.ok(resumed >= last + MAX_BLOCK, `resumed at ${resumed} after ${last}`);
    assert.ok(recovered.next('default/new') > MAX_BLOCK, 'a sensor the lost slot may have known starts above its bound too');
    await recovered.close();
    // The recovery wrote a good generation: the next start is exact again.
    const again = await SequenceStore.open(dir);
    assert.equal(again.recovery, undefined);
    assert.equal(again.next('default/a'), resumed + 1);
    await again.close();
  });

  it('both slots damaged: nothing is guessed, next() refuses with SequenceStateCorrupt', async () => {
    const dir = freshDir();
    const store = await SequenceStore.open(dir);
    for (let i = 0; i < 3000; i++) store.next('default/a');
    await store.close();
    for (const name of [SEQUENCES_FILE, SEQUENCES_ALT_FILE]) writeFileSync(path.join(dir, name), 'garbage');
    const broken = await SequenceStore.open(dir);
    assert.throws(() => broken.next('default/a'), (error: { code?: string }) => error.code === 'SequenceStateCorrupt');
  });

  it('reads the single-file format of earlier versions exactly', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, SEQUENCES_FILE), JSON.stringify({ version: 1, next: { 'default/a': 4242 } }));
    const store = await SequenceStore.open(dir);
    assert.equal(store.recovery, undefined);
    assert.equal(store.next('default/a'), 4242);
    await store.close();
  });
});
