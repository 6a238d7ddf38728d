import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../api/schemas.js';
import { validateObject } from '../api/validate.js';
import { boundsProblem, renderValue, textReadBack } from './values.js';
import { registersFor, valueOf } from './modbus/modbus.js';

test('every actuator driver example validates', () => {
  for (const driver of ['modbus', 'serial', 'file', 'command']) {
    const file = path.join(PACKAGE_ROOT, 'pkg', 'actuators', driver, 'example.yaml');
    const documents = yaml.loadAll(readFileSync(file, 'utf8')) as Record<string, unknown>[];
    assert.ok(documents.some((document) => document.kind === 'Actuator'), `${file} declares an Actuator`);
    for (const document of documents) assert.deepEqual(validateObject(document).errors, [], `${file}: ${JSON.stringify((document.metadata as { name: string }).name)}`);
  }
});

test('registers carry the Sensor side encoding, inverted: scale, offset, word order, blocks', () => {
  const int16 = { type: 'int16', wordOrder: 'bigEndian', scale: 0.1, offset: 0 } as const;
  assert.deepEqual(registersFor(21.5, int16), [215]);
  assert.deepEqual(registersFor(-5, { ...int16, scale: 1 }), [0xfffb]);
  assert.equal(valueOf([215], int16, false), 21.5);
  const offset = { type: 'uint16', wordOrder: 'bigEndian', scale: 0.5, offset: -40 } as const;
  assert.deepEqual(registersFor(10, offset), [100]);
  assert.equal(valueOf([100], offset, false), 10);
  const floatBig = { type: 'float32', wordOrder: 'bigEndian', scale: 1, offset: 0 } as const;
  assert.deepEqual(registersFor(1.5, floatBig), [0x3fc0, 0x0000]);
  assert.deepEqual(registersFor(1.5, { ...floatBig, wordOrder: 'littleEndian' }), [0x0000, 0x3fc0]);
  assert.equal(valueOf([0x0000, 0x3fc0], { ...floatBig, wordOrder: 'littleEndian' }, false), 1.5);
  const int32 = { type: 'int32', wordOrder: 'littleEndian', scale: 1, offset: 0 } as const;
  assert.deepEqual(registersFor([-2, 70000], int32), [0xfffe, 0xffff, 0x1170, 0x0001]);
  assert.deepEqual(valueOf([0xfffe, 0xffff, 0x1170, 0x0001], int32, true), [-2, 70000]);
});

test('text values: inverse scale without float noise, booleans as 1/0, decimals; read-back compares what was written', () => {
  assert.equal(renderValue(21.5, { scale: 0.1 }), '215');
  assert.equal(renderValue(75, { scale: 0.0001 }), '750000');
  assert.equal(renderValue(true, {}), '1');
  assert.equal(renderValue(2, { decimals: 2 }), '2.00');
  const back = textReadBack(750000, { scale: 0.0001 }, false);
  assert.equal(back.value, 75);
  assert.ok(back.holds(75));
  assert.ok(!back.holds(74));
  const bit = textReadBack(1, {}, true);
  assert.equal(bit.value, true);
  assert.ok(bit.holds(true));
});

test('bounds: min, max and an allowed set; a list is checked value by value', () => {
  assert.equal(boundsProblem(21.5, { min: 5, max: 30 }), undefined);
  assert.match(boundsProblem(35, { min: 5, max: 30 })!, /35 is above bounds\.max 30/);
  assert.match(boundsProblem(1, { min: 5 })!, /below bounds\.min 5/);
  assert.match(boundsProblem(12, { allowed: [8, 11, 14] })!, /not one of bounds\.allowed/);
  assert.match(boundsProblem([1, 50], { max: 23 })!, /value 1 \(50\) is above/);
  assert.equal(boundsProblem(true, { allowed: [0, 1] }), undefined);
});
