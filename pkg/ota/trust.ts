// The trust store: the only place the public keys that verify Firmware come from. The operator
// gives it (a folder standalone, a Secret in the agent's own namespace in cluster mode); a manifest
// only names a key in it (`spec.artifact.signature.keyRef.name`), never a path. So no manifest can
// make the agent trust a key it wrote, or one that is a download in the agent's own state dir.
//
//   folder: --firmware-trust-dir DIR       → DIR/<name>.pem, a regular file whose real path stays in
//                                            DIR (a symlink out of it is refused), at most 64 KiB
//   Secret: --firmware-trust-secret NAME   → the Secret's data entry `<name>.pem`
//
// Names match KEY_NAME (no '/', so no path traversal); checked here again, whatever the schema said.
// The folder may not be the state dir, nor lie inside it or hold it: nothing the agent downloads is
// ever in the trust store. Key material is never quoted in errors (only names and sizes).
import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { refusal } from '../policy/policy.js';
import { OtaError } from './errors.js';
import { FlagError } from '../api/errors.js';

export const KEY_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
/** A PEM public key is well under 1 KiB; anything above this is not one. */
const MAX_KEY_BYTES = 64 * 1024;

export interface TrustStore {
  /** Where keys come from, for messages. */
  readonly describe: string;
  /** The trusted key named `name`; throws OtaError KeyRefNotAllowed, TrustKeyNotFound or PublicKeyUnavailable. */
  key(name: string): KeyObject;
}

function checkName(name: string): void {
  if (!KEY_NAME.test(name)) {
    throw new OtaError('KeyRefNotAllowed', `spec.artifact.signature.keyRef.name ${JSON.stringify(name.slice(0, 64))} is not a key name (letters, digits, '.', '_', '-'; no path)`);
  }
}

function publicKeyFrom(pem: Buffer, where: string): KeyObject {
  try {
    // Only a public key (SPKI PEM, as `openssl pkey -pubout` writes): Node would also derive one
    // from a private key, which has no business in a trust store.
    if (!pem.includes('-----BEGIN PUBLIC KEY-----') || pem.includes('PRIVATE KEY-----')) throw new Error('not a PEM public key');
    return createPublicKey(pem);
  } catch {
    throw new OtaError('PublicKeyUnavailable', `${where} is not a PEM public key (${pem.length} bytes)`);
  }
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}

/** The folder trust store. Throws (at start-up) when the folder and the state dir overlap. */
export function directoryTrustStore(dir: string, stateDir: string): TrustStore {
  let root: string;
  try {
    root = realpathSync(dir);
  } catch (error) {
    throw new FlagError('--firmware-trust-dir', 'FlagInvalid', `--firmware-trust-dir ${dir}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (error as Error).message}`);
  }
  let state: string;
  try {
    state = realpathSync(stateDir);
  } catch {
    state = path.resolve(stateDir);
  }
  if (isInside(root, state) || isInside(state, root)) {
    throw new FlagError('--firmware-trust-dir', 'FlagInvalid', `--firmware-trust-dir ${dir} overlaps the state dir ${stateDir}: the trust store must hold only keys the operator placed`);
  }
  const describe = `--firmware-trust-dir ${dir}`;
  return {
    describe,
    key(name) {
      checkName(name);
      const where = `trusted key ${name} (${path.join(dir, `${name}.pem`)})`;
      let real: string;
      try {
        real = realpathSync(path.join(root, `${name}.pem`));
      } catch {
        throw new OtaError('TrustKeyNotFound', `no key ${name}.pem in ${describe} (spec.artifact.signature.keyRef.name)`, { terminal: false });
      }
      if (!isInside(real, root) || real === root) throw new OtaError('KeyRefNotAllowed', `${where} leads out of the trust store folder`);
      const fd = openSync(real, 'r');
      try {
        const stat = fstatSync(fd);
        if (!stat.isFile()) throw new OtaError('KeyRefNotAllowed', `${where} is not a regular file`);
        if (stat.size > MAX_KEY_BYTES) throw new OtaError('PublicKeyUnavailable', `${where} has ${stat.size} bytes; a PEM public key has far fewer`);
        const pem = Buffer.alloc(stat.size);
        let read = 0;
        while (read < pem.length) {
          const n = readSync(fd, pem, read, pem.length - read, read);
          if (n === 0) break;
          read += n;
        }
        return publicKeyFrom(pem.subarray(0, read), where);
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** The Secret trust store: `get()` returns the Secret's data now (undefined until it is seen). */
export function secretTrustStore(namespace: string, secretName: string, get: () => Record<string, Buffer> | undefined): TrustStore {
  const describe = `--firmware-trust-secret ${secretName} (namespace ${namespace})`;
  return {
    describe,
    key(name) {
      checkName(name);
      const data = get();
      if (!data) throw new OtaError('TrustKeyNotFound', `the trust Secret ${namespace}/${secretName} does not exist (yet)`, { terminal: false });
      const pem = data[`${name}.pem`];
      if (!pem) throw new OtaError('TrustKeyNotFound', `no key ${name}.pem in ${describe} (spec.artifact.signature.keyRef.name)`, { terminal: false });
      if (pem.length > MAX_KEY_BYTES) throw new OtaError('PublicKeyUnavailable', `trusted key ${name} has ${pem.length} bytes; a PEM public key has far fewer`);
      return publicKeyFrom(pem, `trusted key ${name} (${namespace}/${secretName})`);
    },
  };
}

/** No trust store configured: every Firmware is refused, naming the flags that would give one. */
export function noTrustStore(cluster: boolean): TrustStore {
  return {
    describe: 'no trust store',
    key() {
      throw new OtaError(
        'TrustStoreNotConfigured',
        refusal('no trust store holds the keys that verify Firmware', cluster ? '--firmware-trust-secret NAME' : '--firmware-trust-dir DIR'),
      );
    },
  };
}
