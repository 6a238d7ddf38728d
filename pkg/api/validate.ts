// Validation of one declared object: the JSON Schema of its kind (ajv), then the checks a schema
// cannot express (durations and quantities parse, regexes compile, MQTT topic templates, and each
// driver's and transport's own validate hook). Messages name the field path and say how to fix it,
// one message per problem: ajv's raw output is translated and its cascades are dropped.
import type { ErrorObject } from 'ajv';
import { API_VERSION, KINDS, inlineRefs, isKind, type JsonSchema, type Kind } from './schemas.js';
import { closedSchema, validatorFor, type Validator } from './validators.js';
import { DEFAULT_NAMESPACE, type FieldError } from './resource.js';
import { parseDuration, parseQuantity } from './units.js';
import { patternProblem } from './pattern.js';
import { joinPath, pointerSegments, type PathSegment } from './field-path.js';
import { redactCredentials } from './redact.js';
import { driverFactory, selectedDriver } from '../drivers/index.js';
import { transportFactories } from '../sinks/index.js';
import { actuatorSpecErrors } from '../actuators/index.js';

export const INVALID_SPEC = 'InvalidSpec';

export interface ValidationResult {
  /** A deep copy with schema defaults applied; only when there are no errors. */
  object?: Record<string, unknown>;
  errors: FieldError[];
}


const HINT_DURATION = 'use a number and a unit, like 250ms, 5s, 1m30s';
const HINT_QUANTITY = 'use a number and an optional suffix, like 64Mi or 500k';
const HINT_DNS_LABEL = "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";
const HINT_NAME = "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";

/** Fields that were removed on purpose: what to use instead, rather than a bare "unknown field". */
const REMOVED_FIELDS: Record<string, string> = {
  'spec.artifact.signature.publicKey':
    'removed: the keys that verify Firmware come only from the trust store the operator gives the agent; name one with keyRef: { name } and sign a statement (sensorlet firmware sign)',
};

interface CompiledKind {
  validate: Validator;
  /** Why the validator was compiled at run time instead of loaded precompiled, when it was. */
  compiledBecause?: string;
  /** The schema with every $ref inlined, walked alongside objects for the semantic checks. */
  inlined: JsonSchema;
  /** pattern source → name of the shared definition it comes from (Duration, Quantity, DnsLabel...). */
  patternNames: Map<string, string>;
}

const compiled = new Map<Kind, CompiledKind>();

function compiledFor(kind: Kind): CompiledKind {
  let entry = compiled.get(kind);
  if (!entry) {
    const schema = closedSchema(kind);
    const patternNames = new Map<string, string>();
    for (const [name, definition] of Object.entries((schema.definitions as Record<string, JsonSchema>) ?? {})) {
      if (typeof definition.pattern === 'string') patternNames.set(definition.pattern, name);
    }
    entry = { ...validatorFor(kind, schema), inlined: inlineRefs(schema), patternNames };
    compiled.set(kind, entry);
  }
  return entry;
}

/**
 * Makes every kind's validator ready now (validators.ts: loaded precompiled, or compiled). Done
 * lazily, the first resource of a kind to arrive at a running agent (the first Actuator, say) could
 * hold the event loop, and /healthz with it, while its schema compiled. The agent calls this while
 * starting. Returns the kinds compiled at run time and why: the build's precompiled validators were
 * missing or stale, which costs start-up time and memory, so the agent says so.
 */
export function prepareAllKinds(): { kind: Kind; compiledBecause: string }[] {
  return KINDS.flatMap((kind) => {
    const { compiledBecause } = compiledFor(kind);
    return compiledBecause ? [{ kind, compiledBecause }] : [];
  });
}

