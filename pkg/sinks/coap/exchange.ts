// What both CoAP clients share: the request/response shapes, the retryable error with its reason,
// and token generation.
import { randomBytes } from 'node:crypto';
import type { CoapOption } from './codec.js';

export interface CoapRequest {
  /** Code.Post or Code.Put. */
  code: number;
  options: CoapOption[];
  payload: Buffer;
}

export interface CoapResponse {
  code: number;
  payload: Buffer;
}

/** A failure to get any response; always retryable. `code` is the condition reason. */
export class CoapTransportError extends Error {
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CoapTransportError';
  }
}

/**
 * Tokens are a random per-client prefix plus a counter: unique among outstanding requests (RFC 7252
 * section 5.3.1) and unpredictable to an off-path attacker guessing responses.
 */
export class TokenSource {
  private readonly prefix = randomBytes(4);
  private counter = randomBytes(4).readUInt32BE();

  next(): Buffer {
    this.counter = (this.counter + 1) >>> 0;
    const token = Buffer.alloc(8);
    this.prefix.copy(token, 0);
    token.writeUInt32BE(this.counter, 4);
    return token;
  }
}
