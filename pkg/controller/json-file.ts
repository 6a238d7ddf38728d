// Small JSON state files (status, generations): atomic, not fsynced — they are rewritten often and
// a power cut costing the last second of status is acceptable; readings never live here.
import { readJsonFile, writeFileAtomic } from '../storage/durable-file.js';

export { readJsonFile };

export function writeJsonFileAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value));
}
