// Cluster mode, the real `sensorlet run --kubeconfig` against the in-test API server: a namespace
// presents only the tenants the operator granted it (whether the key comes from a Secret or from files),
// and Secrets are read only in the namespaces given by --secret-namespaces, each by a namespaced
// list/watch (what a Role allows), never cluster-wide.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { TestPki, spiffeId, type IssuedCertificate } from '../support/pki.js';

const NODE = 'node-g';
const GROUP = 'sensorlet.io/v1alpha1';

let fake: FakeApiServer;
let agent: AgentProcess;
let pki: TestPki;
let acme: IssuedCertificate;

function tlsSecret(namespace: string, name: string, issued: IssuedCertificate): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': readFileSync(issued.certFile).toString('base64'),
      'tls.key': readFileSync(issued.keyFile).toString('base64'),
      'ca.crt': readFileSync(pki.ca.certFile).toString('base64'),
    },
  };
}

function certificate(namespace: string, name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: GROUP, kind: 'Certificate', metadata: { name, namespace }, spec };
}

before(async () => {
  pki = TestPki.create();
  acme = pki.issue({ name: 'acme-node-g', cn: 'acme', sans: [spiffeId('acme', NODE)] });
  fake = await FakeApiServer.start();
  fake.setNodeLabels(NODE, {});
  // The same acme key pair, as a Secret in each of three namespaces.
  for (const namespace of ['team-x', 'team-y', 'team-z']) fake.apply(tlsSecret(namespace, `acme-tls-${namespace}`, acme));
  agent = await AgentProcess.start({
    deviceId: NODE,
    extraArgs: [
      '--kubeconfig', fake.writeKubeconfig(), '--node-name', NODE,
      ...policyArgs({ certificateDirs: [pki.dir], tenantGrants: { 'team-y': ['acme'] }, secretNamespaces: ['team-x', 'team-y'] }),
    ],
  });
});

after(async () => {
  const code = await agent?.stop();
  await fake?.close();
  pki?.remove();
  if (agent) rmSync(agent.stateDir, { recursive: true, force: true });
  assert.equal(code, 0, `agent exit code (stderr: ${agent?.stderr.slice(-2000)})`);
});

test("team-y presents its granted tenant from its Secret; team-x cannot present it, neither from a Secret nor from the key files", async () => {
  fake.apply(certificate('team-y', 'y-own', { secretRef: { name: 'acme-tls-team-y' } }));
  fake.apply(certificate('team-x', 'x-secret', { secretRef: { name: 'acme-tls-team-x' } }));
  fake.apply(certificate('team-x', 'x-files', { pem: { certFile: acme.certFile, keyFile: acme.keyFile, caFile: pki.ca.certFile } }));
  fake.apply({
    apiVersion: GROUP,
    kind: 'Sink',
    metadata: { name: 'x-sink', namespace: 'team-x' },
    spec: { selector: {}, mqtt: { url: 'mqtts://localhost:1', protocolVersion: 5, qos: 1, topic: 'sensorlet/{tenant}/{device}/{sensor}' }, tls: { certificateRef: { name: 'x-secret' } } },
  });

  const own = await agent.waitForCondition('Certificate', 'y-own', 'Ready', 'True', 'Loaded', 15_000);
  assert.match(own.message, /tenant=acme/);
  for (const name of ['x-secret', 'x-files']) {
    const ready = await agent.waitForCondition('Certificate', name, 'Ready', 'False', 'TenantNotGranted', 15_000);
    assert.match(ready.message, /--tenant-grant team-x=acme/, `${name}: the message names the flag`);
  }
  await agent.waitForCondition('Sink', 'x-sink', 'Ready', 'False', 'CertificateNotReady', 15_000);
});

test('a Secret in a namespace not in --secret-namespaces is never read: SecretNamespaceNotAllowed, and no request for it', async () => {
  fake.apply(certificate('team-z', 'z-secret', { secretRef: { name: 'acme-tls-team-z' } }));
  const ready = await agent.waitForCondition('Certificate', 'z-secret', 'Ready', 'False', 'SecretNamespaceNotAllowed', 15_000);
  assert.match(ready.message, /--secret-namespaces/);
  const secretRequests = fake.requests.filter((request) => /\/secrets(\?|\/|$)/.test(request.url)).map((request) => request.url.split('?')[0]);
  assert.ok(secretRequests.length > 0, 'Secrets are watched where allowed');
  assert.deepEqual(
    [...new Set(secretRequests)].sort(),
    ['/api/v1/namespaces/team-x/secrets', '/api/v1/namespaces/team-y/secrets'],
    'only the listed namespaces, never /api/v1/secrets',
  );
});
