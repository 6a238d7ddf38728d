// `sensorlet cert inspect FILE [--password-env VAR] [--ca FILE]`: what a certificate file says about
// itself. Returns lines to print; the CLI decides where they go and the exit code (`ok`).
import { readFile } from 'node:fs/promises';
import type { CertificateSpec } from '../api/resource.js';
import { assessCertificate, loadCertificate, type LoadedCertificate } from './load.js';
import { CertificateError, problemOf } from './problems.js';
// The operator's own tool: it reads what the operator names, so no manifest policy applies.
import { readMaterial, UNRESTRICTED_ACCESS } from './secrets.js';
import { parseCertificates } from './x509.js';

export interface InspectOptions {
  /** PKCS#12 password (the CLI reads it from --password-env; never from argv). */
  password?: string;
  /** PEM key file to check against the certificate. */
  keyFile?: string;
  caFile?: string;
  identity?: CertificateSpec['identity'];
  renewBefore?: string;
  now?: Date;
}

export interface InspectReport {
  ok: boolean;
  lines: string[];
  report: Pick<LoadedCertificate, 'usable' | 'problems' | 'facts' | 'identity' | 'chain'>;
}

export async function inspectCertificateFile(file: string, options: InspectOptions = {}): Promise<InspectReport> {
  const now = options.now ?? new Date();
  const common = { ...(options.identity ? { identity: options.identity } : {}), ...(options.renewBefore ? { renewBefore: options.renewBefore } : {}) };
  const ca = options.caFile ? { caFile: options.caFile } : {};
  let report: InspectReport['report'];
  try {
    const bytes = await readMaterial(file, 'file', readFile);
    if (looksLikePkcs12(bytes)) {
      // The password goes through an in-memory env, so it is never part of a spec or argv.
      const spec: CertificateSpec = { pkcs12: { path: file, ...(options.password !== undefined ? { passwordFrom: { env: 'PASSWORD' } } : {}), ...ca }, ...common };
      report = await loadCertificate(spec, { now, env: { PASSWORD: options.password }, access: UNRESTRICTED_ACCESS });
    } else if (options.keyFile) {
      report = await loadCertificate({ pem: { certFile: file, keyFile: options.keyFile, ...ca }, ...common }, { now, access: UNRESTRICTED_ACCESS });
    } else {
      // A certificate alone: everything but the key pairing can still be checked.
      const [leaf, ...intermediates] = parseCertificates(bytes, file);
      const anchors = options.caFile ? parseCertificates(await readMaterial(options.caFile, 'CA file', readFile), options.caFile) : [];
      report = assessCertificate({ pem: { certFile: file, keyFile: '', ...ca }, ...common }, { leaf, intermediates, anchors }, now);
    }
  } catch (error) {
    if (!(error instanceof CertificateError)) throw error;
    report = { usable: false, problems: [problemOf(error)] };
  }

  const lines: string[] = [`File:        ${file}`];
  const facts = report.facts;
  if (facts) {
    const sans = [...facts.sans.uris.map((v) => `URI:${v}`), ...facts.sans.dns.map((v) => `DNS:${v}`), ...facts.sans.ips.map((v) => `IP:${v}`)];
    lines.push(
      `Subject:     ${facts.subject}`,
      `Issuer:      ${facts.issuer}`,
      `Serial:      ${facts.serial}`,
      `Not before:  ${facts.notBefore.toISOString()}`,
      `Not after:   ${facts.notAfter.toISOString()}`,
      `SANs:        ${sans.join(', ') || '(none)'}`,
      `SHA-256:     ${facts.fingerprint}`,
      `Tenant:      ${report.identity?.tenant ?? '(none)'}`,
      `Device:      ${report.identity?.device ?? '(none)'}`,
      `Chain:       ${report.chain ? (report.chain.trusted ? `trusted by ${options.caFile}` : `NOT trusted: ${report.chain.reason}`) : 'not checked (no CA file given)'}`,
    );
  }
  const problems = report.problems;
  lines.push(`Status:      ${problems.length === 0 ? 'OK' : problems.map((p) => `${p.code}${p.severity === 'warning' ? ' (warning)' : ''}: ${p.message}`).join('\n             ')}`);
  return { ok: !problems.some((p) => p.severity === 'error'), lines, report };
}

function looksLikePkcs12(bytes: Buffer): boolean {
  // DER SEQUENCE that is not PEM text and not a bare certificate.
  if (bytes[0] !== 0x30) return false;
  try {
    parseCertificates(bytes, 'inspect');
    return false;
  } catch {
    return true;
  }
}

