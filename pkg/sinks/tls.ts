// Mutual TLS options for a sink connection: the identity's key slot (PEM, PKCS#12 or a PKCS#11
// token) with the Sink's trust anchor and limits. Server certificates are always verified: there is
// no insecure mode to fall into. Shared by every transport that speaks TLS.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { TransportContext } from './transport.js';

export function sinkTlsOptions(context: TransportContext): ConnectionOptions {
  const spec = context.spec.tls;
  const limits = {
    ...(spec?.caFile ? { ca: readFileSync(spec.caFile, 'utf8') } : {}),
    minVersion: spec?.minVersion ?? 'TLSv1.2',
    ...(spec?.ciphers ? { ciphers: spec.ciphers } : {}),
  } as const;
  return {
    ...limits,
    // The slot applies the limits inside its secure context too (a PKCS#11 context is prebuilt).
    ...context.identity.keySlot?.tlsOptions(limits),
    ...(spec?.serverName ? { servername: spec.serverName } : {}),
    rejectUnauthorized: true,
  };
}
