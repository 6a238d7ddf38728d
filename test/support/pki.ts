// A throw-away PKI for tests, made with the OpenSSL CLI in a temp dir: a test CA, another CA that
// nobody trusts, and device/server certificates with chosen SANs, key types and validity windows.
// `openssl ca` is used (not `x509 -req`) because OpenSSL 3.0's x509 cannot set a start date.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export type KeyType = 'ec' | 'rsa';

export interface IssueOptions {
  /** File name stem inside the PKI dir. */
  name: string;
  keyType?: KeyType;
  /** Subject CN. Mosquitto's use_identity_as_username takes the CN, so make it tenant-specific. */
  cn?: string;
  /** SAN entries in OpenSSL syntax: `URI:spiffe://...`, `DNS:localhost`, `IP:127.0.0.1`. Empty: no SAN. */
  sans?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Which CA signs: the trusted test CA (default) or the other one. */
  issuer?: 'ca' | 'other';
  usage?: 'client' | 'server';
  /** Sign this CSR instead of generating a key (PKCS#11: the key stays in the token). */
  csrFile?: string;
}

export interface IssuedCertificate {
  certFile: string;
  /** PKCS#8 PEM; absent when a CSR was signed. */
  keyFile: string;
  /** The same key in its traditional form: SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`). */
  traditionalKeyFile: string;
}

export interface TestCa {
  certFile: string;
  keyFile: string;
}

