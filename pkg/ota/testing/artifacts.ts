// Test artifacts and the operator's side of signing: random bytes and their SHA-256, a signing key,
// and the `spec.artifact.signature` block (a signed statement, statement.ts) for a Firmware spec.
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FirmwareSpec } from '../../api/resource.js';
import { encodeStatement, signStatement, statementOf, type SignatureAlgorithm } from '../statement.js';

export interface SigningKey {
  algorithm: SignatureAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicKeyPem: string;
}

export function signingKey(algorithm: SignatureAlgorithm = 'ed25519'): SigningKey {
  const pair = algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { algorithm, privateKey: pair.privateKey, publicKey: pair.publicKey, publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** Places a public key in a trust store folder as `<dir>/<name>.pem`. */
export function trustKey(dir: string, name: string, key: SigningKey): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.pem`);
  writeFileSync(file, key.publicKeyPem);
  return file;
}

export type Intent = Pick<FirmwareSpec, 'version' | 'target' | 'install' | 'rollback'>;
export type SignatureBlock = FirmwareSpec['artifact']['signature'];

export interface SignedArtifact {
  body: Buffer;
  sha256: string;
  size: number;
  key: SigningKey;
  algorithm: SignatureAlgorithm;
  /** The signature block a signer issues for this artifact installed as `intent`. */
  sign(intent: Intent, keyName?: string, key?: SigningKey): SignatureBlock;
}

export function signedArtifact(size: number, algorithm: SignatureAlgorithm = 'ed25519', body: Buffer = randomBytes(size)): SignedArtifact {
  const key = signingKey(algorithm);
  const sha256 = createHash('sha256').update(body).digest('hex');
  return {
    body,
    sha256,
    size: body.length,
    key,
    algorithm,
    sign: (intent, keyName = 'release', signer = key) => signatureFor(intent, { sha256, size: body.length }, signer, keyName),
  };
}

/** The signature block of `intent` for an artifact of this digest and size, signed by `key`. */
export function signatureFor(intent: Intent, artifact: { sha256: string; size: number }, key: SigningKey, keyName = 'release'): SignatureBlock {
  const bytes = encodeStatement(statementOf(intent, artifact));
  const { algorithm, value } = signStatement(bytes, key.privateKey);
  return { keyRef: { name: keyName }, algorithm, statement: bytes.toString('base64'), value };
}

/** `spec` with its signature block signed for exactly what it says (the legitimate path). */
export function signSpec(spec: FirmwareSpec, key: SigningKey, keyName = spec.artifact.signature?.keyRef?.name ?? 'release'): FirmwareSpec {
  return { ...spec, artifact: { ...spec.artifact, signature: signatureFor(spec, spec.artifact, key, keyName) } };
}

/** A signature block as one line of flow YAML for a test manifest. */
export function signatureYaml(block: SignatureBlock): string {
  return `{ keyRef: { name: ${block.keyRef.name} }, algorithm: ${block.algorithm}, statement: "${block.statement}", value: "${block.value}" }`;
}
