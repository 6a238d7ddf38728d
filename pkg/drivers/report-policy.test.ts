import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReportPolicy } from './report-policy.js';

const clock = { now: () => 0 };

test('without onChange every sample is admitted', () => {
  const policy = createReportPolicy(undefined, clock);
  assert.equal(policy.admit({ value: 1 }, 0) && policy.admit({ value: 1 }, 1), true);
  assert.equal(createReportPolicy({ heartbeat: '1m' }, clock).admit({ value: 1 }, 0), true);
});

test('deadband: only moves beyond it, measured from the last value sent', () => {
  const policy = createReportPolicy({ onChange: { deadband: 0.5 } }, clock);
  const admitted = [20, 20.3, 20.5, 20.6, 20.2, 19.9, 21].filter((value, i) => policy.admit({ value }, i * 1000));
  // 20 first; 20.3 and 20.5 within ±0.5 of 20; 20.6 beyond; 20.2 within of 20.6; 19.9 beyond (0.7); 21 beyond.
  assert.deepEqual(admitted, [20, 20.6, 19.9, 21]);
});

test('deadband 0 admits any change and drops repeats', () => {
  const policy = createReportPolicy({ onChange: {} }, clock);
  assert.deepEqual([1, 1, 2, 2, 1].map((value) => policy.admit({ value }, 0)), [true, false, true, false, true]);
});

test('heartbeat forces a sample at least once per period', () => {
  const policy = createReportPolicy({ onChange: { deadband: 1 }, heartbeat: '10s' }, clock);
  const times = [0, 4_000, 9_999, 10_000, 15_000, 20_000];
  assert.deepEqual(times.map((t) => policy.admit({ value: 5 }, t)), [true, false, false, true, false, true]);
});

test('values: any member moving beyond the deadband, or a member appearing, admits the sample', () => {
  const policy = createReportPolicy({ onChange: { deadband: 1 } }, clock);
  assert.equal(policy.admit({ values: { t: 20, h: 50 } }, 0), true);
  assert.equal(policy.admit({ values: { t: 20.5, h: 50.9 } }, 1), false);
  assert.equal(policy.admit({ values: { t: 20.5, h: 51.5 } }, 2), true);
  assert.equal(policy.admit({ values: { t: 20.5, h: 51.5, p: 1000 } }, 3), true);
});

test('a quality change is always reported', () => {
  const policy = createReportPolicy({ onChange: { deadband: 10 } }, clock);
  assert.equal(policy.admit({ value: 1 }, 0), true);
  assert.equal(policy.admit({ value: 1, quality: 'bad' }, 1), true);
  assert.equal(policy.admit({ value: 1, quality: 'bad' }, 2), false);
});

test('now defaults to the injected clock', () => {
  let now = 0;
  const policy = createReportPolicy({ onChange: { deadband: 1 }, heartbeat: '1s' }, { now: () => now });
  assert.equal(policy.admit({ value: 1 }), true);
  now = 500;
  assert.equal(policy.admit({ value: 1 }), false);
  now = 1000;
  assert.equal(policy.admit({ value: 1 }), true);
});
