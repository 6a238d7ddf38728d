import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifestText } from '../sources/manifest-parser.js';
import { formatValidationLine, formatValidationLines, validateDocuments } from './validate-set.js';
import { joinPath, locateFieldLine, splitPath } from './field-path.js';

const sensor = (name: string, extra = '') => `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata:
  name: ${name}
spec:
  driver:
    simulated: {}
${extra}`;

test('formatValidationLine: FILE[:LINE]: KIND/NAME: FIELD.PATH: message', () => {
  assert.equal(formatValidationLine('m.yaml', 7, 'Sensor', 's', { path: 'spec.interval', message: 'bad' }), 'm.yaml:7: Sensor/s: spec.interval: bad');
  assert.equal(formatValidationLine('m.yaml', undefined, 'Sensor', 's', { path: '', message: 'bad' }), 'm.yaml: Sensor/s: bad');
});

test('errors point at the line of the offending field', () => {
  const text = `# header\n${sensor('a', '  interval: soon\n')}`;
  assert.deepEqual(formatValidationLines(validateDocuments(parseManifestText('m.yaml', text))), [
    'm.yaml:9: Sensor/a: spec.interval: invalid duration "soon": use a number and a unit, like 250ms, 5s, 1m30s',
  ]);
});

test('duplicates: the later declaration is reported, naming the first; the first stays valid', () => {
  const resources = validateDocuments([...parseManifestText('a.yaml', sensor('twin')), ...parseManifestText('b.yaml', `---\n${sensor('twin')}`)]);
  assert.ok(resources[0].object);
  assert.equal(resources[1].object, undefined);
  assert.deepEqual(resources[1].errors, [
    { path: 'metadata.name', message: 'duplicate Sensor "twin" in namespace "default": first declared at a.yaml:1', reason: 'DuplicateName', line: 5 },
  ]);
  // Same name in another namespace or of another kind is no duplicate.
  const other = validateDocuments(parseManifestText('c.yaml', `${sensor('twin')}---\n${sensor('twin').replace('name: twin', 'name: twin\n  namespace: other')}`));
  assert.deepEqual(formatValidationLines(other), []);
});

test('a certificateRef must name a Certificate in the same namespace', () => {
  const sinkYaml = `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: out, namespace: plant }
spec:
  stdout: {}
  tls:
    certificateRef: { name: id }
`;
  const certificate = (namespace: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata: { name: id, namespace: ${namespace} }
spec:
  pem: { certFile: a, keyFile: b }
`;
  const dangling = validateDocuments(parseManifestText('m.yaml', `${sinkYaml}---\n${certificate('default')}`));
  assert.deepEqual(
    dangling[0].errors.map((error) => [error.reason, error.line, error.message]),
    [['CertificateNotFound', 7, 'Certificate "id" not found in namespace "plant"']],
  );
  assert.deepEqual(formatValidationLines(validateDocuments(parseManifestText('m.yaml', `${sinkYaml}---\n${certificate('plant')}`))), []);
});

test('documents without identity are still returned, so they can be printed', () => {
  const [resource] = validateDocuments(parseManifestText('m.yaml', ': : [\n'));
  assert.equal(resource.kind, 'Unknown');
  assert.equal(resource.name, '');
  assert.equal(resource.errors.length, 1);
  assert.match(formatValidationLines([resource])[0], /^m\.yaml:1: Unknown\/: YAML syntax error: /);
});

test('labels are read from metadata for selectors', () => {
  const [resource] = validateDocuments(parseManifestText('m.yaml', sensor('l').replace('  name: l', '  name: l\n  labels: { site: p1 }')));
  assert.deepEqual(resource.labels, { site: 'p1' });
  assert.equal(resource.key, 'Sensor/default/l');
});

test('field paths round-trip and locate lines in block YAML', () => {
  for (const path of ['spec.driver.simulated.period', 'spec.selector.matchExpressions[1].operator', 'metadata.labels["sensorlet.io/site"]']) {
    assert.equal(joinPath(splitPath(path)), path);
  }
  const lines = [
    'spec:',
    '  selector:',
    '    matchExpressions:',
    '    - key: a',
    '      operator: In',
    '    - key: b',
    '      operator: Foo',
    '  labels:',
    '    "sensorlet.io/site": x',
    'other:',
    '- operator: no',
  ];
  assert.equal(locateFieldLine(lines, 10, 'spec.selector.matchExpressions[1].operator'), 16);
  assert.equal(locateFieldLine(lines, 10, 'spec.selector.matchExpressions[0].key'), 13);
  assert.equal(locateFieldLine(lines, 10, 'spec.labels["sensorlet.io/site"]'), 18);
  assert.equal(locateFieldLine(lines, 10, 'spec.selector.missing'), 11, 'a missing field points at its parent');
  assert.equal(locateFieldLine(lines, 10, 'other[0].operator'), 20, 'a sequence at its key column belongs to the key');
  assert.equal(locateFieldLine(lines, 10, 'nothing'), undefined);
});
