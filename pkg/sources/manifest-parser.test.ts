import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseManifestText, readManifestDocuments, readManifestFiles, salvageIdentity } from './manifest-parser.js';

const SENSOR = (name: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata:
  name: ${name}
spec:
  driver:
    simulated: {}
`;

test('each document of a multi-document file carries the line it starts on', () => {
  const text = `# leading comment\n\n${SENSOR('a')}---\n# about b\n${SENSOR('b')}---\n---\n# only a comment\n`;
  const documents = parseManifestText('m.yaml', text);
  assert.equal(documents.length, 2, 'empty and comment-only documents are skipped');
  assert.deepEqual(documents[0].origin, { file: 'm.yaml', line: 3 });
  assert.deepEqual(documents[1].origin, { file: 'm.yaml', line: 12 });
  assert.equal((documents[1].object?.metadata as { name: string }).name, 'b');
});

test('a syntax error costs only its own document, with the file line and the salvaged identity', () => {
  const broken = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata:
  name: broken
  namespace: plant
spec:
  driver: { simulated: {
  interval: 1s
`;
  const text = `${SENSOR('before')}---\n${broken}---\n${SENSOR('after')}`;
  const documents = parseManifestText('m.yaml', text);
  assert.equal(documents.length, 3);
  assert.ok(documents[0].object && documents[2].object);
  const [, failed] = documents;
  assert.equal(failed.object, undefined);
  assert.match(failed.parseError!.message, /^YAML syntax error: /);
  assert.equal(failed.parseError!.kind, 'Sensor');
  assert.equal(failed.parseError!.name, 'broken');
  assert.equal(failed.parseError!.namespace, 'plant');
  assert.ok(failed.parseError!.line! >= 9 && failed.parseError!.line! <= 17, `line ${failed.parseError!.line}`);
  assert.equal(failed.origin.line, 9);
});

test('a document that is not a mapping is reported, not dropped', () => {
  const [document] = parseManifestText('m.yaml', '- just\n- a list\n');
  assert.equal(document.object, undefined);
  assert.match(document.parseError!.message, /must be a mapping/);
});

test('YAML scalars follow the core schema: dates stay strings, merge keys work', () => {
  const [document] = parseManifestText('m.yaml', 'base: &b { a: 1 }\nwhen: 2024-01-01\nmerged:\n  <<: *b\n  c: 2\n');
  assert.equal(document.object!.when, '2024-01-01');
  assert.deepEqual(document.object!.merged, { a: 1, c: 2 });
});

test('JSON files are one document; a JSON syntax error gets a line', () => {
  const [ok] = parseManifestText('s.json', '\n{ "kind": "Sensor", "metadata": { "name": "j" } }\n');
  assert.deepEqual(ok.origin, { file: 's.json', line: 2 });
  assert.equal(ok.object!.kind, 'Sensor');
  const [bad] = parseManifestText('s.json', '{\n  "kind": "Sensor",\n  "metadata": { "name": "j" },\n}\n');
  assert.equal(bad.object, undefined);
  assert.match(bad.parseError!.message, /^JSON syntax error/);
  assert.equal(bad.parseError!.kind, 'Sensor');
  assert.equal(bad.parseError!.name, 'j');
  assert.equal(bad.parseError!.line, 4);
});

test('salvageIdentity reads flow-style metadata and ignores nested names', () => {
  assert.deepEqual(salvageIdentity(['kind: Sink', 'metadata: { name: s1, namespace: ns }']), { kind: 'Sink', name: 's1', namespace: 'ns' });
  assert.deepEqual(salvageIdentity(['kind: "Sensor"', 'metadata:', '  labels:', '    name: label', '  name: real']), { kind: 'Sensor', name: 'real' });
});

test('readManifestFiles lists yaml, yml and json recursively, sorted, skipping dotfiles', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sensorlet-manifests-'));
  try {
    await mkdir(path.join(dir, 'sub'));
    await mkdir(path.join(dir, '.git'));
    for (const file of ['b.yaml', 'a.yml', 'sub/c.json', 'notes.txt', '.hidden.yaml', '.git/x.yaml']) await writeFile(path.join(dir, file), '');
    assert.deepEqual(await readManifestFiles(dir), ['a.yml', 'b.yaml', 'sub/c.json'].map((file) => path.join(dir, file)));
    assert.deepEqual(await readManifestFiles(path.join(dir, 'b.yaml')), [path.join(dir, 'b.yaml')]);
    await writeFile(path.join(dir, 'b.yaml'), 'kind: Sensor\n---\nkind: Sink\n');
    await writeFile(path.join(dir, 'sub/c.json'), '{"kind": "Certificate"}');
    const documents = await readManifestDocuments([dir], (file) => path.relative(dir, file));
    assert.deepEqual(
      documents.map((document) => [document.origin.file, document.origin.line, document.object?.kind]),
      [['b.yaml', 1, 'Sensor'], ['b.yaml', 3, 'Sink'], ['sub/c.json', 1, 'Certificate']],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
