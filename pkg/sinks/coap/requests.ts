// Turns a chunk of readings into CoAP requests: one per reading (`payload: reading`) or one per
// sensor path (`batch`, `senml-*`), each split until it fits the largest message allowed.
import type { Reading } from '../../api/reading.js';
import { encodeSenmlCbor, encodeSenmlJson } from '../senml/senml.js';
import { Code, ContentFormat, OptionNumber, encodeDatagram, uintOption, type CoapOption } from './codec.js';
import type { CoapPayloadFormat } from './config.js';
import type { CoapRequest } from './exchange.js';

export interface PlannedRequest {
  readings: Reading[];
  request: CoapRequest;
}

export interface RequestPlan {
  requests: PlannedRequest[];
  /** Readings that can never be sent as configured, with the reason (InvalidPath, MessageTooLarge). */
  unsendable: Array<{ reason: string; message: string; readings: Reading[] }>;
}

const CONTENT_FORMATS: Record<CoapPayloadFormat, number> = {
  reading: ContentFormat.Json,
  batch: ContentFormat.Json,
  'senml-json': ContentFormat.SenmlJson,
  'senml-cbor': ContentFormat.SenmlCbor,
};

export function encodePayload(format: CoapPayloadFormat, readings: Reading[]): Buffer {
  switch (format) {
    case 'reading':
      return Buffer.from(JSON.stringify(readings[0]));
    case 'batch':
      return Buffer.from(JSON.stringify(readings));
    case 'senml-json':
      return encodeSenmlJson(readings);
    case 'senml-cbor':
      return encodeSenmlCbor(readings);
  }
}

export interface PlanOptions {
  method: 'POST' | 'PUT';
  format: CoapPayloadFormat;
  maxMessageSize: number;
  /** Uri-Path segments for a reading; throws an error with `code` when it has none. */
  pathOf(reading: Reading): string[];
}

export function planRequests(readings: readonly Reading[], options: PlanOptions): RequestPlan {
  const plan: RequestPlan = { requests: [], unsendable: [] };
  // Group by path, keeping the order in which paths first appear and the order within each.
  const groups = new Map<string, { path: string[]; readings: Reading[] }>();
  for (const reading of readings) {
    let path: string[];
    try {
      path = options.pathOf(reading);
    } catch (error) {
      const reason = (error as { code?: string }).code ?? 'InvalidPath';
      plan.unsendable.push({ reason, message: (error as Error).message, readings: [reading] });
      continue;
    }
    const key = path.join('/');
    const group = groups.get(key) ?? { path, readings: [] };
    group.readings.push(reading);
    groups.set(key, group);
  }
  const code = options.method === 'PUT' ? Code.Put : Code.Post;
  for (const { path, readings: group } of groups.values()) {
    const headerOptions: CoapOption[] = [
      ...path.map((segment) => ({ number: OptionNumber.UriPath, value: Buffer.from(segment) })),
      uintOption(OptionNumber.ContentFormat, CONTENT_FORMATS[options.format]),
    ];
    // The datagram header, an 8-byte token, the options and the payload marker; the TCP frame header
    // is at most 2 bytes longer than the UDP one, hence the margin.
    const overhead = encodeDatagram({ code, token: Buffer.alloc(8), options: headerOptions, payload: Buffer.alloc(0) }).length + 1 + 2;
    const budget = options.maxMessageSize - overhead;
    const pieces = options.format === 'reading' ? group.map((reading) => [reading]) : [group];
    for (const piece of pieces) split(piece);

    function split(part: Reading[]): void {
      const payload = encodePayload(options.format, part);
      if (payload.length <= budget) {
        plan.requests.push({ readings: part, request: { code, options: headerOptions, payload } });
        return;
      }
      if (part.length === 1) {
        plan.unsendable.push({
          reason: 'MessageTooLarge',
          message: `reading ${part[0].sensor}#${part[0].seq} needs ${payload.length + overhead} bytes, maxMessageSize is ${options.maxMessageSize}`,
          readings: part,
        });
        return;
      }
      // Halving keeps each request near the limit without estimating encoded sizes per reading.
      const middle = Math.ceil(part.length / 2);
      split(part.slice(0, middle));
      split(part.slice(middle));
    }
  }
  return plan;
}
