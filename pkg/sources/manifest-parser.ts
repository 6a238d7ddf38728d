// Turns manifest files into SourceDocuments. Each YAML document is parsed on its own, so a syntax
// error costs only the document it is in: its neighbours in the same file still load and run.
import path from 'node:path';
import yaml from 'js-yaml';
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

const DOCUMENT_SEPARATOR = /^---(\s|$)/;
const DOCUMENT_END = /^\.\.\.\s*$/;

/** True for lines that carry no YAML content (blank, comment, separators). */
function isBlankOrComment(line: string): boolean {
  const trimmed = line.trim();
  return trimmed === '' || trimmed.startsWith('#') || DOCUMENT_SEPARATOR.test(line) || DOCUMENT_END.test(line);
}

/** Parses one manifest file's text; `file` is only used for origins and to tell JSON from YAML. */
export function parseManifestText(file: string, text: string): ParsedDocument[] {
  if (path.extname(file).toLowerCase() === '.json') return parseJson(file, text);
  return splitYamlDocuments(text).flatMap((chunk) => {
    const document = parseYamlDocument(file, chunk);
    return document ? [document] : [];
  });
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

function parseYamlDocument(file: string, chunk: Chunk): ParsedDocument | undefined {
  const firstContent = chunk.lines.findIndex((line) => !isBlankOrComment(line));
  if (firstContent < 0) return undefined; // an empty document (only comments) declares nothing
  const lines = chunk.lines.slice(firstContent);
  const firstLine = chunk.startLine + firstContent;
  const origin = { file, line: firstLine };
  const textInfo = { firstLine, lines };
  let value: unknown;
  try {
    value = yaml.load(lines.join('\n'), { schema: MANIFEST_SCHEMA, filename: file });
  } catch (error) {
    const mark = (error as { mark?: { line?: number } }).mark;
    const reason = (error as { reason?: string }).reason ?? (error as Error).message;
    return {
      origin,
      object: undefined,
      parseError: {
        message: `YAML syntax error: ${reason}`,
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
  return { origin, object: value as Record<string, unknown>, text: textInfo };
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
  for (const line of lines) {
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

function parseJson(file: string, text: string): ParsedDocument[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const firstContent = Math.max(0, lines.findIndex((line) => line.trim() !== ''));
  const firstLine = firstContent + 1;
  const textInfo = { firstLine, lines: lines.slice(firstContent) };
  if (text.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const position = /position (\d+)/.exec(message);
    const line = position ? text.slice(0, Number(position[1])).split('\n').length : firstLine;
    const identity: { kind?: string; name?: string; namespace?: string } = {};
    const kind = /"kind"\s*:\s*"([^"]+)"/.exec(text);
    const name = /"metadata"\s*:\s*\{[^}]*?"name"\s*:\s*"([^"]+)"/.exec(text);
    if (kind) identity.kind = kind[1];
    if (name) identity.name = name[1];
    return [{ origin: { file, line: firstLine }, object: undefined, parseError: { message: `JSON syntax error: ${message}`, line, ...identity }, text: textInfo }];
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
  return [{ origin: { file, line: firstLine }, object: value as Record<string, unknown>, text: textInfo }];
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
