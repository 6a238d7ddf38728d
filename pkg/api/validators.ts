// How each kind's validator is made: ajv compiles the kind's JSON Schema, closed (see closeObjects),
// into a function. Compiling costs 40-140 ms of synchronous work per kind, about 0.25 s for all of
// them, and an agent must not pay that while it starts or hold its event loop for it later. So
// `npm run build` compiles every kind ahead of time into PRECOMPILED_VALIDATORS_FILE (ajv's
// standalone code, with the ajv helpers it calls bundled in: cmd/bundle/validators.ts), which loads
// in a few milliseconds.
// Each precompiled validator carries the digest of what it was compiled from (the schema, ajv's
// options, the keywords); a kind that no longer matches (schemas/ edited after the build), or every
// kind when the file is missing (tsc alone), is compiled here at run time, so the validator always
// checks the schema the agent reads; the agent then logs a warning, since that costs time and memory.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Ajv, ErrorObject } from 'ajv';
import { lazyRequire } from './lazy-require.js';
import { PACKAGE_ROOT, loadSchema, walkSchema, type JsonSchema, type Kind } from './schemas.js';

// Required only to compile: an agent whose validators are all precompiled never loads ajv (about
// 100 KB of code).
const ajvPackage = lazyRequire<typeof import('ajv')>('ajv');
const ajvFormats = lazyRequire<typeof import('ajv-formats')>('ajv-formats');

export const PRECOMPILED_VALIDATORS_FILE = path.join(PACKAGE_ROOT, 'dist/schemas/validators.cjs');

// How schemas are compiled, at build time and at run time alike. Both are part of each validator's
// digest: a build with other options or keywords is not the validator this code expects.
const AJV_OPTIONS = {
  allErrors: true,
  useDefaults: true,
  verbose: true,
  strict: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
} as const;
/**
 * Kubernetes structural-schema annotations, meaningful to the API server, not to validation here;
 * and maxDuration, the upper bound of a Duration field, checked with the other semantic checks
 * (validate.ts).
 */
const NO_OP_KEYWORDS = [
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-validations',
  'maxDuration',
] as const;

/** An ajv instance with the options and keywords above; `keepSource` keeps the generated code (build time). */
export function createAjv(options: { keepSource: boolean }): Ajv {
  const ajv = new (ajvPackage().Ajv)({ ...AJV_OPTIONS, code: { source: options.keepSource } });
  const formats = ajvFormats();
  const addFormats = ((formats as unknown as { default?: unknown }).default ?? formats) as (ajv: Ajv) => void;
  addFormats(ajv);
  for (const keyword of NO_OP_KEYWORDS) {
    ajv.addKeyword({ keyword, schemaType: keyword === 'maxDuration' ? 'string' : ['boolean', 'string', 'array', 'object'] });
  }
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

/** What a validator is compiled from: the schema, the ajv options and the keywords. */
export function validatorDigest(schema: JsonSchema): string {
  return createHash('sha256').update(JSON.stringify({ schema, options: AJV_OPTIONS, keywords: NO_OP_KEYWORDS })).digest('hex');
}

/** A validator as ajv makes it, whether precompiled or compiled here (standalone ones have no `.schema`). */
export type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

/** PRECOMPILED_VALIDATORS_FILE: each kind's validator by kind name, and each kind's validator digest. */
export type PrecompiledModule = Partial<Record<Kind, Validator>> & { digests?: Partial<Record<Kind, string>> };

/** A kind's validator, and why it was compiled at run time when it was. */
export interface KindValidator {
  validate: Validator;
  compiledBecause?: string;
}

let precompiled: { module: PrecompiledModule; problem?: string } | undefined;
let runtimeAjv: Ajv | undefined;

function loadPrecompiled(): { module: PrecompiledModule; problem?: string } {
  if (!precompiled) {
    const file = path.relative(PACKAGE_ROOT, PRECOMPILED_VALIDATORS_FILE);
    try {
      precompiled = { module: createRequire(import.meta.url)(PRECOMPILED_VALIDATORS_FILE) as PrecompiledModule };
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
      precompiled = { module: {}, problem: missing ? `${file} is missing` : `${file} could not be loaded: ${String((error as Error).message).split('\n')[0].slice(0, 200)}` };
    }
  }
  return precompiled;
}

/** The build's validator of `schema` (closedSchema(kind)), or why there is none that matches it. */
export function precompiledValidator(kind: Kind, schema: JsonSchema): { validate: Validator } | { problem: string } {
  const { module, problem } = loadPrecompiled();
  const validate = module[kind];
  if (validate && module.digests?.[kind] === validatorDigest(schema)) return { validate };
  return { problem: problem ?? (validate ? 'the build compiled it from another schema or with other options' : 'it is not in the build') };
}

/** `schema` (closedSchema(kind)) as a validator: precompiled when it matches, else compiled now. */
export function validatorFor(kind: Kind, schema: JsonSchema): KindValidator {
  const found = precompiledValidator(kind, schema);
  if ('validate' in found) return found;
  runtimeAjv ??= createAjv({ keepSource: false });
  return { validate: runtimeAjv.compile(schema), compiledBecause: found.problem };
}
