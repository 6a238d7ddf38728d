// Broker credentials of a Sink (`spec.mqtt.usernameFrom` / `passwordFrom`), read at reconcile time
// from where the operator lets manifests take them:
//   env:          a variable of the agent with the SENSORLET_SECRET_ prefix (pkg/pki readSecret's rule)
//   file:         a file under a folder given with --credentials-dir; nothing else, so a manifest
//                 cannot send a key or a token file of the device to a broker it names
//   secretKeyRef: cluster mode, a key of a Secret in the Sink's own namespace
// The values go to the transport only. Errors name the field, variable, file or Secret key; never a value.
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { SinkSpec } from '../../api/resource.js';
import type { CredentialSource } from '../../api/types.generated.js';
import { SensorletError, reasonOf, messageOf } from '../../api/errors.js';
import { refusal } from '../../policy/policy.js';
import { defaultReadFile, readSecret, manifestSecretAccess } from '../../pki/secrets.js';
import type { Credentials } from '../../sinks/transport.js';
import type { Runtime } from '../runtime.js';

type Role = 'username' | 'password';

/**
 * The file's real path when it lies under one of the folders, else undefined. Compared after
 * resolving links (a link in an allowed folder must not lead out of it), and the real path is what
 * is read, so the link cannot be swapped in between.
 */
async function allowedPath(file: string, dirs: string[]): Promise<string | undefined> {
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    // Missing: reading it will say so, if it is where it may be.
    return dirs.some((dir) => isInside(path.resolve(file), dir)) ? file : undefined;
  }
  for (const dir of dirs) {
    const realDir = await realpath(dir).catch(() => path.resolve(dir));
    if (isInside(real, realDir)) return real;
  }
  return undefined;
}

function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

async function readCredential(runtime: Runtime, namespace: string, source: CredentialSource, role: Role, field: string): Promise<string> {
  if (source.secretKeyRef) {
    const { name, key } = source.secretKeyRef;
    if (!runtime.secrets) throw new SensorletError('CredentialNotFound', `${field}.secretKeyRef needs cluster mode (--kubeconfig or --in-cluster); standalone, use env or file`);
    const secret = runtime.secrets.get(namespace, name);
    if (!secret) throw new SensorletError('SecretNotFound', `${field}.secretKeyRef: Secret ${namespace}/${name} does not exist or is not readable`);
    const value = secret.data[key];
    if (value === undefined) throw new SensorletError('CredentialNotFound', `${field}.secretKeyRef: Secret ${namespace}/${name} has no key ${key}`);
    return value.toString('utf8').replace(/\r?\n$/, '');
  }
  let file: string | undefined;
  if (source.file !== undefined) {
    const dirs = runtime.policy.sinks.credentialDirs;
    file = await allowedPath(source.file, dirs);
    if (file === undefined) {
      throw new SensorletError(
        'CredentialFileNotAllowed',
        refusal(`${field}.file ${source.file} is not under a folder the operator allowed for credentials${dirs.length ? ` (${dirs.join(', ')})` : ''}`, '--credentials-dir DIR'),
      );
    }
  }
  let value: string | undefined;
  try {
    value = await readSecret({ env: source.env, file }, role, { env: process.env, readFile: defaultReadFile, access: manifestSecretAccess(runtime.policy.sinks.credentialDirs, '--credentials-dir') });
  } catch (error) {
    // readSecret's messages name the variable or file, never the value; its policy refusals keep their reason.
    const reason = reasonOf(error, 'CredentialNotFound');
    throw new SensorletError(reason === 'FileNotFound' ? 'CredentialNotFound' : reason, `${field}: ${messageOf(error)}`);
  }
  if (value === undefined) throw new SensorletError('CredentialNotFound', `${field}: give one of env, file, secretKeyRef`);
  return value;
}

/** The Secrets a Sink's credentials come from (cluster mode), to reconcile it when one changes. */
export function credentialSecretsOf(spec: SinkSpec): string[] {
  return [spec.mqtt?.usernameFrom?.secretKeyRef?.name, spec.mqtt?.passwordFrom?.secretKeyRef?.name].filter((name): name is string => name !== undefined);
}

/** Reads a Sink's credentials; throws a SensorletError whose code is the condition reason. */
export async function sinkCredentials(runtime: Runtime, namespace: string, spec: SinkSpec): Promise<Credentials> {
  const mqtt = spec.mqtt;
  if (!mqtt) return {};
  const credentials: Credentials = {};
  if (mqtt.usernameFrom) credentials.username = await readCredential(runtime, namespace, mqtt.usernameFrom, 'username', 'spec.mqtt.usernameFrom');
  if (mqtt.passwordFrom) credentials.password = await readCredential(runtime, namespace, mqtt.passwordFrom, 'password', 'spec.mqtt.passwordFrom');
  return credentials;
}
