// Turns connection failures into condition reasons a field engineer can act on.

export function classifyConnectionError(error: unknown): { reason: string; message: string } {
  const err = error as { code?: string | number; message?: string };
  const message = err?.message ?? String(error);
  const code = typeof err?.code === 'string' ? err.code : '';
  if (code === 'ECONNREFUSED') return { reason: 'ConnectionRefused', message };
  if (code === 'ETIMEDOUT' || /timeout/i.test(message)) return { reason: 'Timeout', message };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { reason: 'ServerNameMismatch', message };
  if (code === 'CERT_HAS_EXPIRED') return { reason: 'ServerCertificateExpired', message };
  if (code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY') {
    return { reason: 'ServerCertificateUntrusted', message };
  }
  if (/alert|certificate (unknown|required)|bad certificate|unknown ca|handshake/i.test(message)) return { reason: 'TlsHandshakeFailed', message };
  if (/not authori[sz]ed/i.test(message) || err?.code === 5 || err?.code === 135) return { reason: 'NotAuthorized', message };
  if (/bad user ?name or password/i.test(message) || err?.code === 4 || err?.code === 134) return { reason: 'BadCredentials', message };
  if (code === 'ECONNRESET' || code === 'EPIPE') return { reason: 'ConnectionReset', message };
  return { reason: 'ConnectionFailed', message };
}
