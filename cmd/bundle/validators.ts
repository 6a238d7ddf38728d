// The source of the precompiled validators (pkg/api/validators.ts says why they exist): ajv's
// standalone code for every kind, the same ajv options as at run time, and each kind's validator digest.
// The build bundles it with the ajv helpers it requires.
import standaloneModule from 'ajv/dist/standalone/index.js';
import type { Ajv } from 'ajv';
import { KINDS } from '../../pkg/api/schemas.js';
import { closedSchema, createAjv, validatorDigest, type PrecompiledModule } from '../../pkg/api/validators.js';

// A CommonJS module whose function is module.exports: Node's default import is the function itself.
const standaloneCode = ((standaloneModule as unknown as { default?: unknown }).default ?? standaloneModule) as (ajv: Ajv, refs: Record<string, string>) => string;

export function precompiledValidatorsSource(): string {
  const ajv = createAjv({ keepSource: true });
  const digests: PrecompiledModule['digests'] = {};
  for (const kind of KINDS) {
    const schema = closedSchema(kind);
    ajv.addSchema(schema, kind);
    digests[kind] = validatorDigest(schema);
  }
  const exportNames = Object.fromEntries(KINDS.map((kind) => [kind, kind]));
  return `${standaloneCode(ajv, exportNames)}\nexports.digests = ${JSON.stringify(digests)};\n`;
}
