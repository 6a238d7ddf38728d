// The signed statement of a Firmware: what its signer intends to be installed, and how.
//
// A signature over the artifact's bytes alone would let anyone who can write a manifest replay a
// genuine artifact under another install command, target or version. So the signer signs a small
// statement instead, and the agent installs only what the statement says:
//
//   {"artifact":{"sha256":"<64 lowercase hex>","size":<bytes>},
//    "install":["/usr/sbin/flash","{file}"] | null,      spec.install.command (null when absent)
//    "rollback":["/usr/sbin/flash","--restore"] | null,   spec.rollback.command (null when absent)
//    "target":"command" | "agent",
//    "type":"sensorlet.io/firmware-statement/v1",
//    "version":"2.0.0"}
//
// Serialization is canonical, RFC 8785 (JSON Canonicalization Scheme): object keys sorted by code
// unit, no whitespace, strings escaped as ECMAScript's JSON.stringify does, UTF-8. For the values a
// statement holds (strings, non-negative integers, arrays of strings, null) that is JSON.stringify
// of the object with its keys in sorted order. The manifest carries the statement's bytes in base64
// (`spec.artifact.signature.statement`) and the signature over exactly those bytes (`value`):
// Ed25519 (pure, RFC 8032) or ECDSA P-256 with SHA-256 (DER). The agent checks, in this order:
//   1. the bytes are a canonical statement of this type (else StatementInvalid);
//   2. the signature verifies with the trust store's key (else SignatureInvalid);
//   3. every field equals the manifest's (else SignatureScopeMismatch, naming the field);
//   4. after the download, the artifact's size and SHA-256 equal the statement's.
// Steps 1–3 run before anything is downloaded; the install runs only after step 4.
import { createHash, sign as signOneShot, verify as verifyOneShot, type KeyObject } from 'node:crypto';
import type { FirmwareSpec } from '../api/resource.js';
import { OtaError } from './errors.js';

export const STATEMENT_TYPE = 'sensorlet.io/firmware-statement/v1';

export type SignatureAlgorithm = 'ecdsa-p256-sha256' | 'ed25519';

export interface FirmwareStatement {
  artifact: { sha256: string; size: number };
  install: string[] | null;
  rollback: string[] | null;
  target: 'agent' | 'command';
  type: typeof STATEMENT_TYPE;
  version: string;
}

/** The statement a spec stands for (what its signer must have signed). */
export function statementOf(spec: Pick<FirmwareSpec, 'version' | 'target' | 'install' | 'rollback'>, artifact: { sha256: string; size: number }): FirmwareStatement {
  return {
    artifact: { sha256: artifact.sha256.toLowerCase(), size: artifact.size },
    install: spec.install?.command ? [...spec.install.command] : null,
    rollback: spec.rollback?.command ? [...spec.rollback.command] : null,
    target: spec.target,
    type: STATEMENT_TYPE,
    version: spec.version,
  };
}

/** RFC 8785 for the JSON values a statement holds: sorted keys, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error('only integers are canonicalized here');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(',')}}`;
}

export function encodeStatement(statement: FirmwareStatement): Buffer {
  return Buffer.from(canonicalJson(statement), 'utf8');
}

/** Signs a statement; the operator's side (`sensorlet firmware sign`, tests). */
export function signStatement(bytes: Buffer, privateKey: KeyObject): { algorithm: SignatureAlgorithm; value: string } {
  if (privateKey.asymmetricKeyType === 'ed25519') return { algorithm: 'ed25519', value: signOneShot(null, bytes, privateKey).toString('base64') };
  if (privateKey.asymmetricKeyType === 'ec' && privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return { algorithm: 'ecdsa-p256-sha256', value: signOneShot('sha256', bytes, privateKey).toString('base64') };
  }
  throw new Error(`the signing key is ${privateKey.asymmetricKeyType ?? 'unknown'}; use an Ed25519 or EC P-256 private key`);
}

