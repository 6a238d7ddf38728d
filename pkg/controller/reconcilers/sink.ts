// Sink reconciler: one SinkRunner per Sink, with one connection per tenant identity. Identities
// come from the Certificates the Sink references. A Certificate that has not loaded still gets its
// connection, a waiting one: readings are kept in its outbox (Ready=False) and go out once it loads.
import type { StoredResource } from '../../api/resource.js';
import { CertificateError } from '../../pki/problems.js';
import { allowedPath, manifestSecretAccess } from '../../pki/secrets.js';
import { refusal, tenantGranted } from '../../policy/policy.js';
import { matchesSelector } from '../../router/selector.js';
import { SinkRunner } from '../../sinks/runner.js';
import type { ConnectionIdentity } from '../../sinks/transport.js';
import type { ReconcileResult } from '../workqueue.js';
import { invalidMessage, type Runtime } from '../runtime.js';
import { messageOf, reasonOf } from '../../api/errors.js';
import type { Credentials } from '../../sinks/transport.js';
import { sinkCredentials } from './sink-credentials.js';

const CERTIFICATE_RETRY_MS = 2000;
const CREDENTIAL_RETRY_MS = 5000;

/** The Certificate keys a Sink depends on (by reference or selector). */
export function certificatesOf(runtime: Runtime, sink: StoredResource<'Sink'>): string[] {
  const tls = sink.object?.spec.tls;
  if (!tls) return [];
  if (tls.certificateRef) return [`Certificate/${sink.namespace}/${tls.certificateRef.name}`];
  if (tls.certificateSelector) {
    return runtime.store
      .list('Certificate')
      .filter((certificate) => certificate.namespace === sink.namespace && matchesSelector(tls.certificateSelector, certificate.labels))
      .map((certificate) => certificate.key);
  }
  return [];
}

function identitiesFor(runtime: Runtime, sink: StoredResource<'Sink'>): { identities: ConnectionIdentity[]; waitingFor: string[] } {
  if (!sink.object?.spec.tls) return { identities: [{ device: runtime.device }], waitingFor: [] };
  const identities: ConnectionIdentity[] = [];
  const waitingFor: string[] = [];
  for (const key of certificatesOf(runtime, sink)) {
    const identity = runtime.certificates.get(key)?.identity;
    const name = key.split('/')[2];
    if (identity?.tenant !== undefined && !tenantGranted(runtime.policy.certificates, sink.namespace, identity.tenant)) {
      // The Certificate reconciler never hands out such an identity; this keeps it so if one ever did.
      waitingFor.push(name);
      identities.push({
        device: runtime.device,
        certificate: name,
        waiting: { reason: 'TenantNotGranted', message: refusal(`Certificate ${name}: tenant ${identity.tenant} is not granted to namespace ${sink.namespace}`, `--tenant-grant ${sink.namespace}=${identity.tenant}`) },
      });
      continue;
    }
    if (identity) {
      identities.push(identity);
      continue;
    }
    waitingFor.push(name);
    identities.push({
      device: runtime.device,
      certificate: name,
      waiting: { reason: 'CertificateNotReady', message: `Certificate ${name} has not loaded (see its Ready condition); readings wait in the outbox` },
    });
  }
  return { identities, waitingFor };
}

/** Same connections: the same Certificates (their tenants may change: the lanes are re-dialled). */
function sameIdentities(a: ConnectionIdentity[], b: ConnectionIdentity[]): boolean {
  const describe = (list: ConnectionIdentity[]) => list.map((identity) => (identity.certificate === undefined ? `:${identity.tenant ?? ''}` : identity.certificate)).sort().join(',');
  return describe(a) === describe(b);
}

/** `spec.tls.caFile` is read only from the operator's certificate folders, like Certificate files. */
async function caFileRefusal(runtime: Runtime, sink: StoredResource<'Sink'>): Promise<CertificateError | undefined> {
  const caFile = sink.object?.spec.tls?.caFile;
  if (!caFile) return undefined;
  try {
    await allowedPath(caFile, 'spec.tls.caFile', manifestSecretAccess(runtime.policy.certificates.directories));
    return undefined;
  } catch (error) {
    if (error instanceof CertificateError && error.code === 'FileNotAllowed') return error;
    // A missing CA file is reported by the connection, as before.
    return undefined;
  }
}

