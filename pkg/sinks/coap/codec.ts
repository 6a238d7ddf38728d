// CoAP message encoding for both transports: RFC 7252 datagrams (UDP) and RFC 8323 frames (TCP/TLS).
// Written here rather than taken from coap-packet (a transitive dependency, UDP only) because the
// RFC 8323 framing needs the same option coding with a different header, and the format is small.

export const MessageType = { Confirmable: 0, NonConfirmable: 1, Acknowledgement: 2, Reset: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const OptionNumber = {
  UriHost: 3,
  UriPort: 7,
  UriPath: 11,
  ContentFormat: 12,
  /** Signaling (CSM 7.01) option: the largest message the sender accepts (RFC 8323 section 5.3.1). */
  MaxMessageSize: 2,
  /** Signaling (CSM 7.01) option: block-wise transfer supported. */
  BlockWiseTransfer: 4,
} as const;

/** Codes as class * 32 + detail. */
export const Code = {
  Empty: 0,
  Post: 2,
  Put: 3,
  Csm: (7 << 5) | 1,
  Ping: (7 << 5) | 2,
  Pong: (7 << 5) | 3,
  Release: (7 << 5) | 4,
  Abort: (7 << 5) | 5,
} as const;

export const ContentFormat = { Json: 50, Cbor: 60, SenmlJson: 110, SenmlCbor: 112 } as const;

export interface CoapOption {
  number: number;
  value: Buffer;
}

export interface CoapMessage {
  /** UDP only; TCP has no type and no message ID. */
  type?: MessageType;
  messageId?: number;
  code: number;
  token: Buffer;
  options: CoapOption[];
  payload: Buffer;
}

export function codeClass(code: number): number {
  return code >> 5;
}

/** "2.04", "4.04", "5.03": how RFC 7252 writes response codes. */
export function codeString(code: number): string {
  return `${code >> 5}.${String(code & 0x1f).padStart(2, '0')}`;
}

export function uintOption(number: number, value: number): CoapOption {
  const bytes: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return { number, value: Buffer.from(bytes) };
}

export function readUint(value: Buffer): number {
  let result = 0;
  for (const byte of value) result = result * 256 + byte;
  return result;
}

function extendedNibble(value: number): { nibble: number; extra: Buffer } {
  if (value < 13) return { nibble: value, extra: Buffer.alloc(0) };
  if (value < 269) return { nibble: 13, extra: Buffer.from([value - 13]) };
  const extra = Buffer.alloc(2);
  extra.writeUInt16BE(value - 269);
  return { nibble: 14, extra };
}

/** Options (sorted, delta-coded) and the payload behind its 0xFF marker. */
export function encodeBody(options: readonly CoapOption[], payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  let previous = 0;
  // A stable sort keeps repeated options (Uri-Path segments) in their given order.
  for (const option of [...options].sort((a, b) => a.number - b.number)) {
    const delta = extendedNibble(option.number - previous);
    const length = extendedNibble(option.value.length);
    parts.push(Buffer.from([(delta.nibble << 4) | length.nibble]), delta.extra, length.extra, option.value);
    previous = option.number;
  }
  if (payload.length > 0) parts.push(Buffer.from([0xff]), payload);
  return Buffer.concat(parts);
}

export function decodeBody(buffer: Buffer, start: number): { options: CoapOption[]; payload: Buffer } {
  const options: CoapOption[] = [];
  let offset = start;
  let number = 0;
  while (offset < buffer.length) {
    const first = buffer[offset++];
    if (first === 0xff) {
      if (offset === buffer.length) throw new Error('payload marker with an empty payload');
      return { options, payload: buffer.subarray(offset) };
    }
    const readExtended = (nibble: number): number => {
      if (nibble < 13) return nibble;
      if (nibble === 13) return buffer[offset++] + 13;
      if (nibble === 14) {
        const value = buffer.readUInt16BE(offset) + 269;
        offset += 2;
        return value;
      }
      throw new Error('reserved option nibble 15');
    };
    number += readExtended(first >> 4);
    const length = readExtended(first & 0x0f);
    if (offset + length > buffer.length) throw new Error('option runs past the end of the message');
    options.push({ number, value: buffer.subarray(offset, offset + length) });
    offset += length;
  }
  return { options, payload: Buffer.alloc(0) };
}

export function encodeDatagram(message: CoapMessage): Buffer {
  if (message.token.length > 8) throw new Error('token longer than 8 bytes');
  const header = Buffer.alloc(4);
  header[0] = (1 << 6) | ((message.type ?? MessageType.Confirmable) << 4) | message.token.length;
  header[1] = message.code;
  header.writeUInt16BE(message.messageId ?? 0, 2);
  return Buffer.concat([header, message.token, encodeBody(message.options, message.payload)]);
}

export function decodeDatagram(buffer: Buffer): CoapMessage {
  if (buffer.length < 4) throw new Error('datagram shorter than a CoAP header');
  const version = buffer[0] >> 6;
  if (version !== 1) throw new Error(`CoAP version ${version}`);
  const tokenLength = buffer[0] & 0x0f;
  if (tokenLength > 8 || 4 + tokenLength > buffer.length) throw new Error('bad token length');
  const { options, payload } = decodeBody(buffer, 4 + tokenLength);
  return {
    type: ((buffer[0] >> 4) & 0x03) as MessageType,
    code: buffer[1],
    messageId: buffer.readUInt16BE(2),
    token: buffer.subarray(4, 4 + tokenLength),
    options,
    payload,
  };
}

/** RFC 8323 section 3.2: Len/TKL nibbles, extended length, code, token, options, payload. */
export function encodeFrame(message: Pick<CoapMessage, 'code' | 'token' | 'options' | 'payload'>): Buffer {
  if (message.token.length > 8) throw new Error('token longer than 8 bytes');
  const body = encodeBody(message.options, message.payload);
  let nibble: number;
  let extended: Buffer;
  if (body.length < 13) {
    nibble = body.length;
    extended = Buffer.alloc(0);
  } else if (body.length < 269) {
    nibble = 13;
    extended = Buffer.from([body.length - 13]);
  } else if (body.length < 65805) {
    nibble = 14;
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(body.length - 269);
  } else {
    nibble = 15;
    extended = Buffer.alloc(4);
    extended.writeUInt32BE(body.length - 65805);
  }
  return Buffer.concat([Buffer.from([(nibble << 4) | message.token.length]), extended, Buffer.from([message.code]), message.token, body]);
}

/** Cuts a TCP byte stream into CoAP frames; keeps the incomplete tail for the next chunk. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** @param maxFrameSize frames larger than this are a protocol error (our CSM Max-Message-Size) */
  constructor(private readonly maxFrameSize = 8 * 1024 * 1024) {}

  push(chunk: Buffer): CoapMessage[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: CoapMessage[] = [];
    for (;;) {
      const buffer = this.pending;
      if (buffer.length < 2) break;
      const nibble = buffer[0] >> 4;
      const tokenLength = buffer[0] & 0x0f;
      const extendedBytes = nibble === 13 ? 1 : nibble === 14 ? 2 : nibble === 15 ? 4 : 0;
      if (buffer.length < 1 + extendedBytes) break;
      const bodyLength =
        nibble < 13 ? nibble : nibble === 13 ? buffer[1] + 13 : nibble === 14 ? buffer.readUInt16BE(1) + 269 : buffer.readUInt32BE(1) + 65805;
      const headerLength = 1 + extendedBytes + 1 + tokenLength;
      if (tokenLength > 8) throw new Error('bad token length in frame');
      if (headerLength + bodyLength > this.maxFrameSize) throw new Error(`frame of ${headerLength + bodyLength} bytes exceeds ${this.maxFrameSize}`);
      if (buffer.length < headerLength + bodyLength) break;
      const frame = buffer.subarray(0, headerLength + bodyLength);
      const { options, payload } = decodeBody(frame, headerLength);
      messages.push({ code: frame[1 + extendedBytes], token: frame.subarray(headerLength - tokenLength, headerLength), options, payload });
      this.pending = buffer.subarray(headerLength + bodyLength);
    }
    return messages;
  }
}