export function validateObject(object: Record<string, unknown>): ValidationResult {
  const identityErrors = checkApiVersionAndKind(object);
  if (identityErrors.length > 0) return { errors: identityErrors };
  const kind = object.kind as Kind;
  const { status: _ignoredStatus, ...declared } = object;
  const copy = structuredClone(declared);
  const { validate, inlined, patternNames } = compiledFor(kind);
  validate(copy);
  const errors = translateAjvErrors(validate.errors ?? [], patternNames);
  const add = (error: FieldError) => {
    if (!errors.some((existing) => existing.path === error.path)) errors.push(error);
  };
  for (const error of semanticErrors(copy, inlined, patternNames)) add(error);
  // Plugin hooks assume a schema-valid config, so they run only once the schema is satisfied.
  if (errors.length === 0) for (const error of [...scheduleErrors(kind, copy), ...pluginErrors(kind, copy)]) add(error);
  if (errors.length > 0) return { errors };
  const metadata = copy.metadata as Record<string, unknown>;
  metadata.namespace ??= DEFAULT_NAMESPACE;
  return { object: copy, errors: [] };
}

function fieldError(path: string, message: string, reason = INVALID_SPEC): FieldError {
  // Messages quote the values they refuse: never a URL's password.
  return { path, message: redactCredentials(message), reason };
}

function checkApiVersionAndKind(object: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  const { apiVersion, kind } = object;
  if (apiVersion === undefined) errors.push(fieldError('apiVersion', `required field is missing: use ${API_VERSION}`));
  else if (apiVersion !== API_VERSION) errors.push(fieldError('apiVersion', `unknown apiVersion ${JSON.stringify(apiVersion)}: use ${API_VERSION}`));
  if (kind === undefined) errors.push(fieldError('kind', `required field is missing: use one of ${KINDS.join(', ')}`));
  else if (!isKind(kind)) errors.push(fieldError('kind', `unknown kind ${JSON.stringify(kind)}: use one of ${KINDS.join(', ')}`));
  return errors;
}

