// Test artifacts: random bytes, their SHA-256, a key pair and the signature, as a Firmware spec wants.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

export interface SignedArtifact {
  body: Buffer;
  sha256: string;
  signature: string;
  publicKeyPem: string;
  publicKey: KeyObject;
  algorithm: 'ecdsa-p256-sha256' | 'ed25519';
}

export function signedArtifact(size: number, algorithm: 'ecdsa-p256-sha256' | 'ed25519' = 'ed25519', body: Buffer = randomBytes(size)): SignedArtifact {
  const pair = algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const signature = sign(algorithm === 'ed25519' ? null : 'sha256', body, pair.privateKey).toString('base64');
  return {
    body,
    sha256: createHash('sha256').update(body).digest('hex'),
    signature,
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKey: pair.publicKey,
    algorithm,
  };
}
