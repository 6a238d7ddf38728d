// Every way a Certificate can be unusable (or about to be) has a stable CamelCase code.
// Condition reasons, metric labels and CLI output come from these codes, so never rename one.
import { SensorletError } from '../api/errors.js';

export const CertificateProblemCodes = [
  'FileNotFound',
  'InvalidCertificate',
  'BadPassword',
  'BadPin',
  'KeySlotUnavailable',
  'KeyMismatch',
  'Expired',
  'NotYetValid',
  'ExpiringSoon',
  'UntrustedChain',
  'InvalidIdentity',
  // Outside the operator's policy (pkg/policy): refused before anything is read or loaded.
  'FileNotAllowed',
  'SecretNotAllowed',
  'Pkcs11ModuleNotAllowed',
  'SecretNamespaceNotAllowed',
  'TenantNotGranted',
  'IdentityPatternNotAllowed',
] as const;
export type CertificateProblemCode = (typeof CertificateProblemCodes)[number];

/** `error` makes the certificate unusable; `warning` (only ExpiringSoon) leaves it usable. */
export type ProblemSeverity = 'error' | 'warning';

export interface CertificateProblem {
  code: CertificateProblemCode;
  severity: ProblemSeverity;
  /** Safe to show: names files and fields, never passwords, PINs or key material. */
  message: string;
}

export function problem(code: CertificateProblemCode, message: string): CertificateProblem {
  return { code, severity: code === 'ExpiringSoon' ? 'warning' : 'error', message };
}

/**
 * Thrown while loading when nothing further can be checked (file missing, wrong password...).
 * The loader turns it into a problem; it is a SensorletError so callers that let it escape still
 * hand the workqueue a stable code.
 */
export class CertificateError extends SensorletError {
  declare readonly code: CertificateProblemCode;
  constructor(code: CertificateProblemCode, message: string) {
    // Bad material is fixed by replacing files, which the file watcher notices: retrying is cheap
    // and may succeed once an operator fixes things, so none of these is terminal.
    super(code, message);
    this.name = 'CertificateError';
  }
}

export function problemOf(error: CertificateError): CertificateProblem {
  return problem(error.code, error.message);
}
