// Reads passwords, PINs and key material from the places a spec names, within the operator's
// policy. Values are returned to the caller only; messages name the env var or file, never the value.
//
// Used for every `…From` reference ({ env } | { file }) a manifest may write, so that one rule holds
// everywhere: an environment variable is read only if the operator exposed it under
// SECRET_ENV_PREFIX, and a file only if its real path lies under a folder the operator gave. Anything
// else is refused by name, before anything is read.
import { readFile as fsReadFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { SecretSource } from '../api/types.generated.js';
import { refusal, SECRET_ENV_PREFIX } from '../policy/policy.js';
import { CertificateError } from './problems.js';

export type ReadFileFn = (file: string) => Promise<Buffer>;

/** Where secrets may come from. */
export interface SecretAccess {
  /** Only environment variables whose name starts with this may be read; '' means any (operator tools only). */
  envPrefix: string;
  /** Only files whose real path lies under one of these folders may be read; undefined means any (operator tools, in-memory Secrets). */
  fileRoots?: readonly string[];
  /** The flag that adds folders to fileRoots, named in refusals (default `--certificate-dir`). */
  fileRootsFlag?: string;
}

export interface SecretContext {
  env: NodeJS.ProcessEnv | Record<string, string | undefined>;
  readFile: ReadFileFn;
  access: SecretAccess;
}

export const defaultReadFile: ReadFileFn = (file) => fsReadFile(file);

/** What the agent allows manifests: variables under SECRET_ENV_PREFIX, files under `fileRoots`. */
export function manifestSecretAccess(fileRoots: readonly string[], fileRootsFlag = '--certificate-dir'): SecretAccess {
  return { envPrefix: SECRET_ENV_PREFIX, fileRoots, fileRootsFlag };
}

/** For the operator's own tools (`sensorlet cert inspect`): any variable, any file. */
export const UNRESTRICTED_ACCESS: SecretAccess = { envPrefix: '' };

/**
 * Returns the secret, or undefined when no source is given. A trailing newline is dropped, because
 * `echo secret > file` is how most people write one. `what` names the value in messages
 * ("password", "PIN", "username"). Throws a CertificateError (a SensorletError) whose code is the
 * condition reason: SecretNotAllowed, FileNotAllowed or FileNotFound.
 */
export async function readSecret(source: SecretSource | undefined, what: string, context: SecretContext): Promise<string | undefined> {
  if (!source) return undefined;
  if (source.env !== undefined) {
    checkSecretEnv(source.env, what, context.access);
    const value = context.env[source.env];
    if (value === undefined) throw new CertificateError('FileNotFound', `the ${what} environment variable ${source.env} is not set`);
    return value;
  }
  if (source.file !== undefined) {
    const bytes = await readMaterial(source.file, `${what} file`, context.readFile, context.access);
    return bytes.toString('utf8').replace(/\r?\n$/, '');
  }
  return undefined;
}

/** Throws SecretNotAllowed, naming the variable and not reading it, unless the operator exposed it. */
export function checkSecretEnv(name: string, what: string, access: SecretAccess): void {
  if (name.startsWith(access.envPrefix)) return;
  throw new CertificateError(
    'SecretNotAllowed',
    refusal(`the ${what} environment variable ${name} is not exposed to manifests`, `an agent environment variable named ${access.envPrefix}…`),
  );
}

/**
 * Reads a file and maps "missing" to FileNotFound with a message that names the file's role. With
 * `access.fileRoots`, the file is read only when its real path is under one of them (FileNotAllowed
 * otherwise, before anything is opened).
 */
export async function readMaterial(file: string, role: string, readFile: ReadFileFn, access?: SecretAccess): Promise<Buffer> {
  try {
    return await readFile(access ? await allowedPath(file, role, access) : file);
  } catch (error) {
    if (error instanceof CertificateError) throw error;
    throw notReadable(error, file, role);
  }
}

/**
 * The path to open for `file` when `access` allows it: its real path, so that what is checked is what
 * is read (a symlink inside an allowed folder that points out of it is refused).
 */
export async function allowedPath(file: string, role: string, access: SecretAccess): Promise<string> {
  const roots = access.fileRoots;
  if (!roots) return file;
  const refused = (why: string) =>
    new CertificateError('FileNotAllowed', refusal(`${role} ${file} ${why} (${roots.join(', ') || 'none'})`, access.fileRootsFlag ?? '--certificate-dir'));
  const absolute = path.resolve(file);
  if (!roots.some((root) => isInside(absolute, path.resolve(root)))) throw refused('is outside the folders certificate material may be read from');
  let real: string;
  try {
    real = await realpath(absolute);
  } catch (error) {
    throw notReadable(error, file, role);
  }
  const realRoots = await Promise.all(roots.map((root) => realpath(root).catch(() => undefined)));
  if (!realRoots.some((root) => root !== undefined && isInside(real, root))) throw refused('resolves (through a symlink) outside the folders certificate material may be read from');
  return real;
}

function isInside(file: string, folder: string): boolean {
  const relative = path.relative(folder, file);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function notReadable(error: unknown, file: string, role: string): CertificateError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new CertificateError('FileNotFound', `${role} ${file} does not exist`);
  if (code === 'EACCES' || code === 'EPERM') return new CertificateError('FileNotFound', `${role} ${file} is not readable by the agent (${code})`);
  return new CertificateError('FileNotFound', `${role} ${file} could not be read (${code ?? 'unknown error'})`);
}