const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Parses statement bytes; throws StatementInvalid unless they are a canonical statement of this type. */
export function parseStatement(bytes: Buffer): FirmwareStatement {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OtaError('StatementInvalid', `spec.artifact.signature.statement is not JSON (${bytes.length} bytes)`);
  }
  const statement = parsed as Partial<FirmwareStatement> | null;
  const keys = statement && typeof statement === 'object' && !Array.isArray(statement) ? Object.keys(statement).sort().join(',') : '';
  const valid =
    keys === 'artifact,install,rollback,target,type,version' &&
    statement!.type === STATEMENT_TYPE &&
    typeof statement!.version === 'string' &&
    (statement!.target === 'agent' || statement!.target === 'command') &&
    (statement!.install === null || isStringArray(statement!.install)) &&
    (statement!.rollback === null || isStringArray(statement!.rollback)) &&
    typeof statement!.artifact === 'object' &&
    statement!.artifact !== null &&
    Object.keys(statement!.artifact).sort().join(',') === 'sha256,size' &&
    typeof statement!.artifact.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(statement!.artifact.sha256) &&
    Number.isSafeInteger(statement!.artifact.size) &&
    statement!.artifact.size >= 0;
  if (!valid) throw new OtaError('StatementInvalid', `spec.artifact.signature.statement is not a ${STATEMENT_TYPE} statement`);
  // One byte sequence per statement: what was signed is what is read (no duplicate keys, no
  // alternative spellings a signing tool might have shown differently).
  if (!encodeStatement(statement as FirmwareStatement).equals(bytes)) {
    throw new OtaError('StatementInvalid', 'spec.artifact.signature.statement is not in canonical form (RFC 8785: sorted keys, no whitespace)');
  }
  return statement as FirmwareStatement;
}

/** Throws SignatureInvalid unless `signature` is the key's signature of `bytes` with `algorithm`. */
export function verifyStatementSignature(bytes: Buffer, signature: { algorithm: SignatureAlgorithm; value: string }, key: KeyObject, keyName: string): void {
  const value = Buffer.from(signature.value, 'base64');
  let valid: boolean;
  if (signature.algorithm === 'ed25519') {
    if (key.asymmetricKeyType !== 'ed25519') throw new OtaError('SignatureInvalid', `trusted key ${keyName} is ${key.asymmetricKeyType}, not ed25519 (spec.artifact.signature.algorithm)`);
    valid = verifyOneShot(null, bytes, key, value);
  } else {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new OtaError('SignatureInvalid', `trusted key ${keyName} is ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}, not an EC P-256 key (spec.artifact.signature.algorithm)`.replace('  ', ' '));
    }
    try {
      valid = verifyOneShot('sha256', bytes, key, value);
    } catch {
      valid = false; // not a DER signature
    }
  }
  if (!valid) throw new OtaError('SignatureInvalid', `the ${signature.algorithm} signature of the statement does not verify with trusted key ${keyName}`);
}

/** The first field where the statement and the spec disagree; undefined when they agree. */
export function scopeMismatch(statement: FirmwareStatement, spec: FirmwareSpec): string | undefined {
  const declared = statementOf(spec, spec.artifact);
  const fields: [string, unknown, unknown][] = [
    ['spec.version', statement.version, declared.version],
    ['spec.target', statement.target, declared.target],
    ['spec.install.command', statement.install, declared.install],
    ['spec.rollback.command', statement.rollback, declared.rollback],
    ['spec.artifact.sha256', statement.artifact.sha256, declared.artifact.sha256],
    ['spec.artifact.size', statement.artifact.size, declared.artifact.size],
  ];
  for (const [field, signed, asked] of fields) {
    if (canonicalJson(signed) !== canonicalJson(asked)) return field;
  }
  return undefined;
}

/**
 * Steps 1–3 above: the statement is canonical, signed by `key`, and says what the spec asks for.
 * Returns the statement; throws StatementInvalid, SignatureInvalid or SignatureScopeMismatch.
 */
export function verifyIntent(spec: FirmwareSpec, key: KeyObject): FirmwareStatement {
  const signature = spec.artifact.signature;
  const bytes = Buffer.from(signature.statement, 'base64');
  const statement = parseStatement(bytes);
  verifyStatementSignature(bytes, signature, key, signature.keyRef.name);
  const field = scopeMismatch(statement, spec);
  if (field) {
    // The values are the manifest's own; the field name is what tells the operator what was replayed.
    throw new OtaError('SignatureScopeMismatch', `${field} differs from what the signed statement covers: the signature does not allow this ${field.split('.').slice(1).join('.')}`);
  }
  return statement;
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
