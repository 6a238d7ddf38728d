// The tenant and device a certificate speaks for, read from its SAN with named regex groups.
import { RE2JS } from 're2js';
import type { CertificateSpec } from '../api/resource.js';
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
      const groups = regex(value);
      if (!groups) continue;
      const { tenant, device } = groups;
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

/**
 * The pattern comes from a manifest, so it runs on RE2 (linear time in the input, no backtracking):
 * a pattern like `^(.*)*x$` must not freeze the agent. Returns the named groups of the first match.
 */
function compile(pattern: string, field: string): (value: string) => { tenant?: string; device?: string } | undefined {
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(pattern);
  } catch (error) {
    throw new CertificateError('InvalidIdentity', `${field} is not a valid regular expression: ${(error as Error).message}`);
  }
  const names = regex.namedGroups() as Record<string, number>;
  return (value) => {
    const matcher = regex.matcher(value);
    if (!matcher.find()) return undefined;
    const group = (name: string) => (name in names ? matcher.group(name) ?? undefined : undefined);
    return { tenant: group('tenant'), device: group('device') };
  };
}
