// Opens a PKCS#12 container with node-forge. Verified by test for OpenSSL 3 defaults
// (PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC, SHA-256 MAC) and `-legacy` (3DES/RC2, SHA-1 MAC).
// forge cannot parse EC keys or EC certificates; when it fails it keeps the bag's raw ASN.1, which
// we hand to Node's crypto as DER (PKCS#8 PrivateKeyInfo, X.509 Certificate).
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type forge from 'node-forge';
import { lazyRequire } from '../api/lazy-require.js';
import { CertificateError } from './problems.js';

export interface Pkcs12Contents {
  key: KeyObject;
  /** Certificates in container order; which one is the leaf is decided by matching the key. */
  certificates: X509Certificate[];
}

const loadForge = lazyRequire<typeof forge>('node-forge');

export function openPkcs12(bytes: Buffer, password: string | undefined, file: string): Pkcs12Contents {
  const forge = loadForge();
  let container: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')));
    container = forge.pkcs12.pkcs12FromAsn1(asn1, false, password ?? '');
  } catch (error) {
    const text = String((error as Error)?.message ?? error);
    // forge reports a wrong password as a failed MAC, or (containers without a MAC) as a failed
    // decryption / unparsable plaintext. Anything before that point is a malformed file.
    if (/MAC could not be verified|Invalid password|decrypt/i.test(text)) {
      throw new CertificateError('BadPassword', `the password does not open the PKCS#12 file ${file}`);
    }
    throw new CertificateError('InvalidCertificate', `${file} is not a readable PKCS#12 file`);
  }

  const keys: KeyObject[] = [];
  for (const bagType of [forge.pki.oids.pkcs8ShroudedKeyBag, forge.pki.oids.keyBag]) {
    for (const bag of container.getBags({ bagType })[bagType] ?? []) keys.push(keyFromBag(bag, file));
  }
  const certificates: X509Certificate[] = [];
  const certBag = forge.pki.oids.certBag;
  for (const bag of container.getBags({ bagType: certBag })[certBag] ?? []) certificates.push(certificateFromBag(bag, file));

  if (keys.length === 0) throw new CertificateError('InvalidCertificate', `${file} holds no private key`);
  if (certificates.length === 0) throw new CertificateError('InvalidCertificate', `${file} holds no certificate`);
  return { key: keys[0], certificates };
}

function keyFromBag(bag: forge.pkcs12.Bag, file: string): KeyObject {
  try {
    if (bag.key) {
      // RSA: forge parsed it; re-encode as PKCS#8 so both paths meet in Node's crypto.
      const { pki } = loadForge();
      const info = pki.wrapRsaPrivateKey(pki.privateKeyToAsn1(bag.key));
      return createPrivateKey({ key: derOf(info), format: 'der', type: 'pkcs8' });
    }
    if (bag.asn1) return createPrivateKey({ key: derOf(bag.asn1), format: 'der', type: 'pkcs8' });
  } catch {
    // fall through: the message below says what failed without echoing key bytes
  }
  throw new CertificateError('InvalidCertificate', `the private key in ${file} could not be read`);
}

function certificateFromBag(bag: forge.pkcs12.Bag, file: string): X509Certificate {
  try {
    if (bag.cert) return new X509Certificate(derOf(loadForge().pki.certificateToAsn1(bag.cert)));
    if (bag.asn1) return new X509Certificate(derOf(bag.asn1));
  } catch {
    // fall through
  }
  throw new CertificateError('InvalidCertificate', `a certificate in ${file} could not be read`);
}

function derOf(asn1: forge.asn1.Asn1): Buffer {
  return Buffer.from(loadForge().asn1.toDer(asn1).getBytes(), 'binary');
}
