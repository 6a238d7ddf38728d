// The broken-manifest corpus: every file under test/fixtures/invalid/ states in its header the exact
// lines `sensorlet validate` prints for it, the conditions `run` sets, and the Sensors that must keep
// running beside the broken ones. This test holds the validator to those headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from './schemas.js';
import { parseManifestText, readManifestFiles } from '../sources/manifest-parser.js';
import { formatValidationLines, validateDocuments, type ValidatedResource } from './validate-set.js';
import type { SourceDocument } from '../sources/source.js';

const INVALID_DIR = path.join(PACKAGE_ROOT, 'test/fixtures/invalid');
const VALID_DIR = path.join(PACKAGE_ROOT, 'test/fixtures/valid');

interface Fixture {
  file: string;
  text: string;
  expectValidate: string[];
  expectConditions: { kind: string; name: string; reason: string }[];
  expectRunning: string[];
}

function headerValues(text: string, tag: string): string[] {
  const prefix = `# ${tag}: `;
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length).trimEnd());
}

async function loadFixtures(dir: string): Promise<Fixture[]> {
  const files = await readManifestFiles(dir);
  return Promise.all(
    files.map(async (full) => {
      const text = await readFile(full, 'utf8');
      return {
        file: path.relative(PACKAGE_ROOT, full),
        text,
        expectValidate: headerValues(text, 'expect-validate'),
        expectConditions: headerValues(text, 'expect-condition').map((value) => {
          const match = /^(\w+)\/(\S+) Ready=False (\w+)$/.exec(value);
          assert.ok(match, `malformed expect-condition: ${value}`);
          return { kind: match[1], name: match[2], reason: match[3] };
        }),
        expectRunning: headerValues(text, 'expect-running'),
      };
    }),
  );
}

function validate(fixtures: Fixture[]): ValidatedResource[] {
  const documents: SourceDocument[] = fixtures.flatMap((fixture) => parseManifestText(fixture.file, fixture.text));
  return validateDocuments(documents);
}

const invalid = await loadFixtures(INVALID_DIR);

test('the corpus has at least 22 broken manifest files, each with expectations', () => {
  assert.ok(invalid.length >= 22, `only ${invalid.length} fixtures`);
  for (const fixture of invalid) {
    assert.ok(fixture.expectValidate.length > 0, `${fixture.file} has no expect-validate line`);
    assert.ok(fixture.expectRunning.length > 0, `${fixture.file} has no expect-running sensor`);
  }
});

for (const fixture of invalid) {
  test(`validate ${fixture.file}`, () => {
    const resources = validate([fixture]);
    assert.deepEqual(new Set(formatValidationLines(resources)), new Set(fixture.expectValidate));

    for (const name of fixture.expectRunning) {
      const sensor = resources.find((resource) => resource.kind === 'Sensor' && resource.name === name && resource.errors.length === 0);
      assert.ok(sensor, `Sensor/${name} should be valid`);
      assert.ok(sensor.object, `Sensor/${name} should have a validated object`);
    }
    for (const { kind, name, reason } of fixture.expectConditions) {
      const broken = resources.find((resource) => resource.kind === kind && resource.name === name && resource.errors.length > 0);
      assert.ok(broken, `${kind}/${name} should be invalid`);
      assert.equal(broken.errors[0].reason, reason, `${kind}/${name} reason`);
      assert.equal(broken.object, undefined);
    }
  });
}

test('the whole corpus loads as one set with no clashes between files', () => {
  // The run test loads the folder into one agent: names must be unique across files, so the set's
  // lines are exactly the union of the per-file lines.
  const lines = formatValidationLines(validate(invalid));
  assert.deepEqual(new Set(lines), new Set(invalid.flatMap((fixture) => fixture.expectValidate)));
});

test('the valid fixtures validate cleanly, alone and together', async () => {
  const valid = await loadFixtures(VALID_DIR);
  assert.ok(valid.length >= 3);
  const resources = validate(valid);
  assert.deepEqual(formatValidationLines(resources), []);
  assert.ok(resources.every((resource) => resource.object !== undefined));
  assert.ok(resources.some((resource) => resource.kind === 'Sink'));
});
