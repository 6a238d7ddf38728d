// Turns manifest files into SourceDocuments. Each YAML document is parsed on its own, so a syntax
// error costs only the document it is in: its neighbours in the same file still load and run.
// Parsing has a budget (see MANIFEST_BUDGET): a file is text from a manifest author, and a few lines
// of YAML aliases expand to billions of values in whatever walks the result later (validation,
// serialisation, clones), while deep nesting overflows the stack of every recursive walker.
import path from 'node:path';
import yaml from 'js-yaml';
import { joinPath, locateFieldLine, type PathSegment } from '../api/field-path.js';
import type { SourceDocument } from './source.js';
import { listManifestFiles, readManifestFile, type FileProblem, type ListOptions } from './manifest-files.js';

/** A parsed document plus its text, kept so errors can be pointed at the line of the field. */
export interface ParsedDocument extends SourceDocument {
  /** The document's lines; `lines[0]` is line `firstLine` of the file. */
  text?: { firstLine: number; lines: string[] };
}

// The core schema (YAML 1.2 scalars) keeps `2024-01-01` a string instead of a Date, as Kubernetes
// does; merge keys (`<<: *defaults`) are added back because hand-written manifests use them.
// (@types/js-yaml does not declare `types`, which js-yaml 4 exports.)
const MERGE_TYPE = (yaml as unknown as { types: { merge: yaml.Type } }).types.merge;
const MANIFEST_SCHEMA = yaml.CORE_SCHEMA.extend({ implicit: [MERGE_TYPE] });

/**
 * What one manifest file may cost. Values are counted as a walker sees them: a YAML alias counts
 * again each time it is used. A real Sensor is well under a hundred values and ten levels deep.
 */
export const MANIFEST_BUDGET = {
  /** Levels of mappings and sequences in one document (the root mapping is level 1). */
  maxDepth: 64,
  /** Values (scalars, mappings, sequences) in one document. */
  maxValuesPerDocument: 10_000,
  /** Values in all documents of one file together. */
  maxValuesPerFile: 250_000,
  maxDocumentsPerFile: 10_000,
} as const;

/** The identity of a document that failed is read only from the start of its text, lines this long. */
const SALVAGE_LINES = 200;
const SALVAGE_LINE_LENGTH = 512;
const SALVAGE_JSON_CHARACTERS = 4096;

const DOCUMENT_SEPARATOR = /^---(\s|$)/;
const DOCUMENT_END = /^\.\.\.\s*$/;

/** True for lines that carry no YAML content (blank, comment, separators). */
function isBlankOrComment(line: string): boolean {
  const trimmed = line.trim();
  return trimmed === '' || trimmed.startsWith('#') || DOCUMENT_SEPARATOR.test(line) || DOCUMENT_END.test(line);
}

/** Parses one manifest file's text; `file` is only used for origins and to tell JSON from YAML. */
export function parseManifestText(file: string, text: string): ParsedDocument[] {
  const budget: FileBudget = { valuesLeft: MANIFEST_BUDGET.maxValuesPerFile };
  if (path.extname(file).toLowerCase() === '.json') return parseJson(file, text, budget);
  const chunks = splitYamlDocuments(text);
  const withContent = chunks.filter((chunk) => chunk.lines.some((line) => !isBlankOrComment(line)));
  if (withContent.length > MANIFEST_BUDGET.maxDocumentsPerFile) {
    const first = withContent[MANIFEST_BUDGET.maxDocumentsPerFile];
    return [fileOverBudget(file, first.startLine, `the file holds more than ${MANIFEST_BUDGET.maxDocumentsPerFile} documents`)];
  }
  const documents: ParsedDocument[] = [];
  for (const chunk of withContent) {
    const document = parseYamlDocument(file, chunk, budget);
    if (budget.exceededAt !== undefined) {
      return [fileOverBudget(file, budget.exceededAt, `the file expands to more than ${MANIFEST_BUDGET.maxValuesPerFile} values (a YAML alias counts each time it is used)`)];
    }
    if (document) documents.push(document);
  }
  return documents;
}

/** What is left of the file's budget; `exceededAt` is the line of the document that ran it out. */
interface FileBudget {
  valuesLeft: number;
  exceededAt?: number;
}

/** One error standing for the whole file: none of its documents is loaded. */
function fileOverBudget(file: string, line: number, why: string): ParsedDocument {
  return { origin: { file, line }, object: undefined, parseError: { message: `${why}; none of its documents is loaded`, line } };
}

