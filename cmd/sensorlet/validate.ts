// `sensorlet validate PATH...`: the checks `run` applies, for CI and GitOps pipelines. Files given
// together are validated as one set, as `run` would load them (duplicates and references span files).
// Folders are walked by the rules of the folder source (links, size cap, special files), with the
// same per-file errors.
import { formatValidationLines, validateDocuments } from '../../pkg/api/validate-set.js';
import { readManifestDocuments } from '../../pkg/sources/manifest-parser.js';
import type { ListOptions } from '../../pkg/sources/manifest-files.js';
import type { SourceDocument } from '../../pkg/sources/source.js';

export async function validateCommand(paths: string[], options: ListOptions = {}): Promise<number> {
  const documents: SourceDocument[] = [];
  for (const target of paths) {
    const found = await readManifestDocuments([target], undefined, options);
    // An empty set is valid, but rarely what was meant (a wrong path, links not followed).
    if (found.length === 0) console.error(`warning: ${target}: no manifests found (*.yaml, *.yml, *.json)`);
    documents.push(...found);
  }
  const problems = formatValidationLines(validateDocuments(documents));
  for (const line of problems) console.log(line);
  if (problems.length === 0) console.error(`${documents.length} resource(s) valid`);
  return problems.length === 0 ? 0 : 1;
}
