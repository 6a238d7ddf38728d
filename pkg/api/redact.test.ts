import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactCredentials, redactCredentialsIn, urlHasPassword } from './redact.js';

test('the password of every URL in a text is masked; user names, hosts and other text stay', () => {
  assert.equal(redactCredentials('connection to mqtt://bob:s3cret@broker:1883 lost'), 'connection to mqtt://bob:***@broker:1883 lost');
  assert.equal(redactCredentials('mqtts://:only-password@h'), 'mqtts://:***@h');
  assert.equal(redactCredentials('"url":"mqtt://u:p@ss@h:1"'), '"url":"mqtt://u:***@h:1"', 'an unescaped @ in the password is masked whole');
  assert.equal(redactCredentials('mqtt://bob@broker'), 'mqtt://bob@broker');
  assert.equal(redactCredentials('http://h:8080/path@x'), 'http://h:8080/path@x');
  assert.equal(redactCredentials('a@b: no url'), 'a@b: no url');
});

test('specs are copied with every string redacted, the original left as it was', () => {
  const spec = { mqtt: { url: 'mqtt://u:pw@h', qos: 1 }, list: ['coap+tcp://x:y@h'] };
  assert.deepEqual(redactCredentialsIn(spec), { mqtt: { url: 'mqtt://u:***@h', qos: 1 }, list: ['coap+tcp://x:***@h'] });
  assert.equal(spec.mqtt.url, 'mqtt://u:pw@h');
});

test('urlHasPassword: only a password counts (a user name alone is not a secret)', () => {
  assert.equal(urlHasPassword('mqtt://u:pw@h:1883'), true);
  assert.equal(urlHasPassword('mqtt://u:@h'), false);
  assert.equal(urlHasPassword('mqtt://u@h'), false);
  assert.equal(urlHasPassword('mqtt://h'), false);
});