/** Where and why a document is over its budget; `file` when it is the file's budget that ran out. */
type BudgetProblem = { file: true } | { file?: undefined; path: PathSegment[]; message: string };

interface Visit {
  value: unknown;
  depth: number;
  parent: Visit | undefined;
  key: PathSegment | undefined;
}

/**
 * Walks a parsed document as every later consumer will (aliases expanded), without recursion and
 * stopping as soon as a budget runs out, so the walk itself costs at most the budget.
 */
function budgetProblem(root: unknown, budget: FileBudget): BudgetProblem | undefined {
  const limit = Math.min(MANIFEST_BUDGET.maxValuesPerDocument, budget.valuesLeft);
  const tooMany = (visit: Visit): BudgetProblem =>
    limit < MANIFEST_BUDGET.maxValuesPerDocument
      ? { file: true }
      : {
          path: pathOf(visit),
          message: `the document expands to more than ${MANIFEST_BUDGET.maxValuesPerDocument} values (a YAML alias counts each time it is used); not loaded`,
        };
  const stack: Visit[] = [{ value: root, depth: 1, parent: undefined, key: undefined }];
  let counted = 0;
  while (stack.length > 0) {
    const visit = stack.pop()!;
    counted++;
    const { value } = visit;
    if (value === null || typeof value !== 'object') continue;
    if (visit.depth > MANIFEST_BUDGET.maxDepth) {
      // An alias to one of its own ancestors nests forever: say so, where it first happens.
      const chain: Visit[] = [];
      for (let at: Visit | undefined = visit; at; at = at.parent) chain.unshift(at);
      const seen = new Set<unknown>();
      const loop = chain.find((at) => {
        if (seen.has(at.value)) return true;
        seen.add(at.value);
        return false;
      });
      if (loop) return { path: pathOf(loop), message: 'the document contains itself through a YAML alias; not loaded' };
      return { path: pathOf(visit), message: `the document nests deeper than ${MANIFEST_BUDGET.maxDepth} levels; not loaded` };
    }
    const keys: PathSegment[] | undefined = Array.isArray(value) ? undefined : Object.keys(value);
    const size = keys ? keys.length : (value as unknown[]).length;
    // Everything on the stack will be counted: refuse before pushing what cannot fit.
    if (counted + stack.length + size > limit) return tooMany(visit);
    for (let i = size - 1; i >= 0; i--) {
      const key = keys ? keys[i] : i;
      stack.push({ value: (value as Record<PathSegment, unknown>)[key], depth: visit.depth + 1, parent: visit, key });
    }
  }
  budget.valuesLeft -= counted;
  return undefined;
}

/** The path of a visit, with each key cut short: keys are manifest text of any length. */
function pathOf(visit: Visit): PathSegment[] {
  const segments: PathSegment[] = [];
  for (let at: Visit | undefined = visit; at?.key !== undefined; at = at.parent) {
    segments.push(typeof at.key === 'string' && at.key.length > 64 ? `${at.key.slice(0, 64)}…` : at.key);
  }
  return segments.reverse();
}

/** `kind` and `metadata.name`/`namespace` of a parsed document, when they are plain strings. */
function identityOfValue(value: unknown): { kind?: string; name?: string; namespace?: string } {
  const record = (item: unknown) => (item !== null && typeof item === 'object' && !Array.isArray(item) ? (item as Record<string, unknown>) : {});
  const string = (item: unknown) => (typeof item === 'string' && item.length <= 253 ? item : undefined);
  const metadata = record(record(value).metadata);
  return { kind: string(record(value).kind), name: string(metadata.name), namespace: string(metadata.namespace) };
}

/** The document as parsed, or the error its budget problem makes of it. */
function withinBudget(parsed: ParsedDocument & { object: Record<string, unknown> }, budget: FileBudget): ParsedDocument | undefined {
  const problem = budgetProblem(parsed.object, budget);
  if (!problem) return parsed;
  if (problem.file) {
    budget.exceededAt = parsed.origin.line ?? 1;
    return undefined;
  }
  const fieldPath = joinPath(problem.path);
  const firstLine = parsed.text?.firstLine ?? parsed.origin.line ?? 1;
  const line = (parsed.text && locateFieldLine(parsed.text.lines, firstLine, fieldPath)) ?? firstLine;
  return {
    origin: parsed.origin,
    object: undefined,
    parseError: { message: problem.message, line, path: fieldPath, ...identityOfValue(parsed.object) },
    text: parsed.text,
  };
}

interface Chunk {
  /** 1-based line in the file of `lines[0]`. */
  startLine: number;
  lines: string[];
}

