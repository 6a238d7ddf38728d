// loadCertificate: reads a Certificate spec's material, checks it, and says what it found.
// It never throws for bad material: every finding is a problem with a stable code, so the reconciler
// can set conditions and keep the previous, working material when a replacement is bad.
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { refusal } from '../policy/policy.js';
import type { CertificateSpec } from '../api/resource.js';
import { parseDuration } from '../api/units.js';
import { extractIdentity, type CertificateIdentity } from './identity.js';
import { chainPem, inMemoryKeySlot, pkcs11KeySlot, type KeySlot, type KeySlotKind, type TlsClientOptions } from './key-slot.js';
import { preparePkcs11Engine, redactPkcs11Uri } from './pkcs11.js';
import { openPkcs12 } from './pkcs12.js';
import { CertificateError, problem, problemOf, type CertificateProblem } from './problems.js';
import { allowedPath, checkSecretEnv, defaultReadFile, readMaterial, readSecret, type ReadFileFn, type SecretAccess, type SecretContext } from './secrets.js';
import { factsOf, parseCertificates, verifyChain, type CertificateFacts, type ChainResult } from './x509.js';

export const DEFAULT_RENEW_BEFORE = '720h';

export interface LoadOptions {
  /** Injected for tests and for the agent's clock. */
  now?: Date;
  /** Where `passwordFrom.env` / `pinFrom.env` look; default process.env. */
  env?: Record<string, string | undefined>;
  readFile?: ReadFileFn;
  /**
   * Which files and environment variables the spec may use (the operator's policy for manifests,
   * `manifestSecretAccess`; UNRESTRICTED_ACCESS for the operator's own tools). Required: whoever loads
   * a Certificate decides whose spec it is.
   */
  access: SecretAccess;
  /** The PKCS#11 modules `pkcs11.module` may name (real paths compared); undefined means any (operator tools). */
  pkcs11Modules?: readonly string[];
}

export interface LoadedCertificate {
  source: KeySlotKind;
  /** False when any problem has severity `error`; `tls` and `slot` are present only when usable. */
  usable: boolean;
  problems: CertificateProblem[];
  facts?: CertificateFacts;
  identity?: CertificateIdentity;
  /** Unset when no caFile was given (nothing to check against). */
  chain?: ChainResult;
  /** When ExpiringSoon starts (notAfter - renewBefore): the reconciler's requeue time. */
  renewAt?: Date;
  slot?: KeySlot;
  /** `slot.tlsOptions()` with no extras, built once so PKCS#11 PIN and key checks ran. */
  tls?: TlsClientOptions;
  /** Files whose change should trigger a reload (watchCertificateFiles uses the same list). */
  files: string[];
}

interface OpenedMaterial {
  leaf: X509Certificate;
  intermediates: X509Certificate[];
  anchors: X509Certificate[];
  caPem?: string;
  /** Present for in-memory keys; PKCS#11 checks the key inside OpenSSL instead. */
  key?: KeyObject;
  makeSlot: () => KeySlot;
}

export function sourceOf(spec: CertificateSpec): KeySlotKind | undefined {
  if (spec.pem) return 'pem';
  if (spec.pkcs12) return 'pkcs12';
  if (spec.pkcs11) return 'pkcs11';
  return undefined;
}

/** The files a spec reads, each with its role in messages (certificate, key, container, CA, password/PIN). */
function certificateFileRoles(spec: CertificateSpec): Array<[file: string | undefined, role: string]> {
  return [
    [spec.pem?.certFile, 'certificate file'],
    [spec.pem?.keyFile, 'key file'],
    [spec.pem?.caFile, 'CA file'],
    [spec.pkcs12?.path, 'PKCS#12 file'],
    [spec.pkcs12?.caFile, 'CA file'],
    [spec.pkcs12?.passwordFrom?.file, 'password file'],
    [spec.pkcs11?.certFile, 'certificate file'],
    [spec.pkcs11?.caFile, 'CA file'],
    [spec.pkcs11?.pinFrom?.file, 'PIN file'],
  ];
}

