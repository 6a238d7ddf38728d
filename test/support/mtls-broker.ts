// A Mosquitto with a mutual-TLS listener for the issue-4 end-to-end tests and the mTLS bench:
// `require_certificate true`, `use_identity_as_username true` (the client certificate's CN is the
// username, and the test PKI makes the CN the tenant), and an ACL letting each tenant write only under
// `sensorlet/<tenant>/#`. A second, plain listener lets an anonymous observer read every topic, so the
// tests assert on everything the broker accepted, from every tenant.
import { writeFileSync, renameSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { Mosquitto } from './mosquitto.js';
import { freePort } from './ports.js';
import { after, before } from 'node:test';
import { standardFixtures, TestPki, type IssuedCertificate } from './pki.js';

export interface MtlsBroker {
  broker: Mosquitto;
  tlsPort: number;
  plainPort: number;
  /** mqtts URL with the host name the test server certificate is for. */
  tlsUrl: string;
  /** The all-topics observer's listener (anonymous, read-only except where `plainWritePrefix` allows). */
  plainUrl: string;
  /** Where the broker's server certificate and key live: replace them, then `broker.restart()`. */
  serverCertFile: string;
  serverKeyFile: string;
}

export interface MtlsBrokerOptions {
  tenants?: string[];
  /** Let anonymous clients of the plain listener write under this prefix (the bench's plain lane). */
  plainWritePrefix?: string;
  /** Let each tenant also read under `sensorlet/<tenant>/#` (command topics); by default tenants only write. */
  tenantsRead?: boolean;
}

export async function startMtlsBroker(pki: TestPki, server: IssuedCertificate, options: MtlsBrokerOptions = {}): Promise<MtlsBroker> {
  const plainPort = await freePort();
  let serverCertFile = '';
  let serverKeyFile = '';
  const broker = await Mosquitto.start({
    config: (tlsPort, dir) => {
      serverCertFile = path.join(dir, 'server.crt');
      serverKeyFile = path.join(dir, 'server.key');
      copyFileSync(server.certFile, serverCertFile);
      copyFileSync(server.keyFile, serverKeyFile);
      const aclFile = path.join(dir, 'acl');
      const acl = [
        // Lines before the first `user` apply to anonymous clients: only the plain listener has them.
        'topic read #',
        ...(options.plainWritePrefix ? [`topic write ${options.plainWritePrefix}/#`] : []),
        ...(options.tenants ?? ['acme', 'globex', 'initech']).map((tenant) => `\nuser ${tenant}\ntopic ${options.tenantsRead ? 'readwrite' : 'write'} sensorlet/${tenant}/#`),
      ];
      writeFileSync(aclFile, acl.join('\n') + '\n');
      return [
        'user root',
        'allow_anonymous true',
        `acl_file ${aclFile}`,
        'max_inflight_messages 0',
        'max_queued_messages 0',
        `listener ${plainPort} 127.0.0.1`,
        `listener ${tlsPort} 127.0.0.1`,
        `cafile ${pki.ca.certFile}`,
        `certfile ${serverCertFile}`,
        `keyfile ${serverKeyFile}`,
        'require_certificate true',
        'use_identity_as_username true',
      ].join('\n');
    },
  });
  return {
    broker,
    tlsPort: broker.port,
    plainPort,
    tlsUrl: `mqtts://localhost:${broker.port}`,
    plainUrl: `mqtt://127.0.0.1:${plainPort}`,
    serverCertFile,
    serverKeyFile,
  };
}

/** Replaces a file the way a certificate manager does: write a temp file beside it, rename over. */
export function replaceFile(target: string, source: string): void {
  const temp = `${target}.tmp-${process.pid}-${Date.now()}`;
  copyFileSync(source, temp);
  renameSync(temp, target);
}

export interface MtlsEnvironment {
  pki: TestPki;
  fixtures: ReturnType<typeof standardFixtures>;
  mtls: MtlsBroker;
}

/**
 * Registers a test file's before/after hooks: a test CA with the standard certificates and a
 * mutual-TLS Mosquitto, handed to `ready` once started, and removed after the file's tests.
 */
export function useMtlsBroker(ready: (env: MtlsEnvironment) => void, options: MtlsBrokerOptions = {}): void {
  let env: MtlsEnvironment | undefined;
  before(async () => {
    const pki = TestPki.create();
    const fixtures = standardFixtures(pki);
    env = { pki, fixtures, mtls: await startMtlsBroker(pki, fixtures.server, options) };
    ready(env);
  });
  after(async () => {
    await env?.mtls.broker.stop();
    env?.pki.remove();
  });
}
