// `sensorlet validate PATH...`: the checks `run` applies, for CI and GitOps pipelines. Files given
// together are validated as one set, as `run` would load them (duplicates and references span files).
import { readFile } from 'node:fs/promises';
import { formatValidationLines, validateDocuments } from '../../pkg/api/validate-set.js';
import { parseManifestText, readManifestFiles } from '../../pkg/sources/manifest-parser.js';
import type { SourceDocument } from '../../pkg/sources/source.js';

export async function validateCommand(paths: string[]): Promise<number> {
  const documents: SourceDocument[] = [];
  const problems: string[] = [];
  for (const target of paths) {
    let files: string[];
    try {
      files = await readManifestFiles(target);
    } catch (error) {
      problems.push(`${target}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      continue;
    }
    for (const file of files) documents.push(...parseManifestText(file, await readFile(file, 'utf8')));
  }
  problems.push(...formatValidationLines(validateDocuments(documents)));
  for (const line of problems) console.log(line);
  if (problems.length === 0) console.error(`${documents.length} resource(s) valid`);
  return problems.length === 0 ? 0 : 1;
}
