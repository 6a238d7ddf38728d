// The tenant and device a certificate speaks for, read from its SAN with named groups of a
// linear-time pattern (the pattern comes from the manifest: see pkg/api/pattern.ts).
import type { CertificateSpec } from '../api/resource.js';
import { compilePattern, type UserPattern } from '../api/pattern.js';
import { CertificateError } from './problems.js';
import type { SubjectAltNames } from './x509.js';

export const DEFAULT_URI_PATTERN = '^spiffe://[^/]+/tenant/(?<tenant>[^/]+)/device/(?<device>[^/]+)$';
/** A tenant becomes part of topics, ACL user names and connection keys, so it must be a DNS label. */
export const TENANT_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface CertificateIdentity {
  tenant: string;
  device: string;
  /** The SAN the identity was read from, e.g. `URI:spiffe://test/tenant/acme/device/gw-7`. */
  san: string;
}

/** Throws InvalidIdentity when no SAN matches or the tenant is not a DNS label. */
export function extractIdentity(sans: SubjectAltNames, identitySpec: CertificateSpec['identity']): CertificateIdentity {
  const uriPattern = identitySpec?.uriPattern ?? (identitySpec?.dnsPattern ? undefined : DEFAULT_URI_PATTERN);
  const candidates: Array<{ kind: 'URI' | 'DNS'; pattern: string | undefined; values: string[] }> = [
    { kind: 'URI', pattern: uriPattern, values: sans.uris },
    { kind: 'DNS', pattern: identitySpec?.dnsPattern, values: sans.dns },
  ];
  const tried: string[] = [];
  for (const { kind, pattern, values } of candidates) {
    if (!pattern) continue;
    const regex = compile(pattern, kind === 'URI' ? 'spec.identity.uriPattern' : 'spec.identity.dnsPattern');
    tried.push(`${kind} ${pattern}`);
    for (const value of values) {
      // A SAN longer than the pattern may scan cannot be this device's identity.
      if (value.length > regex.maxInputLength) continue;
      const groups = regex.exec(value);
      if (!groups) continue;
      const tenant = groupOf(regex, groups, 'tenant');
      const device = groupOf(regex, groups, 'device');
      if (!tenant || !device) {
        throw new CertificateError('InvalidIdentity', `${kind}:${value} matches but the pattern does not capture both named groups tenant and device`);
      }
      if (!TENANT_PATTERN.test(tenant)) {
        throw new CertificateError('InvalidIdentity', `tenant ${JSON.stringify(tenant)} from ${kind}:${value} is not a DNS label ([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)`);
      }
      return { tenant, device, san: `${kind}:${value}` };
    }
  }
  const present = [...sans.uris.map((v) => `URI:${v}`), ...sans.dns.map((v) => `DNS:${v}`)];
  throw new CertificateError(
    'InvalidIdentity',
    `no SAN matches ${tried.join(' or ')}; the certificate has ${present.length ? present.join(', ') : 'no URI or DNS SAN'}`,
  );
}

function compile(pattern: string, field: string): UserPattern {
  try {
    return compilePattern(pattern);
  } catch (error) {
    throw new CertificateError('InvalidIdentity', `${field}: ${(error as Error).message}`);
  }
}

function groupOf(regex: UserPattern, groups: readonly (string | undefined)[], name: string): string | undefined {
  const index = regex.groupIndex[name];
  return index === undefined ? undefined : groups[index];
}
