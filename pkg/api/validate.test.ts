import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateObject } from './validate.js';
import '../sinks/index.js';

const API = 'sensorlet.io/v1alpha1';

function sensor(spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 's' }): Record<string, unknown> {
  return { apiVersion: API, kind: 'Sensor', metadata, spec };
}
function sink(spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: API, kind: 'Sink', metadata: { name: 'k' }, spec };
}
/** The errors as `path: message` lines, the way a user reads them. */
function problems(object: Record<string, unknown>): string[] {
  return validateObject(object).errors.map((error) => `${error.path}: ${error.message}`);
}

test('defaults are applied to a deep copy; status is ignored', () => {
  const input: Record<string, unknown> = { ...sensor({ driver: { simulated: {} } }), status: { nodes: "not even valid" } };
  const { object, errors } = validateObject(input);
  assert.deepEqual(errors, []);
  assert.deepEqual(object!.spec, {
    driver: { simulated: { waveform: 'sine', min: 0, max: 100, step: 1, samplesPerRead: 1 } },
    interval: '5s',
    timeout: '2s',
  });
  assert.equal((object!.metadata as { namespace: string }).namespace, 'default');
  assert.equal(object!.status, undefined);
  assert.deepEqual(input.spec as unknown, { driver: { simulated: {} } }, 'the input is not modified');
});

test('apiVersion and kind: one clear error each', () => {
  assert.deepEqual(problems({ ...sensor({}), apiVersion: 'sensorlet.io/v1' }), ['apiVersion: unknown apiVersion "sensorlet.io/v1": use sensorlet.io/v1alpha1']);
  assert.deepEqual(problems({ ...sensor({}), kind: 'Gauge' }), ['kind: unknown kind "Gauge": use one of Sensor, Sink, Certificate, Firmware, Actuator']);
  assert.deepEqual(problems({ metadata: { name: 'x' } }), [
    'apiVersion: required field is missing: use sensorlet.io/v1alpha1',
    'kind: required field is missing: use one of Sensor, Sink, Certificate, Firmware, Actuator',
  ]);
});

test('unknown fields, at any depth, name the field', () => {
  assert.deepEqual(problems(sensor({ driver: { simulated: { foo: 1 } }, intervall: '1s' })), [
    'spec.intervall: unknown field "intervall"',
    'spec.driver.simulated.foo: unknown field "foo"',
  ]);
});

test('a misspelt union member is reported once, as an unknown field', () => {
  assert.deepEqual(problems(sensor({ driver: { simulatd: {} } })), ['spec.driver.simulatd: unknown field "simulatd"']);
});

test('unions: none set, or more than one set', () => {
  const [none] = problems(sensor({ driver: {} }));
  assert.match(none, /^spec\.driver: must set exactly one of: simulated(, \w+)*$/);
  const [two] = problems(sink({ stdout: {}, mqtt: { url: 'mqtt://h' } }));
  assert.match(two, /^spec: must set exactly one of: .*stdout.*mqtt.* \(found stdout and mqtt\)$/);
});

test('missing required fields, wrong types, enums, bounds', () => {
  assert.deepEqual(problems(sink({ mqtt: { qos: 3 } })), ['spec.mqtt.url: required field is missing', 'spec.mqtt.qos: must be one of: 0, 1, 2 (got 3)']);
  assert.deepEqual(problems(sensor({ driver: { simulated: { min: 'low', samplesPerRead: -5 } } })), [
    'spec.driver.simulated.min: must be a number, got string "low"',
    'spec.driver.simulated.samplesPerRead: must be at least 1 (got -5)',
  ]);
  assert.deepEqual(problems(sensor({ driver: { simulated: { waveform: 'square' } } })), [
    'spec.driver.simulated.waveform: must be one of: constant, sine, random, counter (got "square")',
  ]);
  assert.deepEqual(problems(sensor({ driver: 'simulated' })), ['spec.driver: must be a mapping, got string "simulated"']);
  assert.deepEqual(problems({ apiVersion: API, kind: 'Sensor', metadata: { name: 's' } }), ['spec: required field is missing']);
});

