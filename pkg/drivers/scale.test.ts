import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scaleValue } from './scale.js';
import { createTextParser } from './text-values.js';

test('scaled values carry no binary floating-point noise', () => {
  assert.equal(33 * 0.1, 3.3000000000000003, 'the noise this removes');
  assert.equal(scaleValue(33, 0.1), 3.3);
  assert.equal(scaleValue(-126, 0.1), -12.6);
  assert.equal(scaleValue(3, 0.1, 0.2), 0.5);
  assert.equal(scaleValue(2137, 0.01, -40), -18.63);
  assert.equal(scaleValue(1, 1 / 3), 0.333333333333333);
});

test('unscaled values pass through whole', () => {
  assert.equal(scaleValue(123456789), 123456789);
  assert.equal(scaleValue(2 ** 53 - 1), 2 ** 53 - 1);
  assert.equal(scaleValue(0.30000000000000004), 0.30000000000000004, 'no scale: the value as read');
  assert.equal(scaleValue(Infinity, 0.1), Infinity);
});

test('a text pattern with scale and offset yields the clean decimal', () => {
  const parse = createTextParser({ pattern: 'T=(?<value>-?[0-9]+)', scale: 0.1, offset: 0 });
  assert.deepEqual(parse('T=33'), { value: 3.3 });
  assert.deepEqual(parse('T=-126'), { value: -12.6 });
});
