import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandTopic, commandTopicErrors, renderTopic, topicTemplateErrors } from './topic.js';

test('topic templates: known variables only, no literal wildcards', () => {
  assert.deepEqual(topicTemplateErrors('sensorlet/{tenant}/{device}/{namespace}/{sensor}'), []);
  assert.match(topicTemplateErrors('a/{tennant}')[0], /unknown variable \{tennant\}/);
  assert.match(topicTemplateErrors('a/#')[0], /must not contain the MQTT wildcard "#"/);
  assert.match(topicTemplateErrors('a/+/b')[0], /wildcard "\+"/);
  assert.match(topicTemplateErrors('a/\0')[0], /NUL/);
  assert.match(topicTemplateErrors('a/{tenant')[0], /unbalanced/);
  assert.match(topicTemplateErrors('$SYS/{sensor}')[0], /reserved/);
});

test('a variable that would change the topic structure is refused, not escaped', () => {
  const variables = { tenant: 'acme', device: 'gw-7', sensor: 'boiler', namespace: 'default' };
  assert.equal(renderTopic('s/{tenant}/{device}/{sensor}', variables), 's/acme/gw-7/boiler');
  for (const bad of ['a/b', 'a+', 'a#', 'a\0b']) {
    assert.throws(() => renderTopic('s/{device}/{sensor}', { ...variables, device: bad }), (error: { code?: string }) => error.code === 'TopicInjection');
  }
});

test('command topics: {actuator} is one whole level, read back from the topic a command arrived on', () => {
  assert.deepEqual(commandTopicErrors('sensorlet/{tenant}/{device}/actuators/{actuator}/set'), []);
  assert.match(commandTopicErrors('sensorlet/{tenant}/set')[0], /must contain \{actuator\} exactly once/);
  assert.match(commandTopicErrors('sensorlet/{tenant}/{device}/x{actuator}/set')[0], /whole level/);
  assert.match(commandTopicErrors('sensorlet/{tenant}/{device}/#/{actuator}/set')[0], /wildcard/);
  // Every tenant's connection would subscribe to the same topics: refused.
  assert.match(commandTopicErrors('cmd/{actuator}')[0], /must contain \{tenant\}/);
  assert.match(commandTopicErrors('cmd/{tenant}/{actuator}')[0], /must contain \{device\}/);
  assert.match(commandTopicErrors('cmd/t-{tenant}/{device}/{actuator}')[0], /\{tenant\} must be a whole level/);
  const topic = commandTopic('sensorlet/{tenant}/{device}/actuators/{actuator}/set', { tenant: 'acme', device: 'dev1', namespace: 'default' });
  assert.equal(topic.filter, 'sensorlet/acme/dev1/actuators/+/set');
  assert.equal(topic.actuatorOf('sensorlet/acme/dev1/actuators/boiler/set'), 'boiler');
  assert.equal(topic.actuatorOf('sensorlet/acme/dev1/actuators/boiler/set/reply'), undefined);
  assert.equal(topic.actuatorOf('sensorlet/globex/dev1/actuators/boiler/set'), undefined);
  assert.throws(() => commandTopic('sensorlet/{tenant}/{actuator}/set', { tenant: 'a/#', device: 'd', namespace: 'n' }), /TopicInjection|would change the topic/);
});
