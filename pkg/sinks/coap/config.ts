// The coap sink's settings with defaults applied, and the checks the schema cannot express.
import type { FieldError, SinkSpec } from '../../api/resource.js';
import { parseDuration } from '../../api/units.js';
import type { Reading } from '../../api/reading.js';
import { renderTemplate } from '../template.js';

export type CoapSinkConfig = NonNullable<SinkSpec['coap']>;
export type CoapPayloadFormat = NonNullable<CoapSinkConfig['payload']>;
export type CoapScheme = 'coap' | 'coap+tcp' | 'coaps+tcp';

export interface ResolvedCoapConfig {
  scheme: CoapScheme;
  host: string;
  port: number;
  path: string;
  method: 'POST' | 'PUT';
  payload: CoapPayloadFormat;
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
  maxMessageSize: number;
  pingIntervalMs: number;
}

const DEFAULT_PORTS: Record<CoapScheme, number> = { coap: 5683, 'coap+tcp': 5683, 'coaps+tcp': 5684 };
const TEMPLATE_VARIABLES = new Set(['tenant', 'device', 'sensor']);
/** Characters that would change the request's path or query if they came from a name. */
const FORBIDDEN_IN_VARIABLE = /[/?#\0]/;

export function resolveCoapConfig(config: CoapSinkConfig): ResolvedCoapConfig {
  const url = new URL(config.url);
  const scheme = url.protocol.slice(0, -1) as string;
  if (scheme === 'coaps') {
    throw new Error('coaps:// (CoAP over DTLS) is not supported: no maintained Node.js DTLS library does X.509 client authentication; use coaps+tcp:// (RFC 8323, CoAP over TLS)');
  }
  if (scheme !== 'coap' && scheme !== 'coap+tcp' && scheme !== 'coaps+tcp') throw new Error(`unsupported scheme ${scheme}://`);
  return {
    scheme,
    // URL keeps IPv6 literals in brackets; sockets want them bare.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : DEFAULT_PORTS[scheme],
    path: config.path ?? 'sensorlet/{tenant}/{device}/{sensor}',
    method: config.method ?? 'POST',
    payload: config.payload ?? 'senml-json',
    ackTimeoutMs: parseDuration(config.ackTimeout ?? '2s'),
    ackRandomFactor: config.ackRandomFactor ?? 1.5,
    maxRetransmit: config.maxRetransmit ?? 4,
    maxMessageSize: config.maxMessageSize ?? 1152,
    pingIntervalMs: parseDuration(config.pingInterval ?? '30s'),
  };
}

export function validateCoapConfig(config: CoapSinkConfig, path: string, spec: SinkSpec): FieldError[] {
  const errors: FieldError[] = [];
  try {
    resolveCoapConfig(config);
    // CoAP URIs have no userinfo (RFC 7252 section 6): whatever is there would only be shown around.
    const url = new URL(config.url);
    if (url.username || url.password) errors.push({ path: `${path}.url`, message: 'a CoAP URL has no user information (RFC 7252 section 6): remove the part before @', reason: 'InvalidSpec' });
  } catch (error) {
    errors.push({ path: `${path}.url`, message: (error as Error).message, reason: 'InvalidSpec' });
  }
  const template = config.path ?? '';
  for (const match of template.matchAll(/\{([^}]*)\}/g)) {
    if (!TEMPLATE_VARIABLES.has(match[1])) {
      errors.push({ path: `${path}.path`, message: `unknown variable {${match[1]}}: use {tenant}, {device} or {sensor}`, reason: 'InvalidSpec' });
    }
  }
  if (/[?#\0]/.test(template.replace(/\{[^}]*\}/g, ''))) {
    errors.push({ path: `${path}.path`, message: 'the path may not contain ?, # or NUL', reason: 'InvalidSpec' });
  }
  if (config.url?.startsWith('coaps+tcp:') && !spec.tls) {
    errors.push({ path: `${path}.url`, message: 'coaps+tcp:// needs spec.tls (a Certificate for mutual TLS)', reason: 'InvalidSpec' });
  }
  if (config.url && /^coap(\+tcp)?:/.test(config.url) && spec.tls) {
    errors.push({ path: 'spec.tls', message: `spec.tls has no effect with ${config.url.split(':')[0]}://: use coaps+tcp://`, reason: 'InvalidSpec' });
  }
  return errors;
}

export class PathTemplateError extends Error {
  readonly code = 'InvalidPath';
}

/** The Uri-Path segments for one reading; throws PathTemplateError when a name cannot be used. */
export function expandPath(template: string, reading: Reading, connectionTenant: string | undefined): string[] {
  const variables = {
    // An anonymous connection has no tenant: `default`, as in the mqtt sink's topics. Without it the
    // default path would refuse every reading of a plain coap:// Sink as InvalidPath.
    tenant: reading.tenant ?? connectionTenant ?? 'default',
    device: reading.device,
    sensor: reading.sensor,
  };
  const path = renderTemplate(template, variables, {
    forbidden: FORBIDDEN_IN_VARIABLE,
    requireValue: true,
    refuse: (name, value) =>
      new PathTemplateError(
        !TEMPLATE_VARIABLES.has(name)
          ? `unknown variable {${name}}: use {tenant}, {device} or {sensor}`
          : !value
            ? `{${name}} is empty for ${reading.device}/${reading.sensor}`
            : `{${name}} ${JSON.stringify(value)} contains /, ?, # or NUL`,
      ),
  });
  return path.split('/').filter((segment) => segment.length > 0);
}