function splitYamlDocuments(text: string): Chunk[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const chunks: Chunk[] = [];
  let current: Chunk = { startLine: 1, lines: [] };
  lines.forEach((line, index) => {
    if (DOCUMENT_SEPARATOR.test(line)) {
      chunks.push(current);
      // `--- key: value` is legal YAML: keep the content after the marker, blank the marker itself.
      current = { startLine: index + 1, lines: [line.replace(/^---\s?/, "")] };
    } else {
      current.lines.push(line);
    }
  });
  chunks.push(current);
  return chunks;
}

function parseYamlDocument(file: string, chunk: Chunk, budget: FileBudget): ParsedDocument | undefined {
  const firstContent = chunk.lines.findIndex((line) => !isBlankOrComment(line));
  if (firstContent < 0) return undefined; // an empty document (only comments) declares nothing
  const lines = chunk.lines.slice(firstContent);
  const firstLine = chunk.startLine + firstContent;
  const origin = { file, line: firstLine };
  const textInfo = { firstLine, lines };
  let value: unknown;
  try {
    // js-yaml stops at its own depth limit while parsing; the walk below checks the same limit
    // with aliases expanded. (Its merge keys have their own budget: maxTotalMergeKeys.)
    // (@types/js-yaml predates the maxDepth option of js-yaml 4.3.)
    const options = { schema: MANIFEST_SCHEMA, filename: file, maxDepth: MANIFEST_BUDGET.maxDepth } as yaml.LoadOptions;
    value = yaml.load(lines.join('\n'), options);
  } catch (error) {
    const mark = (error as { mark?: { line?: number } }).mark;
    const reason = (error as { reason?: string }).reason ?? (error as Error).message;
    const tooDeep = /exceeded maxDepth/.test(reason);
    return {
      origin,
      object: undefined,
      parseError: {
        message: tooDeep ? `the document nests deeper than ${MANIFEST_BUDGET.maxDepth} levels; not loaded` : `YAML syntax error: ${reason}`,
        line: typeof mark?.line === 'number' ? firstLine + mark.line : firstLine,
        ...salvageIdentity(lines),
      },
      text: textInfo,
    };
  }
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    return {
      origin,
      object: undefined,
      parseError: { message: `a manifest document must be a mapping with apiVersion, kind and metadata, not ${describe(value)}`, line: firstLine },
      text: textInfo,
    };
  }
  return withinBudget({ origin, object: value as Record<string, unknown>, text: textInfo }, budget);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value}`;
}

/**
 * Best-effort identity of a document that failed to parse, read line by line, so its resource can
 * still get a condition and the error names it.
 */
export function salvageIdentity(lines: string[]): { kind?: string; name?: string; namespace?: string } {
  const identity: { kind?: string; name?: string; namespace?: string } = {};
  const scalar = (raw: string) => raw.trim().replace(/\s+#.*$/, '').replace(/^(["'])(.*)\1$/, '$2');
  let inMetadata = false;
  let childIndent: number | undefined;
  // Bounded: the identity sits at the top of a document, and the patterns below are not meant for
  // megabyte-long lines.
  for (const line of lines.slice(0, SALVAGE_LINES).map((whole) => whole.slice(0, SALVAGE_LINE_LENGTH))) {
    const kind = /^kind:\s*(\S.*)$/.exec(line);
    if (kind) identity.kind ??= scalar(kind[1]);
    const flowMetadata = /^metadata:\s*\{(.*)\}/.exec(line);
    if (flowMetadata) {
      const name = /(?:^|[,{\s])name:\s*([^,}]+)/.exec(flowMetadata[1]);
      const namespace = /(?:^|[,{\s])namespace:\s*([^,}]+)/.exec(flowMetadata[1]);
      if (name) identity.name ??= scalar(name[1]);
      if (namespace) identity.namespace ??= scalar(namespace[1]);
    }
    if (/^\S/.test(line)) {
      inMetadata = /^metadata:\s*$/.test(line);
      childIndent = undefined;
    } else if (inMetadata && line.trim() !== '' && !line.trim().startsWith('#')) {
      // Only direct children of metadata: `name:` nested deeper (labels...) is not the identity.
      const indent = line.search(/\S/);
      childIndent ??= indent;
      const child = /^(\s+)(name|namespace):\s*(\S.*)$/.exec(line);
      if (child && indent === childIndent) {
        const value = scalar(child[3]);
        if (child[2] === 'name') identity.name ??= value;
        else identity.namespace ??= value;
      }
    }
  }
  return identity;
}

function parseJson(file: string, text: string, budget: FileBudget): ParsedDocument[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const firstContent = Math.max(0, lines.findIndex((line) => line.trim() !== ''));
  const firstLine = firstContent + 1;
  const textInfo = { firstLine, lines: lines.slice(firstContent) };
  if (text.trim() === '') return [];
  // Checked before parsing: JSON.parse would build the whole nest, and recursive walkers overflow on it.
  const deep = jsonDepthExceededAt(text, MANIFEST_BUDGET.maxDepth);
  if (deep !== undefined) {
    const line = lineAt(text, deep);
    const message = `the document nests deeper than ${MANIFEST_BUDGET.maxDepth} levels; not loaded`;
    return [{ origin: { file, line: firstLine }, object: undefined, parseError: { message, line, ...salvageJsonIdentity(text) }, text: textInfo }];
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const position = /position (\d+)/.exec(message);
    const line = position ? lineAt(text, Number(position[1])) : firstLine;
    return [{ origin: { file, line: firstLine }, object: undefined, parseError: { message: `JSON syntax error: ${message}`, line, ...salvageJsonIdentity(text) }, text: textInfo }];
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [
      {
        origin: { file, line: firstLine },
        object: undefined,
        parseError: { message: `a manifest document must be an object with apiVersion, kind and metadata, not ${describe(value)}`, line: firstLine },
        text: textInfo,
      },
    ];
  }
  const document = withinBudget({ origin: { file, line: firstLine }, object: value as Record<string, unknown>, text: textInfo }, budget);
  if (!document) return [fileOverBudget(file, firstLine, `the file holds more than ${MANIFEST_BUDGET.maxValuesPerFile} values`)];
  return [document];
}

/** The 1-based line of `offset` in `text`, counted without copying the text. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let at = text.indexOf('\n'); at >= 0 && at < offset; at = text.indexOf('\n', at + 1)) line++;
  return line;
}

/** Best-effort kind and name of a JSON document that cannot be loaded, from the start of its text. */
function salvageJsonIdentity(text: string): { kind?: string; name?: string } {
  const head = text.slice(0, SALVAGE_JSON_CHARACTERS);
  const identity: { kind?: string; name?: string } = {};
  const kind = /"kind"\s*:\s*"([^"]+)"/.exec(head);
  const name = /"metadata"\s*:\s*\{[^}]*?"name"\s*:\s*"([^"]+)"/.exec(head);
  if (kind) identity.kind = kind[1];
  if (name) identity.name = name[1];
  return identity;
}

/** The offset of the first bracket that opens level `maxDepth + 1`, or undefined; strings are skipped. */
function jsonDepthExceededAt(text: string, maxDepth: number): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return undefined;
}

/**
 * The readable manifest files under `target` (a folder, searched recursively, or a single file),
 * sorted so that "first declared" is stable; see manifest-files.ts for which entries count.
 */
export async function readManifestFiles(target: string, options: ListOptions = {}): Promise<string[]> {
  return (await listManifestFiles(target, options)).files.map((file) => file.file);
}

/** A file that cannot be loaded, as a document: its error reaches `validate`, the store and the admin API. */
export function fileProblemDocument(problem: FileProblem): ParsedDocument {
  return { origin: { file: problem.file }, object: undefined, parseError: { message: problem.message, reason: problem.code } };
}

/**
 * Every document under the given files and folders, in a stable order (targets as given, files
 * sorted within a folder), with one error document per file that cannot be loaded. Origins name
 * files as `displayPath` returns them (default: as found, i.e. relative when the target was),
 * which is what `sensorlet validate` prints.
 */
export async function readManifestDocuments(
  targets: string[],
  displayPath: (file: string) => string = (file) => file,
  options: ListOptions = {},
): Promise<ParsedDocument[]> {
  const documents: ParsedDocument[] = [];
  for (const target of targets) {
    const listing = await listManifestFiles(target, options);
    const problems = [...listing.problems];
    for (const file of listing.files) {
      const result = await readManifestFile(file);
      if ('text' in result) documents.push(...parseManifestText(displayPath(file.file), result.text));
      else if ('problem' in result) problems.push(result.problem);
      else if ('changed' in result) problems.push({ file: file.file, code: 'ManifestUnreadable', message: 'replaced while being read: not read' });
    }
    for (const problem of problems) documents.push(fileProblemDocument({ ...problem, file: displayPath(problem.file) }));
  }
  return documents;
}
