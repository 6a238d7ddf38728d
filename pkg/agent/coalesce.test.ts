import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coalesced } from './coalesce.js';

test('calls during a run join one follow-up run; every caller sees a run that started after its call', async () => {
  let runs = 0;
  let active = 0;
  let maxActive = 0;
  const started: number[] = [];
  const reload = coalesced(async () => {
    runs++;
    started.push(performance.now());
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise((resolve) => setTimeout(resolve, 30));
    active--;
  });
  const first = reload();
  const calledAt = performance.now();
  const joined = Array.from({ length: 19 }, () => reload());
  await Promise.all([first, ...joined]);
  assert.equal(runs, 2, 'the run in progress and one follow-up');
  assert.equal(maxActive, 1, 'never two at once');
  assert.ok(started[1] >= calledAt, 'the follow-up started after the joined calls');
  await reload();
  assert.equal(runs, 3, 'a call when idle runs at once');
});

test('a failed run is reported to its callers, and the follow-up still runs', async () => {
  let runs = 0;
  const reload = coalesced(async () => {
    runs++;
    await new Promise((resolve) => setTimeout(resolve, 10));
    if (runs === 1) throw new Error('first fails');
  });
  const first = reload();
  const second = reload();
  await assert.rejects(first, /first fails/);
  await second;
  assert.equal(runs, 2);
});
