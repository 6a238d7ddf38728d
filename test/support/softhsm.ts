// A SoftHSM 2 token for tests: initialised in a temp dir, holding an EC P-256 key that was generated
// inside the token, with a certificate for it issued by the test CA.
// SoftHSM reads SOFTHSM2_CONF once, when the PKCS#11 module is first initialised in a process; the
// OpenSSL engine does that on first use. So: one SoftHsm per test process, created before any
// PKCS#11 key slot is used. `create()` sets process.env.SOFTHSM2_CONF for the in-process engine.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openssl, type IssuedCertificate, type IssueOptions, type TestPki } from './pki.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface TokenKey {
  /** `pkcs11:token=…;object=…` without PIN. */
  uri: string;
  certFile: string;
}

export class SoftHsm {
  readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly dir: string,
    readonly tokenLabel: string,
    readonly pin: string,
  ) {
    this.env = { ...process.env, SOFTHSM2_CONF: path.join(dir, 'softhsm2.conf'), PKCS11_MODULE_PATH: SOFTHSM_MODULE };
  }

  static create(options: { tokenLabel?: string; pin?: string; soPin?: string } = {}): SoftHsm {
    if (!existsSync(SOFTHSM_MODULE)) throw new Error(`SoftHSM 2 is not installed (${SOFTHSM_MODULE}): apt-get install softhsm2 opensc libengine-pkcs11-openssl`);
    const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-softhsm-'));
    const tokens = path.join(dir, 'tokens');
    mkdirSync(tokens);
    writeFileSync(path.join(dir, 'softhsm2.conf'), `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const hsm = new SoftHsm(dir, options.tokenLabel ?? 'sensorlet-test', options.pin ?? '246810');
    hsm.run('softhsm2-util', ['--init-token', '--free', '--label', hsm.tokenLabel, '--so-pin', options.soPin ?? '13579', '--pin', hsm.pin]);
    process.env.SOFTHSM2_CONF = hsm.env.SOFTHSM2_CONF;
    return hsm;
  }

  /** Generates an EC P-256 key pair inside the token and has the test CA certify it. */
  issueTokenKey(pki: TestPki, options: { object: string; id?: string } & Omit<IssueOptions, 'name' | 'csrFile' | 'keyType'>): TokenKey & { issued: IssuedCertificate } {
    const id = options.id ?? Buffer.from(options.object).toString('hex').slice(0, 16);
    this.run('pkcs11-tool', [
      '--module', SOFTHSM_MODULE, '--token-label', this.tokenLabel, '--login', '--pin', this.pin,
      '--keypairgen', '--key-type', 'EC:prime256v1', '--label', options.object, '--id', id,
    ]);
    const uri = `pkcs11:token=${this.tokenLabel};object=${options.object}`;
    const csrFile = pki.file(`${options.object}.csr`);
    // The CSR is signed by the token through the system openssl's pkcs11 engine.
    openssl(
      ['req', '-new', '-engine', 'pkcs11', '-keyform', 'engine', '-key', `${uri};type=private;pin-value=${this.pin}`, '-subj', `/CN=${options.cn ?? options.object}`, '-out', csrFile],
      { env: this.env },
    );
    const { object: _object, id: _id, ...issueOptions } = options;
    const issued = pki.issue({ ...issueOptions, name: options.object, csrFile });
    return { uri, certFile: issued.certFile, issued };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private run(command: string, args: string[]): string {
    try {
      return execFileSync(command, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`${command} failed: ${stderr}`);
    }
  }
}