/** The files a spec reads (certificate, key, container, CA, password/PIN files). */
export function certificateFiles(spec: CertificateSpec): string[] {
  const files = certificateFileRoles(spec).map(([file]) => file);
  return [...new Set(files.filter((file): file is string => typeof file === 'string' && file.length > 0))];
}

/**
 * Refuses, before anything is opened, what the operator's policy does not allow: files outside the
 * allowed folders (and symlinks leading out of them), environment variables not exposed for
 * secrets, PKCS#11 modules not on the allowlist. Returns a readFile that opens the checked real paths.
 */
async function checkPolicy(
  spec: CertificateSpec,
  context: SecretContext,
  pkcs11Modules: readonly string[] | undefined,
): Promise<{ readFile: ReadFileFn; pkcs11Module?: string }> {
  const realPaths = new Map<string, string>();
  for (const [file, role] of certificateFileRoles(spec)) {
    if (file && !realPaths.has(file)) realPaths.set(file, await allowedPath(file, role, context.access));
  }
  for (const [source, what] of [[spec.pkcs12?.passwordFrom, 'password'], [spec.pkcs11?.pinFrom, 'PIN']] as const) {
    if (source?.env !== undefined) checkSecretEnv(source.env, what, context.access);
  }
  const pkcs11Module = spec.pkcs11 ? await checkPkcs11Module(spec.pkcs11.uri, spec.pkcs11.module, pkcs11Modules) : undefined;
  const readFile = context.readFile;
  return { readFile: (file) => readFile(realPaths.get(file) ?? file), pkcs11Module };
}

/** A PKCS#11 module is a shared library the agent loads into itself: only the operator's, by real path. */
async function checkPkcs11Module(uri: string, module: string | undefined, allowed: readonly string[] | undefined): Promise<string | undefined> {
  // RFC 7512 lets a URI name its module too; only the spec's `module` field is honoured, and checked.
  if (/[;?&](module-path|module-name)=/i.test(uri.replace(/^pkcs11:/, ';'))) {
    throw new CertificateError('Pkcs11ModuleNotAllowed', refusal('spec.pkcs11.uri names a module (module-path/module-name); name it in spec.pkcs11.module', '--pkcs11-module'));
  }
  // No module named: PKCS11_MODULE_PATH or p11-kit's registered modules, both set up by the operator.
  if (module === undefined || allowed === undefined) return module;
  // Compared and loaded by real path, so a symlink swapped after the check cannot change the library.
  const real = await realpath(path.resolve(module)).catch(() => undefined);
  const allowedReal = await Promise.all(allowed.map((candidate) => realpath(candidate).catch(() => undefined)));
  if (real === undefined || !allowedReal.includes(real)) {
    throw new CertificateError('Pkcs11ModuleNotAllowed', refusal(`PKCS#11 module ${module} is not one the agent may load (allowed: ${allowed.join(', ') || 'none'})`, '--pkcs11-module'));
  }
  return real;
}

export async function loadCertificate(spec: CertificateSpec, options: LoadOptions): Promise<LoadedCertificate> {
  const now = options.now ?? new Date();
  const context: SecretContext = { env: options.env ?? process.env, readFile: options.readFile ?? defaultReadFile, access: options.access };
  const source = sourceOf(spec);
  const files = certificateFiles(spec);
  if (!source) {
    // secretRef is resolved by the Kubernetes source into a pem/pkcs12 spec before it gets here.
    return fatal('pem', files, new CertificateError('KeySlotUnavailable', 'spec.secretRef is only available in Kubernetes mode'));
  }

  let material: OpenedMaterial;
  try {
    const checked = await checkPolicy(spec, context, options.pkcs11Modules);
    material = await openMaterial(spec, source, { ...context, readFile: checked.readFile }, checked.pkcs11Module);
  } catch (error) {
    if (error instanceof CertificateError) return fatal(source, files, error);
    // Unexpected: still report under a stable code, without echoing anything that might hold secrets.
    return fatal(source, files, new CertificateError('InvalidCertificate', `the certificate material could not be loaded (${(error as Error)?.name ?? 'Error'})`));
  }

  const result: LoadedCertificate = { source, files, ...assessCertificate(spec, material, now) };
  const problems = result.problems;
  if (!problems.some((p) => p.severity === 'error')) {
    // Building the TLS options is the last check: for PKCS#11 it logs in (BadPin) and pairs key and
    // certificate inside OpenSSL (KeyMismatch).
    try {
      const slot = material.makeSlot();
      result.tls = slot.tlsOptions();
      result.slot = slot;
    } catch (error) {
      if (!(error instanceof CertificateError)) throw error;
      problems.push(problemOf(error));
    }
  }
  result.usable = !problems.some((p) => p.severity === 'error');
  return result;
}