export function openssl(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  try {
    return execFileSync('openssl', args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr}`);
  }
}

export function spiffeId(tenant: string, device: string): string {
  return `URI:spiffe://test/tenant/${tenant}/device/${device}`;
}

export class TestPki {
  readonly ca: TestCa;
  readonly otherCa: TestCa;
  private serial = 1;

  private constructor(readonly dir: string) {
    this.ca = this.makeCa('ca', 'Sensorlet Test CA');
    this.otherCa = this.makeCa('other-ca', 'Some Other CA');
  }

  static create(): TestPki {
    return new TestPki(mkdtempSync(path.join(tmpdir(), 'sensorlet-pki-')));
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  generateKey(file: string, keyType: KeyType): void {
    const algorithm = keyType === 'ec' ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
    openssl(['genpkey', ...algorithm, '-out', file]);
  }

  issue(options: IssueOptions): IssuedCertificate {
    const keyType = options.keyType ?? 'ec';
    const certFile = this.file(`${options.name}.crt`);
    const keyFile = this.file(`${options.name}.key`);
    const traditionalKeyFile = this.file(`${options.name}.traditional.key`);
    let csrFile = options.csrFile;
    if (!csrFile) {
      this.generateKey(keyFile, keyType);
      openssl([keyType === 'ec' ? 'ec' : 'rsa', '-in', keyFile, '-out', traditionalKeyFile, ...(keyType === 'rsa' ? ['-traditional'] : [])]);
      csrFile = this.file(`${options.name}.csr`);
      openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${options.cn ?? options.name}`, '-out', csrFile]);
    }
    const ca = options.issuer === 'other' ? this.otherCa : this.ca;
    const extFile = this.file(`${options.name}.ext`);
    const usage = options.usage ?? 'client';
    writeFileSync(
      extFile,
      [
        'basicConstraints = critical, CA:FALSE',
        `keyUsage = critical, digitalSignature${keyType === 'rsa' ? ', keyEncipherment' : ''}`,
        `extendedKeyUsage = ${usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
        ...(options.sans?.length ? [`subjectAltName = ${options.sans.join(', ')}`] : []),
      ].join('\n') + '\n',
    );
    const notBefore = options.notBefore ?? new Date(Date.now() - 3600_000);
    const notAfter = options.notAfter ?? new Date(Date.now() + 365 * 86400_000);
    const config = this.caConfig(ca);
    openssl([
      'ca', '-batch', '-config', config, '-notext', '-in', csrFile, '-out', certFile,
      '-subj', `/CN=${options.cn ?? options.name}`,
      '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter), '-extfile', extFile,
    ]);
    return { certFile, keyFile, traditionalKeyFile };
  }

  /** A PKCS#12 with the key, the certificate and the CA; OpenSSL 3 defaults or `-legacy`. */
  pkcs12(issued: IssuedCertificate, options: { name: string; password: string; legacy?: boolean }): string {
    const out = this.file(`${options.name}.p12`);
    openssl([
      'pkcs12', '-export', ...(options.legacy ? ['-legacy'] : []),
      '-in', issued.certFile, '-inkey', issued.keyFile, '-certfile', this.ca.certFile,
      '-out', out, '-passout', `pass:${options.password}`,
    ]);
    return out;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private makeCa(name: string, cn: string): TestCa {
    const certFile = this.file(`${name}.crt`);
    const keyFile = this.file(`${name}.key`);
    this.generateKey(keyFile, 'ec');
    openssl([
      'req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '3650', '-out', certFile,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const db = this.file(`${name}.db`);
    mkdirSync(db, { recursive: true });
    writeFileSync(path.join(db, 'index.txt'), '');
    writeFileSync(path.join(db, 'index.txt.attr'), 'unique_subject = no\n');
    return { certFile, keyFile };
  }

  private caConfig(ca: TestCa): string {
    const db = ca.keyFile.replace(/\.key$/, '.db');
    const config = path.join(db, 'openssl.cnf');
    if (!existsSync(config)) {
      writeFileSync(
        config,
        [
          '[ca]', 'default_ca = test_ca', '[test_ca]',
          `database = ${db}/index.txt`, `new_certs_dir = ${db}`, `certificate = ${ca.certFile}`, `private_key = ${ca.keyFile}`,
          `serial = ${db}/serial`, 'default_md = sha256', 'policy = any', 'unique_subject = no', 'copy_extensions = none',
          '[any]', 'commonName = supplied',
        ].join('\n') + '\n',
      );
    }
    // Serials only need to be unique per CA; a random start keeps reruns in one dir apart.
    writeFileSync(path.join(db, 'serial'), `${(0x1000 + this.serial++ * 7).toString(16).toUpperCase().padStart(4, '0')}\n`);
    return config;
  }
}

/** `openssl ca` wants UTCTime `YYMMDDHHMMSSZ` before 2050 and GeneralizedTime after. */
function asn1Time(date: Date): string {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return date.getUTCFullYear() < 2050 ? iso.slice(2) : iso;
}

/** The fixtures the pki tests and the mTLS integration tests share. */
export function standardFixtures(pki: TestPki) {
  const day = 86400_000;
  const now = Date.now();
  return {
    ecDevice: pki.issue({ name: 'acme-dev1-ec', keyType: 'ec', cn: 'acme', sans: [spiffeId('acme', 'dev1')] }),
    rsaDevice: pki.issue({ name: 'globex-dev2-rsa', keyType: 'rsa', cn: 'globex', sans: [spiffeId('globex', 'dev2')] }),
    expired: pki.issue({ name: 'expired', cn: 'acme', sans: [spiffeId('acme', 'old')], notBefore: new Date(now - 30 * day), notAfter: new Date(now - day) }),
    notYetValid: pki.issue({ name: 'future', cn: 'acme', sans: [spiffeId('acme', 'new')], notBefore: new Date(now + 10 * day), notAfter: new Date(now + 400 * day) }),
    expiringSoon: pki.issue({ name: 'soon', cn: 'acme', sans: [spiffeId('acme', 'soon')], notAfter: new Date(now + 2 * day) }),
    otherCa: pki.issue({ name: 'other-ca-device', cn: 'acme', sans: [spiffeId('acme', 'rogue')], issuer: 'other' }),
    noSan: pki.issue({ name: 'no-san', cn: 'acme' }),
    badTenant: pki.issue({ name: 'bad-tenant', cn: 'Bad_Tenant', sans: [spiffeId('Bad_Tenant', 'dev9')] }),
    server: pki.issue({ name: 'server', usage: 'server', cn: 'localhost', sans: ['DNS:localhost', 'IP:127.0.0.1'] }),
    wrongHostServer: pki.issue({ name: 'server-wrong-host', usage: 'server', cn: 'broker.example', sans: ['DNS:broker.example'] }),
  };
}
