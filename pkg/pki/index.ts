// The certificate layer: what the Certificate reconciler, the MQTT/CoAP transports and the CLI use.
export { loadCertificate, loadUsableCertificate, assessCertificate, certificateError, certificateFiles, sourceOf, DEFAULT_RENEW_BEFORE } from './load.js';
export type { LoadOptions, LoadedCertificate, CertificateAssessment } from './load.js';
export type { KeySlot, KeySlotKind, TlsClientOptions, TlsExtras } from './key-slot.js';
export { extractIdentity, DEFAULT_URI_PATTERN, TENANT_PATTERN } from './identity.js';
export type { CertificateIdentity } from './identity.js';
export { CertificateError, CertificateProblemCodes } from './problems.js';
export type { CertificateProblem, CertificateProblemCode, ProblemSeverity } from './problems.js';
export type { CertificateFacts, SubjectAltNames, ChainResult } from './x509.js';
export { watchCertificateFiles } from './watch.js';
export type { CertificateWatch, WatchOptions } from './watch.js';
export { inspectCertificateFile } from './inspect.js';
export type { InspectOptions, InspectReport } from './inspect.js';
export { certificateStatusFacts } from './status.js';
export { classifyTlsError } from './tls-errors.js';
export { redactPkcs11Uri } from './pkcs11.js';
export { readSecret, manifestSecretAccess, UNRESTRICTED_ACCESS } from './secrets.js';
export type { SecretAccess, SecretContext } from './secrets.js';
