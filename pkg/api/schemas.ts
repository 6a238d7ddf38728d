// The JSON Schemas under schemas/ are the single source of truth for the resource model: validation,
// generated TypeScript types and the CRDs all come from them.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const API_GROUP = 'sensorlet.io';
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const KINDS = ['Sensor', 'Sink', 'Certificate', 'Firmware', 'Actuator'] as const;
export type Kind = (typeof KINDS)[number];

/**
 * The per-node report of the fleet roll-up: a CRD generated from schemas/ like the kinds above, but
 * written by agents about themselves, never watched as a declared resource.
 */
export const REPORT_KIND = 'NodeReport';
/** Every kind with a CRD. */
export const CRD_KINDS = [...KINDS, REPORT_KIND] as const;
export type CrdKind = (typeof CRD_KINDS)[number];

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && (KINDS as readonly string[]).includes(value);
}

/**
 * The package root: this file is dist/pkg/api/schemas.js once compiled, or part of the CLI bundle
 * dist/cmd/sensorlet/main.js (cmd/bundle): both three levels below the root.
 */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SCHEMAS_DIR = path.join(PACKAGE_ROOT, 'schemas');

export type JsonSchema = { [key: string]: unknown };

function readJson(file: string): JsonSchema {
  return JSON.parse(readFileSync(file, 'utf8')) as JsonSchema;
}

export function schemaFileFor(kind: CrdKind): string {
  return path.join(SCHEMAS_DIR, `${kind.toLowerCase()}.schema.json`);
}

/** A kind's schema with the shared definitions merged in, so every $ref resolves locally. */
export function loadSchema(kind: CrdKind): JsonSchema {
  const shared = readJson(path.join(SCHEMAS_DIR, 'definitions.json'));
  const schema = readJson(schemaFileFor(kind));
  return { ...schema, definitions: { ...(shared.definitions as JsonSchema), ...((schema.definitions as JsonSchema) ?? {}) } };
}

/** Replaces every local $ref by the definition it names (CRD schemas allow no $ref). */
export function inlineRefs(schema: JsonSchema, root: JsonSchema = schema): JsonSchema {
  const resolve = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(resolve);
    if (node === null || typeof node !== 'object') return node;
    const object = node as JsonSchema;
    if (typeof object.$ref === 'string') {
      const name = object.$ref.replace(/^#\/definitions\//, '');
      const target = (root.definitions as JsonSchema | undefined)?.[name];
      if (!target) throw new Error(`unresolved $ref ${object.$ref}`);
      const { $ref: _ignored, ...siblings } = object;
      return resolve({ ...(target as JsonSchema), ...siblings });
    }
    const out: JsonSchema = {};
    for (const [key, value] of Object.entries(object)) {
      if (key === 'definitions') continue;
      out[key] = resolve(value);
    }
    return out;
  };
  return resolve(schema) as JsonSchema;
}

/** Walks every schema node (objects only), depth first. */
export function walkSchema(node: unknown, visit: (node: JsonSchema) => void): void {
  if (Array.isArray(node)) return node.forEach((item) => walkSchema(item, visit));
  if (node === null || typeof node !== 'object') return;
  visit(node as JsonSchema);
  for (const value of Object.values(node as JsonSchema)) walkSchema(value, visit);
}
