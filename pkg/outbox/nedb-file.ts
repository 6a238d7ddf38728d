// nedb's datafile read without nedb: loading through nedb rewrites (compacts) the file, which a
// read-only reader (`sensorlet outbox stats`) must not do and a full disk cannot do.
import { readFile } from 'node:fs/promises';

/** Replays nedb's datafile format: one JSON document per line, later lines win, `$$deleted` removes. */
export async function readNedbFile(file: string): Promise<Map<string, Record<string, unknown>>> {
  const docs = new Map<string, Record<string, unknown>>();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return docs;
    throw error;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line from a crash; nedb itself tolerates it too
    }
    const id = doc._id as string | undefined;
    if (doc.$$deleted === true && id !== undefined) docs.delete(id);
    else if (id !== undefined && !('$$indexCreated' in doc)) docs.set(id, doc);
  }
  return docs;
}
