import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions } from './version-order.js';

test('compareVersions orders dotted numbers and semver pre-releases', () => {
  const ascending = ['0.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', 'v1.0.1', '1.2', '1.10.0', '2.0.0', '2024.05.1'];
  for (let i = 0; i < ascending.length; i++) {
    for (let j = 0; j < ascending.length; j++) {
      assert.equal(compareVersions(ascending[i], ascending[j]), Math.sign(i - j), `${ascending[i]} vs ${ascending[j]}`);
    }
  }
  assert.equal(compareVersions('1.2', '1.2.0'), 0);
  assert.equal(compareVersions('1.2.0+build.5', '1.2.0'), 0);
  assert.equal(compareVersions('99999999999999999999.0', '99999999999999999998.9'), 1, 'no precision lost on long numbers');
});

test('compareVersions cannot order free-text versions', () => {
  for (const [a, b] of [['latest', '1.0.0'], ['1.0.0', 'blue'], ['1.2.3.4.5.6.7.8.9', '1.0'], ['', '1.0'], ['1..2', '1.2']]) {
    assert.equal(compareVersions(a, b), undefined, `${a} vs ${b}`);
  }
});