test('durations, quantities, names and tenants say what a valid value looks like', () => {
  assert.deepEqual(problems(sensor({ driver: { simulated: { period: '1 minute' } }, interval: '5 seconds' })), [
    'spec.driver.simulated.period: invalid duration "1 minute": use a number and a unit, like 250ms, 5s, 1m30s',
    'spec.interval: invalid duration "5 seconds": use a number and a unit, like 250ms, 5s, 1m30s',
  ]);
  assert.deepEqual(problems(sink({ stdout: {}, outbox: { maxBytes: '256MB' } })), [
    'spec.outbox.maxBytes: invalid quantity "256MB": use a number and an optional suffix, like 64Mi or 500k',
  ]);
  assert.deepEqual(problems(sensor({ driver: { simulated: {} } }, { name: 'Boiler_Temp' })), [
    `metadata.name: invalid name "Boiler_Temp": use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit`,
  ]);
  const [tenant] = problems(sensor({ driver: { simulated: {} }, tenant: 'acme/#' }));
  assert.match(tenant, /^spec\.tenant: invalid tenant "acme\/#": use lowercase letters/);
});

test('every duration has an upper bound: the field\'s own, else 576h', () => {
  assert.deepEqual(problems(sensor({ driver: { simulated: { period: '577h' } }, interval: '1000h', timeout: '61m', report: { heartbeat: '24h' } })), [
    'spec.driver.simulated.period: must be at most 576h (got "577h")',
    'spec.interval: must be at most 24h (got "1000h")',
    'spec.timeout: must be at most 1h (got "61m")',
  ]);
  assert.deepEqual(problems(sink({ stdout: {}, outbox: { maxAge: '8760h' }, batch: { maxDelay: '2h' } })), ['spec.batch.maxDelay: must be at most 1h (got "2h")']);
});

test('arrays are written with indices; label keys with dots are quoted', () => {
  const selector = { matchExpressions: [{ key: 'a', operator: 'In' }, { key: 'b', operator: 'Contains' }] };
  assert.deepEqual(problems(sink({ stdout: {}, selector })), [
    'spec.selector.matchExpressions[1].operator: must be one of: In, NotIn, Exists, DoesNotExist (got "Contains")',
  ]);
  assert.deepEqual(problems(sensor({ driver: { simulated: {} }, nodeSelector: { 'sensorlet.io/site': 7 } })), [
    'spec.nodeSelector["sensorlet.io/site"]: must be a string, got number 7',
  ]);
});

test('regexes in identity patterns must compile', () => {
  const certificate = {
    apiVersion: API,
    kind: 'Certificate',
    metadata: { name: 'c' },
    spec: { pem: { certFile: 'a', keyFile: 'b' }, identity: { uriPattern: '^(?<tenant>[^/]+', dnsPattern: '[a-' } },
  };
  assert.deepEqual(problems(certificate), [
    'spec.identity.uriPattern: invalid regular expression "^(?<tenant>[^/]+": missing closing )',
    'spec.identity.dnsPattern: invalid regular expression "[a-": missing closing ]',
  ]);
});

test('an MQTT topic template with a wildcard is refused at spec.mqtt.topic', () => {
  assert.deepEqual(problems(sink({ mqtt: { url: 'mqtt://h', topic: 'x/{tenant}/#' } })), [
    'spec.mqtt.topic: topic "x/{tenant}/#" must not contain the MQTT wildcard "#": a reading is published to one exact topic',
  ]);
});

test('driver validate hooks run once the schema is satisfied', () => {
  assert.deepEqual(problems(sensor({ driver: { simulated: { min: 10, max: 1 } } })), ['spec.driver.simulated.min: min (10) must not exceed max (1)']);
});
