// Stable codes of OTA failures; they become `lastError.reason` and condition reasons.
import { SensorletError } from '../api/errors.js';

export type OtaErrorCode =
  | 'DownloadFailed'
  | 'SizeMismatch'
  | 'ChecksumMismatch'
  | 'SignatureInvalid'
  | 'PublicKeyUnavailable'
  | 'InstallCommandNotAllowed'
  | 'TrustStoreNotConfigured'
  | 'TrustKeyNotFound'
  | 'KeyRefNotAllowed'
  | 'StatementInvalid'
  | 'SignatureScopeMismatch'
  | 'DrainTimeout'
  | 'InstallFailed'
  | 'InstallInterrupted'
  | 'HealthCheckFailed'
  | 'RollbackFailed'
  | 'SlotInvalid'
  | 'Aborted';

export class OtaError extends SensorletError {
  declare readonly code: OtaErrorCode;
  constructor(code: OtaErrorCode, message: string, options: { cause?: unknown; terminal?: boolean } = {}) {
    super(code, message, { terminal: options.terminal ?? true, cause: options.cause });
    this.name = 'OtaError';
  }
}

export function otaReason(error: unknown, fallback: OtaErrorCode): { reason: string; message: string } {
  if (error instanceof SensorletError) return { reason: error.code, message: error.message };
  return { reason: fallback, message: error instanceof Error ? error.message : String(error) };
}
