// Maps a TLS connection failure to a stable condition reason for the transports. Server-side
// problems get their own codes so "fix the broker" and "fix our certificate" read differently.
export type TlsFailureCode =
  | 'ServerNameMismatch'
  | 'UntrustedServer'
  | 'ServerCertificateExpired'
  | 'ServerCertificateNotYetValid'
  | 'ClientCertificateRejected'
  | 'TlsHandshakeFailed';

export function classifyTlsError(error: unknown): TlsFailureCode | undefined {
  const code = (error as { code?: string } | null)?.code ?? '';
  const message = String((error as Error | null)?.message ?? '');
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'ServerNameMismatch';
  if (code === 'CERT_HAS_EXPIRED') return 'ServerCertificateExpired';
  if (code === 'CERT_NOT_YET_VALID') return 'ServerCertificateNotYetValid';
  if (/^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED)$/.test(code)) {
    return 'UntrustedServer';
  }
  // The server's alert after it rejected our certificate (TLS 1.3 reports it on the first read).
  if (
    /alert (unknown ca|bad certificate|certificate unknown|certificate required|certificate expired|certificate revoked|unsupported certificate|access denied|decrypt error)|ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR)/i.test(
      `${code} ${message}`,
    )
  ) {
    return 'ClientCertificateRejected';
  }
  if (/^ERR_SSL_|^ERR_TLS_/.test(code)) return 'TlsHandshakeFailed';
  return undefined;
}
