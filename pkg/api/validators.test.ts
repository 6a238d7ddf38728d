// The precompiled validators (npm run build) are the ones the agent uses, and they check exactly what
// the schemas compiled at run time check: same verdicts, same errors, same defaults, on every
// manifest the project holds. A schema edited after the build is compiled at run time instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { KINDS, PACKAGE_ROOT, isKind } from './schemas.js';
import { PRECOMPILED_VALIDATORS_FILE, closedSchema, createAjv, validatorFor, type PrecompiledModule } from './validators.js';
import { parseManifestText, readManifestFiles } from '../sources/manifest-parser.js';

const precompiled = createRequire(import.meta.url)(PRECOMPILED_VALIDATORS_FILE) as PrecompiledModule;

async function projectManifests(): Promise<Record<string, unknown>[]> {
  const objects: Record<string, unknown>[] = [];
  for (const folder of ['test/fixtures/valid', 'test/fixtures/invalid', 'test/fixtures/hostile', 'manifests/examples']) {
    for (const file of await readManifestFiles(path.join(PACKAGE_ROOT, folder))) {
      for (const document of parseManifestText(file, await readFile(file, 'utf8'))) {
        if (document.object && isKind(document.object.kind)) objects.push(document.object);
      }
    }
  }
  return objects;
}

test('the build precompiled every kind, and the agent uses those validators', () => {
  for (const kind of KINDS) {
    assert.equal(typeof precompiled[kind], 'function', `${kind} is not in ${PRECOMPILED_VALIDATORS_FILE}: a stale build? run npm run build`);
    assert.deepEqual(validatorFor(kind, closedSchema(kind)), { validate: precompiled[kind] }, `${kind}'s precompiled validator is not the one in use: a stale build? run npm run build`);
  }
});

test('precompiled and run-time compiled validators agree on every manifest of the project', async () => {
  const objects = await projectManifests();
  assert.ok(objects.length >= 80, `only ${objects.length} manifests`);
  const ajv = createAjv({ keepSource: false });
  const validators = new Map(
    KINDS.map((kind) => {
      const schema = closedSchema(kind);
      return [kind, { fromBuild: precompiled[kind]!, fromRuntime: ajv.compile(schema) }];
    }),
  );
  const kindsSeen = new Set<string>();
  let invalid = 0;
  for (const object of objects) {
    const kind = object.kind as (typeof KINDS)[number];
    kindsSeen.add(kind);
    const { fromBuild, fromRuntime } = validators.get(kind)!;
    const [copyForBuild, copyForRuntime] = [structuredClone(object), structuredClone(object)];
    const where = `${kind}/${String((object.metadata as { name?: unknown } | undefined)?.name)}`;
    assert.equal(fromBuild(copyForBuild), fromRuntime(copyForRuntime), where);
    assert.deepEqual(fromBuild.errors, fromRuntime.errors, where);
    assert.deepEqual(copyForBuild, copyForRuntime, `${where}: defaults differ`);
    if (fromBuild.errors) invalid += 1;
  }
  assert.deepEqual([...kindsSeen].sort(), [...KINDS].sort());
  console.log(`${objects.length} manifests, ${invalid} failing their schema`);
  assert.ok(invalid >= 10, `only ${invalid} manifests fail their schema: the comparison would not cover errors`);
});

test('a schema that changed since the build is compiled at run time', () => {
  const schema = closedSchema('Sensor');
  const spec = (schema.properties as Record<string, { required?: string[] }>).spec;
  spec.required = [...(spec.required ?? []), 'addedAfterTheBuild'];
  const { validate, compiledBecause } = validatorFor('Sensor', schema);
  assert.notEqual(validate, precompiled.Sensor);
  assert.equal(compiledBecause, 'the build compiled it from another schema or with other options');
  const sensor = { apiVersion: 'sensorlet.io/v1alpha1', kind: 'Sensor', metadata: { name: 'a' }, spec: { interval: '1s', driver: { simulated: {} } } };
  assert.equal(precompiled.Sensor!(structuredClone(sensor)), true);
  assert.equal(validate(structuredClone(sensor)), false);
  assert.ok(validate.errors?.some((error) => error.keyword === 'required' && error.params.missingProperty === 'addedAfterTheBuild'));
});
