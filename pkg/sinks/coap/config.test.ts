import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Reading } from '../../api/reading.js';
import { expandPath, validateCoapConfig } from './config.js';

const reading = (extra: Partial<Reading> = {}): Reading => ({ device: 'gw-7', sensor: 'boiler', namespace: 'default', seq: 1, time: '2024-01-01T00:00:00Z', value: 1, quality: 'good', ...extra });
const refusal = (message: RegExp) => (error: { code?: string; message: string }) => error.code === 'InvalidPath' && message.test(error.message);

test('Uri-Path segments: the reading tenant, else the connection tenant, else default; empty segments dropped', () => {
  assert.deepEqual(expandPath('sensorlet/{tenant}/{device}/{sensor}', reading(), undefined), ['sensorlet', 'default', 'gw-7', 'boiler']);
  assert.deepEqual(expandPath('{tenant}/{sensor}', reading(), 'acme'), ['acme', 'boiler']);
  assert.deepEqual(expandPath('{tenant}/{sensor}', reading({ tenant: 'beta' }), 'acme'), ['beta', 'boiler']);
  assert.deepEqual(expandPath('/a//{sensor}/', reading(), undefined), ['a', 'boiler']);
});

test('a name that would change the path or query is refused (InvalidPath), as is an empty one', () => {
  for (const bad of ['evil/../x', 'a?b', 'a#b', 'a\0b']) {
    assert.throws(() => expandPath('s/{sensor}', reading({ sensor: bad }), undefined), refusal(/^\{sensor\} ".*" contains \/, \?, # or NUL$/));
  }
  // + is an MQTT wildcard, not special in a Uri-Path segment.
  assert.deepEqual(expandPath('s/{sensor}', reading({ sensor: 'a+b' }), undefined), ['s', 'a+b']);
  assert.throws(() => expandPath('s/{tenant}', reading({ tenant: '' }), undefined), refusal(/^\{tenant\} is empty for gw-7\/boiler$/));
  assert.throws(() => expandPath('s/{namespace}', reading(), undefined), refusal(/unknown variable \{namespace\}/));
});

test('path template validation messages', () => {
  const errors = (path: string) => validateCoapConfig({ url: 'coap://127.0.0.1', path }, 'spec.coap', {} as never).map((error) => error.message);
  assert.deepEqual(errors('sensorlet/{tenant}/{device}/{sensor}'), []);
  assert.deepEqual(errors('a/{namespace}'), ['unknown variable {namespace}: use {tenant}, {device} or {sensor}']);
  assert.deepEqual(errors('a?b={sensor}'), ['the path may not contain ?, # or NUL']);
});
