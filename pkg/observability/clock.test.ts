import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundedDelay, MAX_TIMER_DELAY_MS, setBoundedTimeout } from './clock.js';

test('a delay beyond what a Node timer holds waits, rather than firing after 1 ms', async () => {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.name);
  process.on('warning', onWarning);
  let fired = false;
  const timer = setBoundedTimeout(() => (fired = true), 1000 * 3_600_000); // 1000h
  await new Promise((resolve) => setTimeout(resolve, 50));
  clearTimeout(timer);
  process.off('warning', onWarning);
  assert.equal(fired, false);
  assert.deepEqual(warnings.filter((name) => name === 'TimeoutOverflowWarning'), []);
});

test('delays are clamped to [0, 2^31-1] ms', () => {
  assert.equal(boundedDelay(3.6e9), MAX_TIMER_DELAY_MS);
  assert.equal(boundedDelay(Infinity), MAX_TIMER_DELAY_MS);
  assert.equal(boundedDelay(-5), 0);
  assert.equal(boundedDelay(Number.NaN), 0);
  assert.equal(boundedDelay(1500), 1500);
});
