// Reads passwords and PINs from the place the spec names. The value is returned to the caller only;
// messages name the env var or file, never the value.
import { readFile as fsReadFile } from 'node:fs/promises';
import type { SecretSource } from '../api/types.generated.js';
import { CertificateError } from './problems.js';

export type ReadFileFn = (file: string) => Promise<Buffer>;

export interface SecretContext {
  env: NodeJS.ProcessEnv | Record<string, string | undefined>;
  readFile: ReadFileFn;
}

export const defaultReadFile: ReadFileFn = (file) => fsReadFile(file);

/**
 * Returns the secret, or undefined when no source is given. A trailing newline is dropped, because
 * `echo secret > file` is how most people write one.
 */
export async function readSecret(
  source: SecretSource | undefined,
  what: 'password' | 'PIN' | 'username',
  context: SecretContext,
): Promise<string | undefined> {
  if (!source) return undefined;
  if (source.env !== undefined) {
    const value = context.env[source.env];
    if (value === undefined) throw new CertificateError('FileNotFound', `the ${what} environment variable ${source.env} is not set`);
    return value;
  }
  if (source.file !== undefined) {
    const bytes = await readMaterial(source.file, `${what} file`, context.readFile);
    return bytes.toString('utf8').replace(/\r?\n$/, '');
  }
  return undefined;
}

/** Reads a file and maps "missing" to FileNotFound with a message that names the file's role. */
export async function readMaterial(file: string, role: string, readFile: ReadFileFn): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new CertificateError('FileNotFound', `${role} ${file} does not exist`);
    if (code === 'EACCES' || code === 'EPERM') throw new CertificateError('FileNotFound', `${role} ${file} is not readable by the agent (${code})`);
    throw new CertificateError('FileNotFound', `${role} ${file} could not be read (${code ?? 'unknown error'})`);
  }
}