export function createSinkReconciler(runtime: Runtime, onFullChange: (sinkKey: string, full: boolean) => void) {
  const stopRunner = async (key: string) => {
    const runner = runtime.sinks.get(key);
    if (!runner) return;
    runtime.sinks.delete(key);
    runtime.router.removeTarget(key);
    await runner.stop();
  };

  return async function reconcileSink(key: string): Promise<ReconcileResult> {
    const resource = runtime.store.get<'Sink'>(key);
    if (!resource) {
      await stopRunner(key);
      runtime.status.delete(key);
      return {};
    }
    if (resource.errors.length > 0 || !resource.object) {
      await stopRunner(key);
      const reason = resource.errors[0]?.reason ?? 'InvalidSpec';
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason, message: invalidMessage(resource) }],
        removeConditions: ['Connected', 'BufferFull', 'StorageFull', 'IndexRebuilt'],
      });
      return {};
    }
    const caRefusal = await caFileRefusal(runtime, resource);
    if (caRefusal) {
      await stopRunner(key);
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason: caRefusal.code, message: caRefusal.message }],
        removeConditions: ['Connected', 'BufferFull'],
      });
      return {};
    }
    let credentials: Credentials;
    try {
      credentials = await sinkCredentials(runtime, resource.namespace, resource.object.spec);
    } catch (error) {
      // Nothing connects with credentials the Sink cannot have: a refusal stays until the spec or
      // the policy changes; a missing value is looked for again (a Secret change also requeues).
      await stopRunner(key);
      const reason = reasonOf(error, 'CredentialNotFound');
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason, message: messageOf(error) }],
        removeConditions: ['Connected', 'BufferFull'],
      });
      return reason === 'CredentialNotFound' || reason === 'SecretNotFound' ? { requeueAfter: CREDENTIAL_RETRY_MS } : {};
    }
    const { identities, waitingFor } = identitiesFor(runtime, resource);
    const running = runtime.sinks.get(key);
    if (running && running.generation === resource.generation && running.sameCredentials(credentials)) {
      if (sameIdentities(running.identities, identities)) {
        // Same Certificates, maybe renewed or loaded at last: reconnect in place, keeping the outbox.
        let tenantsChanged = false;
        for (const identity of identities) {
          const current = running.identities.find((candidate) =>
            identity.certificate !== undefined ? candidate.certificate === identity.certificate : candidate.tenant === identity.tenant,
          );
          if (current && (current.fingerprint !== identity.fingerprint || !!current.waiting !== !!identity.waiting)) {
            tenantsChanged ||= current.tenant !== identity.tenant;
            await running.rotate(identity);
          }
        }
        // New tenants change where readings go: re-evaluate routes and Routed conditions.
        if (tenantsChanged) runtime.router.setTarget(running);
        running.reportConnection();
        return waitingFor.length > 0 ? { requeueAfter: CERTIFICATE_RETRY_MS } : {};
      }
    }
    await stopRunner(key);
    if (identities.length === 0) {
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'CertificateNotReady',
            message: waitingFor.length ? `waiting for Certificate ${waitingFor.join(', ')} to load` : 'spec.tls.certificateSelector selects no Certificate',
          },
        ],
      });
      return { requeueAfter: CERTIFICATE_RETRY_MS };
    }
    const runner = new SinkRunner(resource, identities, { ...runtime.sinkDeps, onFullChange }, credentials);
    runtime.sinks.set(key, runner);
    try {
      await runner.start();
    } catch (error) {
      // Never Ready=True (a status kept from an earlier run included) while it cannot deliver; the
      // workqueue tries again with backoff.
      runtime.sinks.delete(key);
      await runner.stop().catch(() => undefined);
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason: reasonOf(error, 'SinkStartFailed'), message: `the sink could not start: ${messageOf(error)}` }],
      });
      throw error;
    }
    runtime.router.setTarget(runner);
    // Ready follows the connections (a waiting Certificate's lane is down with CertificateNotReady).
    runner.reportConnection();
    return waitingFor.length > 0 ? { requeueAfter: CERTIFICATE_RETRY_MS } : {};
  };
}
