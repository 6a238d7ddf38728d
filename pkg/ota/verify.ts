// Verification of a downloaded artifact, cheapest check first: size, SHA-256, then the signature.
// The signed message is the artifact's bytes. ecdsa-p256-sha256 is streamed (DER signature);
// ed25519 (pure, RFC 8032) cannot be streamed, so the artifact is read into memory for it.
import { createHash, createPublicKey, createVerify, verify as verifyOneShot, type KeyObject } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { OtaError } from './errors.js';

export interface ArtifactExpectation {
  size: number;
  sha256: string;
  signature?: { algorithm: 'ecdsa-p256-sha256' | 'ed25519'; value: string };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function loadPublicKey(pem: string | Buffer): KeyObject {
  try {
    return createPublicKey(pem);
  } catch (error) {
    throw new OtaError('PublicKeyUnavailable', `the public key is not a PEM public key: ${(error as Error).message}`, { cause: error });
  }
}

/** Throws OtaError SizeMismatch, ChecksumMismatch or SignatureInvalid; resolves when all pass. */
export async function verifyArtifact(file: string, expected: ArtifactExpectation, publicKey: KeyObject | undefined): Promise<void> {
  const size = statSync(file).size;
  if (size !== expected.size) throw new OtaError('SizeMismatch', `the artifact has ${size} bytes; spec.artifact.size is ${expected.size}`);
  const digest = await sha256File(file);
  if (digest !== expected.sha256.toLowerCase()) {
    throw new OtaError('ChecksumMismatch', `SHA-256 of the artifact is ${digest}; spec.artifact.sha256 is ${expected.sha256.toLowerCase()}`);
  }
  if (!expected.signature?.value) throw new OtaError('SignatureInvalid', 'the artifact is unsigned (spec.artifact.signature.value is empty)');
  if (!publicKey) throw new OtaError('SignatureInvalid', 'no public key to verify the signature with');
  const signature = Buffer.from(expected.signature.value, 'base64');
  let valid = false;
  try {
    if (expected.signature.algorithm === 'ed25519') {
      if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error(`the public key is ${publicKey.asymmetricKeyType}, not ed25519`);
      valid = verifyOneShot(null, readFileSync(file), publicKey, signature);
    } else {
      if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new Error(`the public key is ${publicKey.asymmetricKeyType} ${publicKey.asymmetricKeyDetails?.namedCurve ?? ''}, not an EC P-256 key`);
      }
      const verifier = createVerify('sha256');
      for await (const chunk of createReadStream(file)) verifier.update(chunk as Buffer);
      valid = verifier.verify(publicKey, signature);
    }
  } catch (error) {
    throw new OtaError('SignatureInvalid', `signature check failed: ${(error as Error).message}`, { cause: error });
  }
  if (!valid) throw new OtaError('SignatureInvalid', `the ${expected.signature.algorithm} signature does not match the artifact`);
}
