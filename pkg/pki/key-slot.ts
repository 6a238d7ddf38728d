// Where the private key lives: a PEM file, a PKCS#12 container, or a PKCS#11 token. Everything past
// this file sees only a KeySlot and asks it for node:tls options.
import type { KeyObject, X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { createPkcs11SecureContext, PKCS11_ENGINE_ID, redactPkcs11Uri } from './pkcs11.js';

export type KeySlotKind = 'pem' | 'pkcs12' | 'pkcs11';

/**
 * Options for `tls.connect` / mqtt.js. For file and PKCS#12 slots these are plain `cert`/`key`/`ca`.
 * For PKCS#11 the key cannot leave the token, so the slot hands over a ready `secureContext` whose
 * key is the engine's (`privateKeyEngine`/`privateKeyIdentifier` are informational then, PIN-free:
 * node:tls ignores them when `secureContext` is given).
 */
export interface TlsClientOptions {
  cert: string;
  key?: string;
  ca?: string | string[];
  privateKeyEngine?: string;
  privateKeyIdentifier?: string;
  secureContext?: tls.SecureContext;
  minVersion?: tls.SecureVersion;
  ciphers?: string;
}

/** What a sink may add; applied inside the secure context so PKCS#11 slots honour it too. */
export type TlsExtras = Pick<tls.SecureContextOptions, 'ca' | 'minVersion' | 'maxVersion' | 'ciphers'>;

export interface KeySlot {
  readonly kind: KeySlotKind;
  /** Human-readable, secret-free: `pem /etc/x/device.key`, `pkcs11:token=t;object=o`. */
  readonly description: string;
  /** Builds TLS client options. Throws CertificateError (BadPin, KeyMismatch...) for PKCS#11 slots. */
  tlsOptions(extras?: TlsExtras): TlsClientOptions;
}

/** The certificate chain as PEM: leaf first, then the intermediates the server may need. */
export function chainPem(leaf: X509Certificate, intermediates: X509Certificate[]): string {
  return [leaf, ...intermediates].map((cert) => cert.toString()).join('');
}

/** A key held in memory: read from a PEM file or unpacked from a PKCS#12 container. */
export function inMemoryKeySlot(kind: 'pem' | 'pkcs12', description: string, certPem: string, key: KeyObject, caPem: string | undefined): KeySlot {
  // PKCS#8 PEM is what node:tls accepts for every key type (it takes no KeyObject).
  const keyPem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  return {
    kind,
    description,
    tlsOptions(extras = {}) {
      return withExtras({ cert: certPem, key: keyPem, ...(caPem ? { ca: caPem } : {}) }, extras);
    },
  };
}

export function pkcs11KeySlot(uri: string, pin: string | undefined, certPem: string, caPem: string | undefined): KeySlot {
  const keyUri = redactPkcs11Uri(uri);
  return {
    kind: 'pkcs11',
    description: keyUri,
    tlsOptions(extras = {}) {
      const base = withExtras({ cert: certPem, ...(caPem ? { ca: caPem } : {}) }, extras);
      const secureContext = createPkcs11SecureContext(uri, pin, {
        cert: base.cert,
        ...(base.ca ? { ca: base.ca } : {}),
        ...(extras.minVersion ? { minVersion: extras.minVersion } : {}),
        ...(extras.maxVersion ? { maxVersion: extras.maxVersion } : {}),
        ...(extras.ciphers ? { ciphers: extras.ciphers } : {}),
      });
      return { ...base, privateKeyEngine: PKCS11_ENGINE_ID, privateKeyIdentifier: keyUri, secureContext };
    },
  };
}

function withExtras(base: TlsClientOptions, extras: TlsExtras): TlsClientOptions {
  const result: TlsClientOptions = { ...base };
  if (extras.ca !== undefined) result.ca = extras.ca as string | string[];
  if (extras.minVersion) result.minVersion = extras.minVersion;
  if (extras.ciphers) result.ciphers = extras.ciphers;
  return result;
}
