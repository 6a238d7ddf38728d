import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTemplate, type TemplateRules } from './template.js';

const rules = (extra: Partial<TemplateRules> = {}): TemplateRules => ({
  forbidden: /[/]/,
  refuse: (name, value) => Object.assign(new Error(`${name}=${JSON.stringify(value)}`), { code: 'Refused' }),
  ...extra,
});

test('variables are filled in; each use says which characters a value must not contain', () => {
  assert.equal(renderTemplate('a/{x}/{y}', { x: '1', y: 'b+c' }, rules()), 'a/1/b+c');
  assert.throws(() => renderTemplate('a/{x}', { x: 'b+c' }, rules({ forbidden: /[+]/ })), /x="b\+c"/);
  assert.throws(() => renderTemplate('a/{x}', { x: '../etc' }, rules()), /x="\.\.\/etc"/);
});

test('a name without a value is refused, never rendered as "undefined" or left in braces', () => {
  assert.throws(() => renderTemplate('a/{z}', { x: '1' }, rules()), /^Error: z=undefined$/);
  assert.throws(() => renderTemplate('a/{constructor}', {}, rules()), /constructor=undefined/);
  // An empty value passes unless the use requires one.
  assert.equal(renderTemplate('a/{x}', { x: '' }, rules()), 'a/');
  assert.throws(() => renderTemplate('a/{x}', { x: '' }, rules({ requireValue: true })), /x=""/);
});
