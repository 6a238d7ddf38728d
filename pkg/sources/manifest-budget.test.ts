import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MANIFEST_BUDGET, parseManifestText } from './manifest-parser.js';
import { formatValidationLines, validateDocuments } from '../api/validate-set.js';

const SENSOR_HEAD = 'apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\n';

/** Twenty lines that expand to 9^9 (387 million) strings in anything that walks the result. */
export function aliasBomb(name: string): string {
  const lines = [`metadata: { name: ${name} }`, 'spec:', '  driver: { simulated: {} }', '  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i <= 9; i++) lines.push(`  a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
  return `${SENSOR_HEAD}${lines.join('\n')}\n`;
}

const healthy = (name: string) => `${SENSOR_HEAD}metadata: { name: ${name} }\nspec:\n  driver: { simulated: { waveform: counter } }\n  interval: 1s\n`;

function measured<T>(run: () => T): { result: T; ms: number; heapMb: number } {
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const result = run();
  return { result, ms: performance.now() - started, heapMb: (process.memoryUsage().heapUsed - heapBefore) / 1e6 };
}

test('a YAML alias bomb is one error naming the document, found at once and cheaply; its neighbours still load', () => {
  const text = `${healthy('before')}---\n${aliasBomb('bomb')}---\n${healthy('after')}`;
  const { result: documents, ms, heapMb } = measured(() => parseManifestText('bomb.yaml', text));
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.ok(heapMb < 20, `heap grew ${heapMb} MB`);
  assert.deepEqual(documents.map((document) => (document.object?.metadata as { name?: string } | undefined)?.name ?? document.parseError?.name), ['before', 'bomb', 'after']);
  const bomb = documents[1];
  assert.equal(bomb.object, undefined);
  assert.match(bomb.parseError!.message, /expands to more than 10000 values/);
  assert.equal(bomb.parseError!.kind, 'Sensor');
  assert.match(bomb.parseError!.path!, /^spec\.a\d/);
  const lines = formatValidationLines(validateDocuments(documents));
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^bomb\.yaml:\d+: Sensor\/bomb: spec\.a\d[[\]0-9]*: the document expands to more than 10000 values/);
});

test('JSON nested 4,000 deep is refused before it is parsed, with the line and identity', () => {
  const text = `{"apiVersion":"sensorlet.io/v1alpha1","kind":"Sensor","metadata":{"name":"deep"},\n"spec":${'['.repeat(4000)}${']'.repeat(4000)}}`;
  const { result: documents, ms } = measured(() => parseManifestText('deep.json', text));
  assert.ok(ms < 1000);
  assert.equal(documents.length, 1);
  assert.deepEqual(
    formatValidationLines(validateDocuments(documents)),
    [`deep.json:2: Sensor/deep: the document nests deeper than ${MANIFEST_BUDGET.maxDepth} levels; not loaded`],
  );
  // Brackets inside strings are text, not nesting.
  const quoted = parseManifestText('q.json', `{"kind":"Sensor","metadata":{"name":"q"},"x":"${'['.repeat(100)}"}`);
  assert.equal(quoted[0].parseError, undefined);
});

test('YAML nested 4,000 deep (flow or through aliases) is one clear error', () => {
  const flow = parseManifestText('flow.yaml', `${SENSOR_HEAD}metadata: { name: flow }\nspec: ${'['.repeat(4000)}${']'.repeat(4000)}\n`);
  assert.match(flow[0].parseError!.message, /nests deeper than 64 levels/);
  assert.equal(flow[0].parseError!.name, 'flow');
  const looped = parseManifestText('loop.yaml', `${SENSOR_HEAD}metadata: { name: loop }\nspec: &self { driver: { simulated: {} }, again: *self }\n`);
  assert.match(looped[0].parseError!.message, /contains itself through a YAML alias/);
});

test('a file over its document or value budget is one error, and none of its documents loads', () => {
  const many = Array.from({ length: MANIFEST_BUDGET.maxDocumentsPerFile + 1 }, () => 'a: 1\n').join('---\n');
  const manyDocuments = parseManifestText('many.yaml', many);
  assert.equal(manyDocuments.length, 1);
  assert.match(manyDocuments[0].parseError!.message, /more than 10000 documents; none of its documents is loaded/);

  const wide = `[${Array(9000).fill(0).join(',')}]`;
  const heavy = Array.from({ length: 30 }, (_, i) => `${SENSOR_HEAD}metadata: { name: s${i} }\nspec: { values: ${wide} }\n`).join('---\n');
  const heavyDocuments = parseManifestText('heavy.yaml', heavy);
  assert.equal(heavyDocuments.length, 1);
  assert.match(heavyDocuments[0].parseError!.message, /the file expands to more than 250000 values/);
  assert.ok(heavyDocuments[0].parseError!.line! > 1);
});

test('ordinary large files stay well within the budget', () => {
  const text = Array.from({ length: 1000 }, (_, i) => healthy(`s${i}`)).join('---\n');
  const documents = parseManifestText('sensors.yaml', text);
  assert.equal(documents.length, 1000);
  assert.ok(documents.every((document) => document.parseError === undefined));
});
