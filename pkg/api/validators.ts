// How each kind's validator is made: ajv compiles the kind's JSON Schema, closed (see closeObjects),
// into a function. Compiling costs 40-140 ms of synchronous work per kind, about 0.25 s for all of
// them, and an agent must not pay that while it starts or hold its event loop for it later. So
// `npm run build` compiles every kind ahead of time into PRECOMPILED_VALIDATORS_FILE (ajv's
// standalone code, with the ajv helpers it calls bundled in: cmd/bundle/validators.ts), which loads
// in a few milliseconds.
// Each precompiled validator carries the digest of the schema it was compiled from; a kind whose
// schema no longer matches (schemas/ edited after the build) is compiled here at run time, so the
// validator always checks the schema the agent reads.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Ajv, ValidateFunction } from 'ajv';
import { lazyRequire } from './lazy-require.js';
import { PACKAGE_ROOT, loadSchema, walkSchema, type JsonSchema, type Kind } from './schemas.js';

// Required only to compile: an agent whose validators are all precompiled never loads ajv (about
// 100 KB of code).
const ajvPackage = lazyRequire<typeof import('ajv')>('ajv');
const ajvFormats = lazyRequire<typeof import('ajv-formats')>('ajv-formats');

export const PRECOMPILED_VALIDATORS_FILE = path.join(PACKAGE_ROOT, 'dist/schemas/validators.cjs');

/** The same options at build time and at run time: `code.source` only keeps the generated source. */
export function createAjv(options: { keepSource: boolean }): Ajv {
  const ajv = new (ajvPackage().Ajv)({
    allErrors: true,
    useDefaults: true,
    verbose: true,
    strict: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    code: { source: options.keepSource },
  });
  const addFormats = ((ajvFormats() as unknown as { default?: unknown }).default ?? ajvFormats()) as (ajv: Ajv) => void;
  addFormats(ajv);
  // Kubernetes structural-schema annotations: meaningful to the API server, not to validation here.
  for (const keyword of [
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type',
    'x-kubernetes-int-or-string',
    'x-kubernetes-embedded-resource',
    'x-kubernetes-validations',
  ]) {
    ajv.addKeyword({ keyword, schemaType: ['boolean', 'string', 'array', 'object'] });
  }
  // The upper bound of a Duration field, checked with the other semantic checks (validate.ts).
  ajv.addKeyword({ keyword: 'maxDuration', schemaType: 'string' });
  return ajv;
}

/**
 * Every object that declares `properties` gets `additionalProperties: false` (unless it preserves
 * unknown fields): the API server would silently prune unknown fields, which hides typos, so here
 * they are errors.
 */
function closeObjects(schema: JsonSchema): JsonSchema {
  const copy = structuredClone(schema);
  // A oneOf/anyOf/allOf branch may list only some of the object's properties; closing the branch
  // would reject the others. The object that holds the combinator is closed instead.
  const branches = new Set<JsonSchema>();
  walkSchema(copy, (node) => {
    for (const combinator of ['oneOf', 'anyOf', 'allOf']) {
      if (Array.isArray(node[combinator])) for (const branch of node[combinator] as JsonSchema[]) branches.add(branch);
    }
  });
  walkSchema(copy, (node) => {
    if (branches.has(node)) return;
    if (node.properties && typeof node.properties === 'object' && node.additionalProperties === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) {
      node.additionalProperties = false;
    }
  });
  return copy;
}

/** The schema a kind's validator checks: the kind's file with the shared definitions, closed. */
export function closedSchema(kind: Kind): JsonSchema {
  return closeObjects(loadSchema(kind));
}

export function schemaDigest(schema: JsonSchema): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

/** PRECOMPILED_VALIDATORS_FILE: each kind's validator by kind name, and each kind's schema digest. */
export type PrecompiledModule = Partial<Record<Kind, ValidateFunction>> & { digests?: Partial<Record<Kind, string>> };

let precompiled: PrecompiledModule | undefined;
let runtimeAjv: Ajv | undefined;

function loadPrecompiled(): PrecompiledModule {
  if (!precompiled) {
    try {
      precompiled = createRequire(import.meta.url)(PRECOMPILED_VALIDATORS_FILE) as PrecompiledModule;
    } catch {
      precompiled = {}; // not built (tsc alone) or unreadable: every kind is compiled at run time
    }
  }
  return precompiled;
}

/** `schema` (closedSchema(kind)) as a validator: precompiled when it matches, else compiled now. */
export function validatorFor(kind: Kind, schema: JsonSchema, options: { precompiled: boolean } = { precompiled: true }): ValidateFunction {
  if (options.precompiled) {
    const module = loadPrecompiled();
    const validate = module[kind];
    if (validate && module.digests?.[kind] === schemaDigest(schema)) return validate;
  }
  runtimeAjv ??= createAjv({ keepSource: false });
  return runtimeAjv.compile(schema);
}
