import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from './workqueue.js';

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

test('a key added many times while queued is processed once', async () => {
  const seen: string[] = [];
  let release!: () => void;
  const busy = new Promise<void>((resolve) => (release = resolve));
  const queue = new WorkQueue(async (key) => {
    seen.push(key);
    if (key === 'first') await busy;
    return {};
  }, { concurrency: 1 });
  queue.add('first'); // occupies the only worker, so the rest wait in the queue
  queue.add('a');
  queue.add('b');
  queue.add('a');
  queue.add('a');
  release();
  await queue.whenIdle();
  assert.deepEqual(seen, ['first', 'a', 'b']);
});

test('a key is never processed twice at once; added while running, it runs again afterwards', async () => {
  let running = 0;
  let maxRunning = 0;
  let passes = 0;
  let release!: () => void;
  const queue = new WorkQueue(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      passes++;
      if (passes === 1) await new Promise<void>((resolve) => (release = resolve));
      running--;
      return {};
    },
    { concurrency: 4 },
  );
  queue.add('a');
  await tick();
  queue.add('a');
  queue.add('a');
  await tick();
  assert.equal(passes, 1, 'no second pass while the first runs');
  release();
  await queue.whenIdle();
  assert.equal(passes, 2, 'dirty key processed once more');
  assert.equal(maxRunning, 1);
});

test('failures retry with capped exponential backoff; success resets it', async () => {
  const times: number[] = [];
  let failuresLeft = 4;
  const queue = new WorkQueue(
    async () => {
      times.push(performance.now());
      if (failuresLeft-- > 0) throw new Error('not yet');
      return {};
    },
    { baseDelayMs: 10, maxDelayMs: 40 },
  );
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => queue.backoffFor(n)), [10, 20, 40, 40, 40]);
  queue.add('k');
  const deadline = Date.now() + 2000;
  while (times.length < 5 && Date.now() < deadline) await tick(10);
  assert.equal(times.length, 5);
  const gaps = times.slice(1).map((time, index) => time - times[index]);
  assert.ok(gaps[0] >= 9 && gaps[1] >= 19 && gaps[2] >= 39 && gaps[3] >= 39, `gaps ${gaps.map(Math.round)}`);
  assert.ok(gaps[3] < 200, 'capped');
  queue.stop();
});

test('requeueAfter schedules another pass', async () => {
  let passes = 0;
  const queue = new WorkQueue(async () => (++passes < 3 ? { requeueAfter: 10 } : {}));
  queue.add('k');
  const deadline = Date.now() + 2000;
  while (passes < 3 && Date.now() < deadline) await tick(10);
  assert.equal(passes, 3);
  queue.stop();
});

test('a key does not start while a key of a lower rank is queued or running; keys of one rank run side by side', async () => {
  const events: string[] = [];
  let releaseSink!: () => void;
  const sinkBusy = new Promise<void>((resolve) => (releaseSink = resolve));
  const queue = new WorkQueue(
    async (key) => {
      events.push(`start ${key}`);
      if (key === 'Sink/a') await sinkBusy;
      await tick(1);
      events.push(`end ${key}`);
      return {};
    },
    { concurrency: 2, rank: (key) => (key.startsWith('Sink/') ? 0 : 1) },
  );
  queue.add('Sink/a');
  queue.add('Sensor/x');
  queue.add('Sink/b');
  await tick(20);
  // Both Sinks run; the Sensor waits although a worker is free once Sink/b ends.
  assert.deepEqual(events, ['start Sink/a', 'start Sink/b', 'end Sink/b']);
  releaseSink();
  await queue.whenIdle();
  assert.deepEqual(events.slice(3), ['end Sink/a', 'start Sensor/x', 'end Sensor/x']);
});

test('stop() waits for reconciles under way, but no longer than its grace', async () => {
  const queue = new WorkQueue(async () => {
    await new Promise(() => undefined); // never ends
    return {};
  });
  queue.add('stuck');
  await tick();
  const started = performance.now();
  await queue.stop(100);
  const waited = performance.now() - started;
  assert.ok(waited >= 90 && waited < 1000, `waited ${waited} ms`);
});

test('thousands of reconciles that finish without I/O still let the event loop turn (timers run during the pass)', async () => {
  // Each reconcile busy-waits 0.2 ms and never awaits I/O: chained as microtasks, 5000 of them
  // would hold the event loop for a second, and a timer (an HTTP probe) could not run until the end.
  const queue = new WorkQueue(async () => {
    const until = performance.now() + 0.2;
    while (performance.now() < until);
    return {};
  });
  const timerLate: number[] = [];
  let ticking = true;
  const probe = (async () => {
    while (ticking) {
      const due = performance.now() + 5;
      await tick(5);
      timerLate.push(performance.now() - due);
    }
  })();
  await tick(20);
  for (let index = 0; index < 5000; index++) queue.add(`k${index}`);
  await queue.whenIdle();
  ticking = false;
  await probe;
  queue.stop();
  assert.ok(timerLate.length >= 20, `a 5 ms timer ran ${timerLate.length} times during the pass`);
});