/** `must set exactly one of` unions are oneOf lists of single `required` keys (like Pod volumes). */
function unionMembers(oneOf: unknown): string[] | undefined {
  if (!Array.isArray(oneOf)) return undefined;
  const members: string[] = [];
  for (const branch of oneOf as JsonSchema[]) {
    const keys = Object.keys(branch ?? {});
    const required = branch?.required;
    if (keys.length !== 1 || !Array.isArray(required) || required.length !== 1) return undefined;
    members.push(String(required[0]));
  }
  return members;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

function patternMessage(error: ErrorObject, segments: PathSegment[], patternNames: Map<string, string>): string {
  const value = JSON.stringify(error.data);
  const pattern = String(error.params.pattern);
  const definition = patternNames.get(pattern);
  const where = joinPath(segments);
  if (definition === 'Duration') return `invalid duration ${value}: ${HINT_DURATION}`;
  if (definition === 'Quantity') return `invalid quantity ${value}: ${HINT_QUANTITY}`;
  if (where === 'metadata.name') return `invalid name ${value}: ${HINT_NAME}`;
  if (definition === 'DnsLabel' || where === 'metadata.namespace') return `invalid ${String(segments.at(-1))} ${value}: ${HINT_DNS_LABEL}`;
  return `invalid value ${value}: must match the pattern ${pattern}`;
}

/** One human message per ajv error that is the root of a problem; cascades return undefined. */
function translateAjvErrors(ajvErrors: ErrorObject[], patternNames: Map<string, string>): FieldError[] {
  const unions = ajvErrors.filter((error) => error.keyword === 'oneOf');
  const unknownFieldParents = new Set(ajvErrors.filter((error) => error.keyword === 'additionalProperties').map((error) => error.instancePath));
  const isInsideFailedUnion = (error: ErrorObject) =>
    unions.some((union) => union !== error && union.instancePath === error.instancePath && error.schemaPath.startsWith(`${union.schemaPath}/`));

  // A value of the wrong type fails every other rule about it too; the type is the one problem.
  const wrongTypes = new Set(ajvErrors.filter((error) => error.keyword === 'type').map((error) => error.instancePath));
  const isCascadeOfWrongType = (error: ErrorObject) => error.keyword !== 'type' && wrongTypes.has(error.instancePath);

  const errors: FieldError[] = [];
  for (const error of ajvErrors) {
    if (isInsideFailedUnion(error) || isCascadeOfWrongType(error)) continue;
    const segments = pointerSegments(error.instancePath);
    let path = joinPath(segments);
    let message: string;
    switch (error.keyword) {
      case 'additionalProperties': {
        const field = String(error.params.additionalProperty);
        path = joinPath([...segments, field]);
        message = REMOVED_FIELDS[path] ? `${JSON.stringify(field)} was ${REMOVED_FIELDS[path]}` : `unknown field ${JSON.stringify(field)}`;
        break;
      }
      case 'required': {
        path = joinPath([...segments, String(error.params.missingProperty)]);
        message = 'required field is missing';
        break;
      }
      case 'oneOf': {
        const members = unionMembers(error.schema);
        if (!members) {
          message = 'must match exactly one of the allowed forms';
          break;
        }
        const data = (error.data ?? {}) as Record<string, unknown>;
        const set = members.filter((member) => data[member] !== undefined);
        // An unknown key where a union member was expected is almost always a typo of that member:
        // "unknown field" already says so, and "set none of" would be the same problem twice.
        if (set.length === 0 && unknownFieldParents.has(error.instancePath)) continue;
        message = `must set exactly one of: ${members.join(', ')}`;
        if (set.length > 1) message += ` (found ${set.slice(0, -1).join(', ')} and ${set.at(-1)})`;
        break;
      }
      case 'type': {
        const expected = String(error.params.type)
          .split(',')
          .map((type) => TYPE_NAMES[type] ?? type)
          .join(' or ');
        message = `must be ${expected}, got ${describeValue(error.data)}`;
        break;
      }
      case 'enum': {
        const allowed = (error.params.allowedValues as unknown[]).map((value) => (typeof value === 'string' ? value : JSON.stringify(value)));
        message = `must be one of: ${allowed.join(', ')} (got ${JSON.stringify(error.data)})`;
        break;
      }
      case 'const':
        message = `must be ${JSON.stringify(error.params.allowedValue)} (got ${JSON.stringify(error.data)})`;
        break;
      case 'pattern':
        message = patternMessage(error, segments, patternNames);
        break;
      case 'minimum':
      case 'exclusiveMinimum':
      case 'maximum':
      case 'exclusiveMaximum': {
        const words = { minimum: 'at least', exclusiveMinimum: 'greater than', maximum: 'at most', exclusiveMaximum: 'less than' };
        message = `must be ${words[error.keyword]} ${String(error.params.limit)} (got ${JSON.stringify(error.data)})`;
        break;
      }
      case 'minLength':
        message = error.params.limit === 1 ? 'must not be empty' : `must be at least ${String(error.params.limit)} characters long`;
        break;
      case 'maxLength':
        message = `must be at most ${String(error.params.limit)} characters long (got ${String((error.data as string).length)})`;
        break;
      case 'minItems':
        message = error.params.limit === 1 ? 'must not be empty' : `must have at least ${String(error.params.limit)} items`;
        break;
      case 'maxItems':
        message = `must have at most ${String(error.params.limit)} items`;
        break;
      case 'format':
        message = `invalid ${String(error.params.format)} ${JSON.stringify(error.data)}`;
        break;
      default:
        message = error.message ?? `failed ${error.keyword}`;
    }
    if (!errors.some((existing) => existing.path === path && existing.message === message)) errors.push(fieldError(path, message));
  }
  return errors;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Fields whose strings are regular expressions: `format: regex`, or named `pattern` / `...Pattern`. */
function isRegexField(key: PathSegment, schema: JsonSchema): boolean {
  if (schema.format === 'regex') return true;
  return typeof key === 'string' && (key === 'pattern' || key.endsWith('Pattern')) && schema.type === 'string';
}

/**
 * Every Duration has an upper bound: its field's `maxDuration`, else DEFAULT_MAX_DURATION. Durations
 * become timers, and a timer beyond 2^31-1 ms (about 24.8 days) fires after 1 ms in Node; a bound
 * also keeps a typo ("1000h") from making a resource silent for weeks.
 */
const DEFAULT_MAX_DURATION = '576h';

function durationBoundProblem(value: string, node: JsonSchema): string | undefined {
  const ms = parseDuration(value); // throws on a malformed duration: reported by the caller
  const limit = typeof node.maxDuration === 'string' ? node.maxDuration : DEFAULT_MAX_DURATION;
  if (ms > parseDuration(limit)) return `must be at most ${limit} (got ${JSON.stringify(value)})`;
  return undefined;
}

/** Walks the object alongside its (ref-inlined) schema and checks what patterns cannot. */
function semanticErrors(object: Record<string, unknown>, schema: JsonSchema, patternNames: Map<string, string>): FieldError[] {
  const errors: FieldError[] = [];
  const visit = (value: unknown, node: JsonSchema | undefined, segments: PathSegment[]) => {
    if (!node) return;
    const key = segments.at(-1) ?? '';
    const path = joinPath(segments);
    if (typeof value === 'string') {
      const definition = typeof node.pattern === 'string' ? patternNames.get(node.pattern) : undefined;
      try {
        if (definition === 'Duration') {
          const problem = durationBoundProblem(value, node);
          if (problem) errors.push(fieldError(path, problem));
        }
        if (definition === 'Quantity') parseQuantity(value);
      } catch (error) {
        errors.push(fieldError(path, (error as Error).message));
      }
      if (isRegexField(key, node)) {
        const problem = patternProblem(value);
        if (problem) errors.push(fieldError(path, problem));
      }
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, node.items as JsonSchema | undefined, [...segments, index]));
      return;
    }
    if (isRecord(value)) {
      const properties = (node.properties ?? {}) as Record<string, JsonSchema>;
      for (const [childKey, child] of Object.entries(value)) {
        const childSchema = properties[childKey] ?? (isRecord(node.additionalProperties) ? (node.additionalProperties as JsonSchema) : undefined);
        visit(child, childSchema, [...segments, childKey]);
      }
    }
  };
  visit(object, schema, []);
  return errors;
}

