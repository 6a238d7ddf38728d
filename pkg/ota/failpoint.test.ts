// The failpoint's value format: a typo must fail loudly rather than silently not pause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePauses } from './failpoint.js';

test('SENSORLET_OTA_PAUSE_IN: unset or empty pauses nothing; Phase:ms pairs, comma-separated', () => {
  assert.equal(parsePauses(undefined).size, 0);
  assert.equal(parsePauses('').size, 0);
  assert.deepEqual([...parsePauses('Verifying:5000, RollingBack:250')], [['Verifying', 5000], ['RollingBack', 250]]);
});

test('SENSORLET_OTA_PAUSE_IN: an unknown phase or a bad duration throws', () => {
  assert.throws(() => parsePauses('Verify:5000'), /SENSORLET_OTA_PAUSE_IN: "Verify:5000" is not <phase>:<milliseconds>/);
  assert.throws(() => parsePauses('Verifying:5s'), /is not <phase>:<milliseconds>/);
  assert.throws(() => parsePauses('Verifying'), /is not <phase>:<milliseconds>/);
});
