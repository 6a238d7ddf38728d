import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setCondition, type Condition } from './conditions.js';

test('lastTransitionTime changes only when the status flips', () => {
  const conditions: Condition[] = [];
  const t0 = new Date('2026-01-01T00:00:00Z');
  assert.equal(setCondition(conditions, { type: 'Ready', status: 'False', reason: 'Starting', message: '' }, t0), true);
  const t1 = new Date('2026-01-01T00:00:10Z');
  assert.equal(setCondition(conditions, { type: 'Ready', status: 'False', reason: 'Timeout', message: 'no answer' }, t1), false);
  assert.equal(conditions[0].lastTransitionTime, t0.toISOString());
  assert.equal(conditions[0].reason, 'Timeout');
  const t2 = new Date('2026-01-01T00:00:20Z');
  assert.equal(setCondition(conditions, { type: 'Ready', status: 'True', reason: 'Reading', message: '' }, t2), true);
  assert.equal(conditions[0].lastTransitionTime, t2.toISOString());
  assert.equal(conditions.length, 1);
});