/**
 * A Sensor's interval and timeout must be durations above zero: zero would poll in a tight loop or
 * time out every read. How short they may be is the operator's (--min-interval, --min-timeout) and
 * is checked by the agent that runs the Sensor.
 */
function scheduleErrors(kind: Kind, object: Record<string, unknown>): FieldError[] {
  if (kind !== 'Sensor') return [];
  const spec = object.spec as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const [field, flag] of [['interval', '--min-interval'], ['timeout', '--min-timeout']] as const) {
    const value = spec[field];
    if (typeof value !== 'string') continue;
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      continue; // already reported as an invalid duration
    }
    if (!(ms > 0)) errors.push(fieldError(`spec.${field}`, `must be greater than 0 (got ${JSON.stringify(value)}); the agent's minimum is set by its ${flag} flag`));
  }
  return errors;
}

/** The validate hooks of the driver a Sensor selects and of the transport a Sink selects. */
function pluginErrors(kind: Kind, object: Record<string, unknown>): FieldError[] {
  const spec = object.spec as Record<string, unknown>;
  const runHook = (path: string, hook: () => FieldError[]): FieldError[] => {
    try {
      return hook();
    } catch (error) {
      return [fieldError(path, `could not be checked: ${(error as Error).message}`)];
    }
  };
  if (kind === 'Sensor' && isRecord(spec.driver)) {
    const { name, config } = selectedDriver(spec.driver);
    const factory = driverFactory(name);
    if (!factory?.validate) return [];
    return runHook(`spec.driver.${name}`, () => factory.validate!(config, `spec.driver.${name}`));
  }
  if (kind === 'Actuator') return runHook('spec', () => actuatorSpecErrors(spec as never));
  if (kind === 'Sink') {
    return transportFactories().flatMap((factory) => {
      const config = spec[factory.name];
      if (config === undefined || !factory.validate) return [];
      return runHook(`spec.${factory.name}`, () => factory.validate!(config, `spec.${factory.name}`, spec as never));
    });
  }
  return [];
}
