import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PATTERN_INPUT, MAX_PATTERN_SOURCE, compilePattern, patternProblem } from './pattern.js';
import { validateObject } from './validate.js';
import { createTextParser } from '../drivers/text-values.js';
import { extractIdentity } from '../pki/identity.js';
import { SensorletError } from './errors.js';

test('named groups are written as users already write them, and found by name', () => {
  const pattern = compilePattern('T=(?<temperature>-?[0-9.]+) H=(?<humidity>[0-9.]+)');
  assert.equal(pattern.groupCount, 2);
  assert.deepEqual({ ...pattern.groupIndex }, { temperature: 1, humidity: 2 });
  const text = 'noise T=-21.5 H=40 tail';
  const groups = pattern.exec(text)!;
  assert.equal(groups[1], '-21.5');
  assert.equal(groups[2], '40');
  assert.equal(pattern.exec('T=x H=y'), undefined);
});

test('positions are those of the JavaScript string, also after non-ASCII text', () => {
  const pattern = compilePattern('°(?<value>[0-9]+)');
  const text = 'Température 😀 °42';
  assert.equal(pattern.exec(text)![1], '42');
});

test('a group that takes no part in the match has no text', () => {
  const pattern = compilePattern('(?<a>x)|(?<b>y)');
  const groups = pattern.exec('y')!;
  assert.equal(groups[1], undefined);
  assert.equal(groups[2], 'y');
});

test('catastrophic backtracking patterns run in linear time', () => {
  const pattern = compilePattern('^(a+)+(?<value>[0-9])$');
  const started = performance.now();
  for (const length of [37, 1000, MAX_PATTERN_INPUT]) assert.equal(pattern.exec(`${'a'.repeat(length - 1)}!`), undefined);
  // V8's backtracking engine would take minutes on the 37-character input alone.
  assert.ok(performance.now() - started < 2000, `took ${performance.now() - started} ms`);
});

test('lookarounds and backreferences are refused, saying linear-time (RE2) syntax is required', () => {
  for (const source of ['(?=a)b', '(?!a)b', '(?<=a)b', '(?<!a)b', '(a)\\1', '(?<v>a)\\k<v>']) {
    const problem = patternProblem(source);
    assert.ok(problem, source);
    assert.match(problem, /linear-time \(RE2\) syntax is required/, source);
  }
  assert.throws(() => compilePattern('(?=a)'), (error: unknown) => error instanceof SensorletError && error.code === 'InvalidPattern' && error.terminal);
});

test('plain syntax errors say what is wrong', () => {
  assert.equal(patternProblem('[a-'), 'invalid regular expression "[a-": missing closing ]');
  assert.equal(patternProblem('T=(?<value>[0-9]+'), 'invalid regular expression "T=(?<value>[0-9]+": missing closing )');
});

test('patterns too large for the matching budget are refused; texts longer than a pattern may scan are reported', () => {
  assert.match(patternProblem('a'.repeat(MAX_PATTERN_SOURCE + 1))!, /at most 4096/);
  assert.match(patternProblem(`(?<value>${'(a)'.repeat(300)}[a-z]{1000})`)!, /too complex/);
  const big = compilePattern('(?<value>[a-z]{1000}x)');
  assert.ok(big.maxInputLength >= 1024 && big.maxInputLength < MAX_PATTERN_INPUT);
  assert.throws(() => big.exec('a'.repeat(big.maxInputLength + 1)), (error: unknown) => (error as SensorletError).code === 'PatternInputTooLong');
  assert.equal(compilePattern('(?<value>[0-9]+)').maxInputLength, MAX_PATTERN_INPUT);
});

test('validation refuses an RE2-incompatible Sensor pattern at its field path', () => {
  const { errors } = validateObject({
    apiVersion: 'sensorlet.io/v1alpha1',
    kind: 'Sensor',
    metadata: { name: 's' },
    spec: { driver: { serial: { port: '/dev/ttyX', frame: { pattern: '(?<value>a)(?=b)' } } } },
  });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].path, 'spec.driver.serial.frame.pattern');
  assert.match(errors[0].message, /linear-time \(RE2\) syntax is required/);
});

test('the text parser keeps its meaning: value, several values, unnamed first group', () => {
  assert.deepEqual(createTextParser({ pattern: 'T=(?<value>[0-9.]+)', scale: 2, offset: 1 })('T=1.5'), { value: 4 });
  assert.deepEqual(createTextParser({ pattern: 'a=(?<a>[0-9]+) b=(?<b>[0-9]+)' })('a=1 b=2'), { values: { a: 1, b: 2 } });
  assert.deepEqual(createTextParser({ pattern: 'v=([0-9]+)' })('v=7'), { value: 7 });
  assert.deepEqual(createTextParser({ pattern: '(?<value>x)|y=(?<y>[0-9]+)' })('y=3'), { values: { y: 3 } });
  assert.equal(createTextParser({ pattern: 'T=(?<value>[0-9]+)' })('nothing'), undefined);
  assert.throws(() => createTextParser({ pattern: 'T=(?<value>[^;]*);' })('T= ;'), (error: unknown) => (error as SensorletError).code === 'BadFrame');
  const long = createTextParser({ pattern: '(?<value>[0-9]+)' });
  assert.throws(() => long('1'.repeat(MAX_PATTERN_INPUT + 1)), (error: unknown) => (error as SensorletError).code === 'BadFrame');
});

test('an identity pattern that would backtrack catastrophically answers at once', () => {
  const sans = { uris: [`${'a'.repeat(40)}!`], dns: [], ips: [] } as unknown as Parameters<typeof extractIdentity>[0];
  const started = performance.now();
  assert.throws(() => extractIdentity(sans, { uriPattern: '^(a+)+(?<tenant>x)(?<device>y)$' }), (error: unknown) => (error as SensorletError).code === 'InvalidIdentity');
  assert.ok(performance.now() - started < 1000);
  const good = { uris: ['spiffe://test/tenant/acme/device/gw-7'], dns: [] } as unknown as Parameters<typeof extractIdentity>[0];
  assert.deepEqual(extractIdentity(good, undefined), { tenant: 'acme', device: 'gw-7', san: 'URI:spiffe://test/tenant/acme/device/gw-7' });
});
