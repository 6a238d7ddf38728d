// Certificate.spec.secretRef in cluster mode: the Secret's data becomes a pem or pkcs12 spec whose
// "files" are read from memory, so key material from the API server never touches the disk.
//   kubernetes.io/tls: tls.crt, tls.key, ca.crt (optional)
//   Opaque:            keystore.p12 (or pkcs12), password (optional), ca.crt (optional)
import type { CertificateSpec } from '../../api/resource.js';
import { SensorletError } from '../../api/errors.js';

export interface SecretMaterial {
  spec: CertificateSpec;
  readFile(file: string): Promise<Buffer>;
  env: Record<string, string>;
}

const PREFIX = 'secret:';

export function materialFromSecret(
  spec: CertificateSpec,
  namespace: string,
  secret: { type: string; data: Record<string, Buffer> } | undefined,
): SecretMaterial {
  const name = spec.secretRef!.name;
  if (!secret) throw new SensorletError('SecretNotFound', `Secret ${namespace}/${name} (spec.secretRef) does not exist or is not readable`);
  const path = (key: string) => `${PREFIX}${namespace}/${name}/${key}`;
  const readFile = async (file: string) => {
    const key = file.slice(file.lastIndexOf('/') + 1);
    const value = secret.data[key];
    if (!value) throw Object.assign(new Error(`Secret ${namespace}/${name} has no key ${key}`), { code: 'ENOENT' });
    return value;
  };
  const ca = secret.data['ca.crt'] ? { caFile: path('ca.crt') } : {};
  const common = { identity: spec.identity, renewBefore: spec.renewBefore };
  if (secret.data['tls.crt'] && secret.data['tls.key']) {
    return { spec: { ...common, pem: { certFile: path('tls.crt'), keyFile: path('tls.key'), ...ca } }, readFile, env: {} };
  }
  const container = secret.data['keystore.p12'] ? 'keystore.p12' : secret.data['pkcs12'] ? 'pkcs12' : undefined;
  if (container) {
    const env: Record<string, string> = secret.data.password ? { SENSORLET_SECRET_PASSWORD: secret.data.password.toString('utf8') } : {};
    const passwordFrom = secret.data.password ? { passwordFrom: { env: 'SENSORLET_SECRET_PASSWORD' } } : {};
    return { spec: { ...common, pkcs12: { path: path(container), ...passwordFrom, ...ca } }, readFile, env };
  }
  throw new SensorletError('InvalidSecret', `Secret ${namespace}/${name} holds neither tls.crt and tls.key nor keystore.p12`);
}