/** The first blocking problem as a SensorletError, for callers that want to throw. */
export function certificateError(loaded: LoadedCertificate): CertificateError | undefined {
  const blocking = loaded.problems.find((p) => p.severity === 'error');
  return blocking ? new CertificateError(blocking.code, blocking.message) : undefined;
}

/** Like loadCertificate, but throws the first blocking problem as a CertificateError. */
export async function loadUsableCertificate(spec: CertificateSpec, options: LoadOptions): Promise<LoadedCertificate & { slot: KeySlot; tls: TlsClientOptions }> {
  const loaded = await loadCertificate(spec, options);
  const error = certificateError(loaded);
  if (error) throw error;
  return loaded as LoadedCertificate & { slot: KeySlot; tls: TlsClientOptions };
}

export interface CertificateAssessment {
  usable: boolean;
  problems: CertificateProblem[];
  facts: CertificateFacts;
  identity?: CertificateIdentity;
  chain?: ChainResult;
  renewAt?: Date;
}

/** The checks that need no key slot: key pairing (when the key is in memory), dates, chain, identity. */
export function assessCertificate(
  spec: CertificateSpec,
  material: { leaf: X509Certificate; intermediates: X509Certificate[]; anchors: X509Certificate[]; key?: KeyObject },
  now: Date,
): CertificateAssessment {
  const problems: CertificateProblem[] = [];
  const facts = factsOf(material.leaf);
  const result: CertificateAssessment = { usable: false, problems, facts };

  if (material.key && !material.leaf.checkPrivateKey(material.key)) {
    problems.push(problem('KeyMismatch', `the private key (${keyDescription(spec)}) does not belong to the certificate ${facts.subject}`));
  }

  if (now < facts.notBefore) {
    problems.push(problem('NotYetValid', `the certificate is not valid before ${facts.notBefore.toISOString()}`));
  } else if (now > facts.notAfter) {
    problems.push(problem('Expired', `the certificate expired at ${facts.notAfter.toISOString()}`));
  } else {
    const renewBefore = parseRenewBefore(spec.renewBefore);
    result.renewAt = new Date(facts.notAfter.getTime() - renewBefore);
    if (now >= result.renewAt) {
      problems.push(problem('ExpiringSoon', `the certificate expires at ${facts.notAfter.toISOString()}, within renewBefore ${spec.renewBefore ?? DEFAULT_RENEW_BEFORE}`));
    }
  }

  if (material.anchors.length > 0) {
    result.chain = verifyChain(material.leaf, material.intermediates, material.anchors);
    if (!result.chain.trusted) problems.push(problem('UntrustedChain', `the certificate is not signed by the CA in ${caFileOf(spec)}: ${result.chain.reason}`));
  }

  try {
    result.identity = extractIdentity(facts.sans, spec.identity);
  } catch (error) {
    if (!(error instanceof CertificateError)) throw error;
    problems.push(problemOf(error));
  }
  result.usable = !problems.some((p) => p.severity === 'error');
  return result;
}

function fatal(source: KeySlotKind, files: string[], error: CertificateError): LoadedCertificate {
  return { source, usable: false, problems: [problemOf(error)], files };
}

