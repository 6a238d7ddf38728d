// PKCS#11 key slots go through the OpenSSL "pkcs11" engine (Debian: libengine-pkcs11-openssl,
// libp11). Node 20/22/24 links OpenSSL 3 statically, and its compiled-in engines directory is not the
// distribution's, so `privateKeyEngine: 'pkcs11'` alone fails with "dso not found". OpenSSL honours
// OPENSSL_ENGINES at lookup time; with it set, ENGINE_by_id loads the engine once and keeps it in its
// list (passing the .so path instead reloads it per context and fails the second time: "bad engine id").
// libp11 picks its PKCS#11 module from PKCS11_MODULE_PATH when the engine initialises (default:
// p11-kit-proxy, which loads every module registered with p11-kit). Both are process-wide.
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { CertificateError } from './problems.js';

export const PKCS11_ENGINE_ID = 'pkcs11';

const ENGINE_DIR_CANDIDATES = [
  `/usr/lib/${multiarchTriplet()}/engines-3`,
  '/usr/lib64/engines-3',
  '/usr/lib/engines-3',
  '/usr/local/lib/engines-3',
];

function multiarchTriplet(): string {
  const arch = ({ x64: 'x86_64', arm64: 'aarch64', arm: 'arm', ia32: 'i386' } as Record<string, string>)[process.arch] ?? process.arch;
  return arch === 'arm' ? 'arm-linux-gnueabihf' : `${arch}-linux-gnu`;
}

/** Makes the engine findable and selects the module. Idempotent; throws KeySlotUnavailable. */
export function preparePkcs11Engine(modulePath: string | undefined, env: NodeJS.ProcessEnv = process.env): void {
  if (!env.OPENSSL_ENGINES) {
    const dir = ENGINE_DIR_CANDIDATES.find((candidate) => existsSync(path.join(candidate, 'pkcs11.so')));
    if (!dir) {
      throw new CertificateError('KeySlotUnavailable', 'the OpenSSL pkcs11 engine is not installed (apt-get install libengine-pkcs11-openssl) and OPENSSL_ENGINES is not set');
    }
    env.OPENSSL_ENGINES = dir;
  }
  if (modulePath) {
    if (!existsSync(modulePath)) throw new CertificateError('KeySlotUnavailable', `PKCS#11 module ${modulePath} does not exist`);
    const current = env.PKCS11_MODULE_PATH;
    if (current && current !== modulePath && realPathOf(current) !== realPathOf(modulePath)) {
      throw new CertificateError('KeySlotUnavailable', `the agent already uses PKCS#11 module ${current}; one module per process (${modulePath} was asked for)`);
    }
    env.PKCS11_MODULE_PATH = modulePath;
  }
}

function realPathOf(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/** The URI without PIN attributes: what may be shown in status and errors. */
export function redactPkcs11Uri(uri: string): string {
  const isPin = (attribute: string) => /^pin-(value|source)=/i.test(attribute);
  const queryAt = uri.indexOf('?');
  const pathPart = queryAt < 0 ? uri : uri.slice(0, queryAt);
  const query = queryAt < 0 ? '' : uri.slice(queryAt + 1);
  const scheme = 'pkcs11:';
  const pathAttributes = pathPart.slice(scheme.length).split(';').filter((a) => a && !isPin(a));
  const queryAttributes = query.split('&').filter((a) => a && !isPin(a));
  return scheme + pathAttributes.join(';') + (queryAttributes.length ? `?${queryAttributes.join('&')}` : '');
}

/**
 * Builds a SecureContext whose private key is the token's. The PIN reaches libp11 through a
 * `pin-source` file that lives only for this call (0600 in a 0700 directory): with `pin-value`,
 * libp11 prints the whole URI, PIN included, to stderr whenever loading fails.
 */
export function createPkcs11SecureContext(
  uri: string,
  pin: string | undefined,
  options: tls.SecureContextOptions,
): tls.SecureContext {
  const keyUri = withPrivateType(redactPkcs11Uri(uri));
  let pinDir: string | undefined;
  try {
    let identifier = keyUri;
    if (pin !== undefined) {
      pinDir = mkdtempSync(path.join(tmpdir(), 'sensorlet-pin-'));
      const pinFile = path.join(pinDir, 'pin');
      writeFileSync(pinFile, pin, { mode: 0o600 });
      identifier = `${keyUri};pin-source=file:${pinFile}`;
    }
    return tls.createSecureContext({ ...options, privateKeyEngine: PKCS11_ENGINE_ID, privateKeyIdentifier: identifier });
  } catch (error) {
    throw pkcs11Error(error, keyUri);
  } finally {
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
  }
}

function withPrivateType(uri: string): string {
  return /[;:]type=/.test(uri) ? uri : `${uri};type=private`;
}

function pkcs11Error(error: unknown, keyUri: string): CertificateError {
  const code = (error as { code?: string }).code ?? '';
  const stack = ((error as { opensslErrorStack?: string[] }).opensslErrorStack ?? []).join(' ');
  const text = `${code} ${(error as Error).message ?? ''} ${stack}`;
  if (/PIN_INCORRECT|PIN_INVALID|PIN_LEN_RANGE|PIN_LOCKED|PIN_EXPIRED/i.test(text)) {
    const locked = /PIN_LOCKED/i.test(text) ? ' (the token reports the PIN as locked)' : '';
    return new CertificateError('BadPin', `the PIN was refused by the token for ${keyUri}${locked}`);
  }
  if (/KEY_VALUES_MISMATCH/i.test(text)) return new CertificateError('KeyMismatch', `the key ${keyUri} does not match the certificate`);
  if (/OBJECT_NOT_FOUND|failed loading private key|not found/i.test(text)) {
    return new CertificateError('FileNotFound', `no private key at ${keyUri} (token or object not found)`);
  }
  if (/no such engine|dso not found|init failed|could not load/i.test(text)) {
    return new CertificateError('KeySlotUnavailable', `the OpenSSL pkcs11 engine could not be loaded for ${keyUri}`);
  }
  return new CertificateError('KeySlotUnavailable', `the private key ${keyUri} could not be used (${code || 'OpenSSL error'})`);
}
