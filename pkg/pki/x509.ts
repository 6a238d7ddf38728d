// Certificate parsing and chain checks on Node's own X509Certificate: it understands EC and RSA
// alike, which node-forge does not (forge cannot read EC public keys).
import { X509Certificate } from 'node:crypto';
import { CertificateError } from './problems.js';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM bundle (or a single DER certificate), in file order. */
export function parseCertificates(bytes: Buffer, file: string): X509Certificate[] {
  const text = bytes.toString('latin1');
  const blocks = text.match(PEM_BLOCK);
  try {
    if (blocks) return blocks.map((block) => new X509Certificate(block));
    if (text.includes('-----BEGIN')) throw new Error('no CERTIFICATE block');
    return [new X509Certificate(bytes)];
  } catch {
    throw new CertificateError('InvalidCertificate', `${file} does not hold a readable X.509 certificate`);
  }
}

export interface SubjectAltNames {
  uris: string[];
  dns: string[];
  ips: string[];
}

/**
 * Splits Node's `subjectAltName` string ("URI:a, DNS:b, IP Address:c"). Node quotes a value
 * that contains a separator as a JSON string, so quoted values are decoded, not split.
 */
export function subjectAltNames(cert: X509Certificate): SubjectAltNames {
  const sans: SubjectAltNames = { uris: [], dns: [], ips: [] };
  const text = cert.subjectAltName;
  if (!text) return sans;
  const entry = /\s*([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)/gy;
  for (let match = entry.exec(text); match && match[0] !== ''; match = entry.exec(text)) {
    const value = match[2].startsWith('"') ? (JSON.parse(match[2]) as string) : match[2];
    if (match[1] === 'URI') sans.uris.push(value);
    else if (match[1] === 'DNS') sans.dns.push(value);
    else if (match[1] === 'IP Address') sans.ips.push(value);
  }
  return sans;
}

export interface CertificateFacts {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  sans: SubjectAltNames;
  /** SHA-256 over the DER, colon-separated upper-case hex like `openssl x509 -fingerprint -sha256`. */
  fingerprint: string;
}

export function factsOf(cert: X509Certificate): CertificateFacts {
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    sans: subjectAltNames(cert),
    fingerprint: cert.fingerprint256,
  };
}

/** Node prints distinguished names one RDN per line; status and CLI want `CN=a, O=b`. */
function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

export type ChainResult = { trusted: true; depth: number } | { trusted: false; reason: string };

/**
 * Walks from the leaf through the intermediates to one of the anchors, checking each signature.
 * Validity dates of the intermediates are left to the TLS peer; the leaf's are reported separately.
 */
export function verifyChain(leaf: X509Certificate, intermediates: X509Certificate[], anchors: X509Certificate[]): ChainResult {
  const maxDepth = 8;
  let current = leaf;
  const pool = [...intermediates];
  for (let depth = 0; depth < maxDepth; depth++) {
    if (anchors.some((anchor) => issuedBy(current, anchor))) return { trusted: true, depth };
    const nextIndex = pool.findIndex((candidate) => candidate !== current && issuedBy(current, candidate));
    if (nextIndex < 0) {
      return { trusted: false, reason: `issuer "${oneLine(current.issuer)}" is not the CA in the CA file and no intermediate links to it` };
    }
    current = pool.splice(nextIndex, 1)[0];
  }
  return { trusted: false, reason: `no path to the CA within ${maxDepth} certificates` };
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
