// Turns connection failures into condition reasons a field engineer can act on. TLS failures are
// classified by the certificate layer (pkg/pki), everything else here.
import { classifyTlsError } from '../../pki/tls-errors.js';

export function classifyConnectionError(error: unknown): { reason: string; message: string } {
  const err = error as { code?: string | number; message?: string };
  const message = err?.message ?? String(error);
  const tlsReason = classifyTlsError(error);
  if (tlsReason) return { reason: tlsReason, message };
  const code = typeof err?.code === 'string' ? err.code : '';
  if (code === 'ECONNREFUSED') return { reason: 'ConnectionRefused', message };
  if (code === 'ETIMEDOUT' || /timeout/i.test(message)) return { reason: 'Timeout', message };
  if (/not authori[sz]ed/i.test(message) || err?.code === 5 || err?.code === 135) return { reason: 'NotAuthorized', message };
  if (/bad user ?name or password/i.test(message) || err?.code === 4 || err?.code === 134) return { reason: 'BadCredentials', message };
  if (code === 'ECONNRESET' || code === 'EPIPE') return { reason: 'ConnectionReset', message };
  return { reason: 'ConnectionFailed', message };
}