async function openMaterial(spec: CertificateSpec, source: KeySlotKind, context: SecretContext, pkcs11Module: string | undefined): Promise<OpenedMaterial> {
  const caFile = caFileOf(spec);
  const anchors = caFile ? parseCertificates(await readMaterial(caFile, 'CA file', context.readFile), caFile) : [];
  const caPem = anchors.length ? anchors.map((cert) => cert.toString()).join('') : undefined;

  if (source === 'pem') {
    const pem = spec.pem!;
    const [leaf, ...intermediates] = parseCertificates(await readMaterial(pem.certFile, 'certificate file', context.readFile), pem.certFile);
    const key = parsePrivateKey(await readMaterial(pem.keyFile, 'key file', context.readFile), pem.keyFile);
    return { leaf, intermediates, anchors, caPem, key, makeSlot: () => inMemoryKeySlot('pem', `pem ${pem.keyFile}`, chainPem(leaf, intermediates), key, caPem) };
  }

  if (source === 'pkcs12') {
    const p12 = spec.pkcs12!;
    const bytes = await readMaterial(p12.path, 'PKCS#12 file', context.readFile);
    const password = await readSecret(p12.passwordFrom, 'password', context);
    const { key, certificates } = openPkcs12(bytes, password, p12.path);
    // The container holds the leaf and often its CA; the leaf is the one the key belongs to.
    const leafIndex = Math.max(0, certificates.findIndex((cert) => cert.checkPrivateKey(key)));
    const leaf = certificates[leafIndex];
    const intermediates = certificates.filter((_, index) => index !== leafIndex && !isSelfSigned(certificates[index]));
    return { leaf, intermediates, anchors, caPem, key, makeSlot: () => inMemoryKeySlot('pkcs12', `pkcs12 ${p12.path}`, chainPem(leaf, intermediates), key, caPem) };
  }

  const p11 = spec.pkcs11!;
  const [leaf, ...intermediates] = parseCertificates(await readMaterial(p11.certFile, 'certificate file', context.readFile), p11.certFile);
  const pin = await readSecret(p11.pinFrom, 'PIN', context);
  preparePkcs11Engine(pkcs11Module);
  return { leaf, intermediates, anchors, caPem, makeSlot: () => pkcs11KeySlot(p11.uri, pin, chainPem(leaf, intermediates), caPem) };
}

function parsePrivateKey(bytes: Buffer, file: string): KeyObject {
  try {
    // Node reads PKCS#8, SEC1 ("EC PRIVATE KEY") and PKCS#1 PEM alike.
    return createPrivateKey({ key: bytes, format: bytes.includes('-----BEGIN') ? 'pem' : 'der', ...(bytes.includes('-----BEGIN') ? {} : { type: 'pkcs8' as const }) });
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (/BAD_DECRYPT|passphrase|INTERRUPTED_OR_CANCELLED/i.test(`${code} ${(error as Error).message}`)) {
      throw new CertificateError('BadPassword', `the key file ${file} is encrypted; use an unencrypted key or a PKCS#12 file with passwordFrom`);
    }
    throw new CertificateError('InvalidCertificate', `${file} does not hold a readable private key`);
  }
}

function isSelfSigned(cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(cert) && cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

function caFileOf(spec: CertificateSpec): string | undefined {
  return spec.pem?.caFile ?? spec.pkcs12?.caFile ?? spec.pkcs11?.caFile;
}

function keyDescription(spec: CertificateSpec): string {
  if (spec.pem) return spec.pem.keyFile;
  if (spec.pkcs12) return `in ${spec.pkcs12.path}`;
  return redactPkcs11Uri(spec.pkcs11?.uri ?? '');
}

function parseRenewBefore(value: string | undefined): number {
  try {
    return parseDuration(value ?? DEFAULT_RENEW_BEFORE);
  } catch {
    return parseDuration(DEFAULT_RENEW_BEFORE);
  }
}
