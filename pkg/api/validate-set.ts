// Validation of a set of documents as one whole: each object on its own (validate.ts), then what
// only the set can tell — duplicate names and references to Certificates that are not declared.
import type { SourceDocument } from '../sources/source.js';
import { DEFAULT_NAMESPACE, resourceKey, type FieldError, type Origin } from './resource.js';
import { locateFieldLine } from './field-path.js';
import { INVALID_SPEC, validateObject } from './validate.js';

export const DUPLICATE_NAME = 'DuplicateName';
export const CERTIFICATE_NOT_FOUND = 'CertificateNotFound';
/** The kind shown for a document whose kind could not be read. */
export const UNKNOWN_KIND = 'Unknown';

export interface ValidatedResource {
  /** The declared kind, or `Unknown`; may be a kind this agent does not serve. */
  kind: string;
  namespace: string;
  /** The declared name, or '' when none could be read. */
  name: string;
  key: string;
  origin: Origin;
  /** As declared (empty when the document did not parse). */
  raw: Record<string, unknown>;
  /** Validated, defaults applied; undefined when `errors` is not empty. */
  object?: Record<string, unknown>;
  labels: Record<string, string>;
  /** Each with `line` set when the document's text let us find it. */
  errors: FieldError[];
}

/** The text a manifest parser keeps beside a document (see ParsedDocument) to locate fields. */
interface DocumentText {
  firstLine: number;
  lines: string[];
}

function textOf(document: SourceDocument): DocumentText | undefined {
  const text = (document as SourceDocument & { text?: DocumentText }).text;
  return text && Array.isArray(text.lines) ? text : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function stringLabels(value: unknown): Record<string, string> {
  if (!isRecord(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

function identityOf(document: SourceDocument): { kind: string; namespace: string; name: string; labels: Record<string, string> } {
  const object = document.object;
  if (!object) {
    const salvaged: { kind?: string; namespace?: string; name?: string } = document.parseError ?? {};
    return { kind: salvaged.kind ?? UNKNOWN_KIND, namespace: salvaged.namespace ?? DEFAULT_NAMESPACE, name: salvaged.name ?? '', labels: {} };
  }
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  return {
    kind: typeof object.kind === 'string' && object.kind !== '' ? object.kind : UNKNOWN_KIND,
    namespace: typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : DEFAULT_NAMESPACE,
    name: typeof metadata.name === 'string' ? metadata.name : '',
    labels: stringLabels(metadata.labels),
  };
}

function validateOne(document: SourceDocument): ValidatedResource {
  const { kind, namespace, name, labels } = identityOf(document);
  const base = { kind, namespace, name, labels, key: resourceKey({ kind, namespace, name }), origin: document.origin };
  if (!document.object) {
    const parseError = document.parseError ?? { message: 'the document could not be read' };
    const error: FieldError = { path: parseError.path ?? '', message: parseError.message, reason: parseError.reason ?? INVALID_SPEC, line: parseError.line ?? document.origin.line };
    return { ...base, raw: {}, errors: [error] };
  }
  const { object, errors } = validateObject(document.object);
  return { ...base, raw: document.object, object, errors: errors.map((error) => locate(error, document)) };
}

/** Sets `line` to the line of the offending field, or of the document when the field is not found. */
function locate(error: FieldError, document: SourceDocument): FieldError {
  if (error.line !== undefined) return error;
  const text = textOf(document);
  const line = (text && locateFieldLine(text.lines, text.firstLine, error.path)) ?? document.origin.line;
  return line === undefined ? error : { ...error, line };
}

function where(origin: Origin): string {
  if (!origin.file) return 'elsewhere';
  return origin.line === undefined ? origin.file : `${origin.file}:${origin.line}`;
}

function addError(resource: ValidatedResource, error: FieldError, document: SourceDocument): void {
  resource.errors.push(locate(error, document));
  resource.object = undefined;
}

export function validateDocuments(documents: SourceDocument[]): ValidatedResource[] {
  const resources = documents.map(validateOne);

  // Duplicates: the first declaration (in the order given, i.e. sorted files, then position) wins.
  const firstByKey = new Map<string, ValidatedResource>();
  resources.forEach((resource, index) => {
    if (resource.name === '' || resource.kind === UNKNOWN_KIND) return;
    const first = firstByKey.get(resource.key);
    if (!first) {
      firstByKey.set(resource.key, resource);
      return;
    }
    const message = `duplicate ${resource.kind} ${JSON.stringify(resource.name)} in namespace ${JSON.stringify(resource.namespace)}: first declared at ${where(first.origin)}`;
    addError(resource, { path: 'metadata.name', message, reason: DUPLICATE_NAME }, documents[index]);
  });

  // References: a Certificate counts as declared even when invalid; its own errors say what is wrong.
  const certificates = new Set(resources.filter((resource) => resource.kind === 'Certificate' && resource.name !== '').map((resource) => resource.key));
  resources.forEach((resource, index) => {
    if (resource.kind !== 'Sink' || !resource.object) return;
    const spec = resource.object.spec as { tls?: { certificateRef?: { name?: string } } };
    const referenced = spec.tls?.certificateRef?.name;
    if (referenced === undefined) return;
    if (certificates.has(resourceKey({ kind: 'Certificate', namespace: resource.namespace, name: referenced }))) return;
    const message = `Certificate ${JSON.stringify(referenced)} not found in namespace ${JSON.stringify(resource.namespace)}`;
    addError(resource, { path: 'spec.tls.certificateRef.name', message, reason: CERTIFICATE_NOT_FOUND }, documents[index]);
  });
  return resources;
}

/** A name as long as a valid one (253) is shown whole; a longer one, which is the error, by its start and length. */
function shortened(text: string): string {
  return text.length <= 253 ? text : `${text.slice(0, 40)}…(${text.length} characters)`;
}

/** One `validate` output line: `FILE[:LINE]: KIND/NAME: FIELD.PATH: message` (no path segment when empty). */
export function formatValidationLine(file: string, line: number | undefined, kind: string, name: string, error: Pick<FieldError, 'path' | 'message'>): string {
  const location = line === undefined ? file : `${file}:${line}`;
  const field = error.path === '' ? '' : `${error.path}: `;
  return `${location}: ${shortened(kind)}/${shortened(name)}: ${field}${error.message}`;
}

/** Every error of every resource as `validate` prints it, in declaration order. */
export function formatValidationLines(resources: ValidatedResource[]): string[] {
  return resources.flatMap((resource) =>
    resource.errors.map((error) => formatValidationLine(resource.origin.file ?? '<unknown>', error.line ?? resource.origin.line, resource.kind, resource.name, error)),
  );
}
