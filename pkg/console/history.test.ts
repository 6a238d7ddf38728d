import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Reading } from '../api/reading.js';
import { MAX_POINTS, ReadingHistory } from './history.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const reading = (atMs: number, value: number | Record<string, number>, seq = 1): Reading => ({
  device: 'd',
  sensor: 's',
  namespace: 'default',
  seq,
  time: new Date(atMs).toISOString(),
  quality: 'good',
  ...(typeof value === 'number' ? { value } : { values: value }),
});

test('one point per second: readings of the same second fold into the last value, and count for the rate', () => {
  const history = new ReadingHistory();
  history.record('Sensor/default/a', [reading(T0, 1), reading(T0 + 100, 2), reading(T0 + 900, 3), reading(T0 + 1000, 4)]);
  assert.deepEqual(history.series('Sensor/default/a'), { t: [T0 / 1000, T0 / 1000 + 1], v: [3, 4] });
  // The current second is still filling: the rate counts complete seconds only.
  assert.equal(history.rate('Sensor/default/a', T0 + 1500), 3);
  // 4 readings over the 2 complete seconds the ring has seen.
  assert.equal(history.rate('Sensor/default/a', T0 + 2500), 2);
});

test('the ring keeps the newest MAX_POINTS points in order, whatever runs through it', () => {
  const history = new ReadingHistory();
  const key = 'Sensor/default/a';
  for (let i = 0; i < MAX_POINTS * 2 + 7; i++) history.record(key, [reading(T0 + i * 1000, i)]);
  const series = history.series(key)!;
  assert.equal(series.t.length, MAX_POINTS);
  assert.equal(series.v[0], MAX_POINTS + 7);
  assert.equal(series.v.at(-1), MAX_POINTS * 2 + 6);
  assert.ok(series.t.every((second, index) => index === 0 || second === series.t[index - 1] + 1));
  // At most maxPoints, evenly spaced, with the newest.
  const thinned = history.series(key, -1, 150)!;
  assert.equal(thinned.t.length, 150);
  assert.equal(thinned.t.at(-1), series.t.at(-1));
  assert.equal(thinned.t[1] - thinned.t[0], 4);
  // Points after a second already sent: only the new ones.
  assert.deepEqual(history.series(key, series.t.at(-2)!), { t: [series.t.at(-1)], v: [series.v.at(-1)] });
  // A steady 1/s over the rate window; nothing for a minute: 0.
  assert.equal(history.rate(key, T0 + (MAX_POINTS * 2 + 6) * 1000 + 500), 1);
  assert.equal(history.rate(key, T0 + (MAX_POINTS * 2 + 6) * 1000 + 500 + 61_000), 0);
});

test('multi-value readings chart their first value; readings without a number are skipped', () => {
  const history = new ReadingHistory();
  history.record('Sensor/default/m', [reading(T0, { temperature: 21.5, humidity: 40 }), { ...reading(T0 + 1000, 0), value: undefined, quality: 'bad' }]);
  assert.deepEqual(history.series('Sensor/default/m'), { t: [T0 / 1000], v: [21.5], field: 'temperature' });
  history.record('Sensor/default/n', [{ ...reading(T0, 0), value: Number.NaN }]);
  assert.equal(history.has('Sensor/default/n'), false);
});

test('at most maxSensors rings; retain() drops the rings of Sensors that are gone', () => {
  const history = new ReadingHistory(2);
  for (const name of ['a', 'b', 'c']) history.record(`Sensor/default/${name}`, [reading(T0, 1)]);
  assert.equal(history.sensors, 2);
  assert.equal(history.has('Sensor/default/c'), false);
  assert.equal(history.full, true);
  history.retain(new Set(['Sensor/default/b', 'Sensor/default/c']));
  assert.equal(history.has('Sensor/default/a'), false);
  history.record('Sensor/default/c', [reading(T0, 1)]);
  assert.equal(history.has('Sensor/default/c'), true);
});

test('a reading dated before the newest point joins it: the ring stays ordered', () => {
  const history = new ReadingHistory();
  history.record('Sensor/default/a', [reading(T0 + 5000, 1), reading(T0, 2)]);
  assert.deepEqual(history.series('Sensor/default/a'), { t: [T0 / 1000 + 5], v: [2] });
});

test('times are placed in their own second whatever their form: UTC with or without a fraction, and offsets', () => {
  const history = new ReadingHistory();
  const at = (time: string, value: number): Reading => ({ ...reading(T0, value), time });
  history.record('Sensor/default/a', [
    at('2026-01-01T00:00:00.100Z', 1),
    at('2026-01-01T00:00:00Z', 2),
    // The same first 19 characters as the UTC times before it, but two hours behind UTC: 02:00:00Z,
    // a point of its own, not the 00:00:00 its text starts with.
    at('2026-01-01T00:00:00-02:00', 3),
    at('2026-01-01T02:00:00.500Z', 4),
    at('not a time', 5),
  ]);
  assert.deepEqual(history.series('Sensor/default/a'), { t: [T0 / 1000, T0 / 1000 + 7200], v: [2, 4] });
});
