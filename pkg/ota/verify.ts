// Verification of a downloaded artifact against its signed statement (statement.ts), cheapest
// check first: size, then SHA-256 (streamed). The signature itself covers the statement, which was
// checked before the download started and is checked again here by the coordinator.
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { OtaError } from './errors.js';

export interface ArtifactExpectation {
  size: number;
  sha256: string;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Throws OtaError SizeMismatch or ChecksumMismatch; resolves when the file is the signed artifact. */
export async function verifyArtifact(file: string, expected: ArtifactExpectation): Promise<void> {
  const size = statSync(file).size;
  if (size !== expected.size) throw new OtaError('SizeMismatch', `the artifact has ${size} bytes; the signed statement says ${expected.size}`);
  const digest = await sha256File(file);
  if (digest !== expected.sha256.toLowerCase()) {
    throw new OtaError('ChecksumMismatch', `SHA-256 of the artifact is ${digest}; the signed statement says ${expected.sha256.toLowerCase()}`);
  }
}
