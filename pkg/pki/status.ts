// The kind-specific facts a Certificate's status.nodes[] entry carries (JSON-ready, secret-free).
import type { LoadedCertificate } from './load.js';

export interface CertificateStatusFacts {
  subject?: string;
  issuer?: string;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  sans?: string[];
  fingerprint?: string;
  tenant?: string;
  device?: string;
  keySlot?: string;
}

export function certificateStatusFacts(loaded: Pick<LoadedCertificate, 'facts' | 'identity' | 'slot'>): CertificateStatusFacts {
  const facts = loaded.facts;
  if (!facts) return {};
  return {
    subject: facts.subject,
    issuer: facts.issuer,
    serial: facts.serial,
    notBefore: facts.notBefore.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    sans: [...facts.sans.uris.map((v) => `URI:${v}`), ...facts.sans.dns.map((v) => `DNS:${v}`), ...facts.sans.ips.map((v) => `IP:${v}`)],
    fingerprint: facts.fingerprint,
    ...(loaded.identity ? { tenant: loaded.identity.tenant, device: loaded.identity.device } : {}),
    ...(loaded.slot ? { keySlot: loaded.slot.description } : {}),
  };
}
