// Certificate reconciler: loads the material, checks it, reports what it found, and hands a usable
// identity to the Sinks. The files are watched, so a rotation is picked up without a restart; a bad
// replacement keeps the previous identity (and its connections) and says so.
import chokidar, { type FSWatcher } from 'chokidar';
import { loadCertificate, type LoadedCertificate } from '../../pki/load.js';
import { DEFAULT_URI_PATTERN } from '../../pki/identity.js';
import { problem, type CertificateProblemCode } from '../../pki/problems.js';
import { manifestSecretAccess } from '../../pki/secrets.js';
import { certificateStatusFacts } from '../../pki/status.js';
import { refusal, SECRET_ENV_PREFIX, tenantGranted } from '../../policy/policy.js';
import { materialFromSecret } from './secret-material.js';
import type { CertificateSpec, StoredResource } from '../../api/resource.js';
import type { ConditionUpdate } from '../conditions.js';
import type { ReconcileResult } from '../workqueue.js';
import { invalidMessage, type Runtime } from '../runtime.js';

/** Re-check at least this often: expiry moves with the clock, and env-provided passwords can change. */
const RECHECK_MS = 60_000;

function flag(type: string, on: boolean, reason: string, message: string): ConditionUpdate {
  return on ? { type, status: 'True', reason, message } : { type, status: 'False', reason: 'No' + type, message: '' };
}

function conditionsOf(loaded: LoadedCertificate, keptPrevious: boolean): ConditionUpdate[] {
  const problem = (code: string) => loaded.problems.find((item) => item.code === code);
  const blocking = loaded.problems.find((item) => item.severity === 'error');
  const expired = problem('Expired');
  const expiring = problem('ExpiringSoon');
  const identity = problem('InvalidIdentity');
  const ready: ConditionUpdate = blocking
    ? {
        type: 'Ready',
        status: 'False',
        reason: blocking.code,
        message: blocking.message + (keptPrevious ? ' (connections keep using the previous, valid certificate)' : ''),
      }
    : { type: 'Ready', status: 'True', reason: 'Loaded', message: `identity tenant=${loaded.identity?.tenant} device=${loaded.identity?.device}` };
  return [
    ready,
    flag('Expired', !!expired, 'Expired', expired?.message ?? ''),
    flag('ExpiringSoon', !!expiring, 'ExpiringSoon', expiring?.message ?? ''),
    flag('InvalidIdentity', !!identity, 'InvalidIdentity', identity?.message ?? ''),
  ];
}

/** Refusals of the operator's policy: nothing was read, so there is nothing to watch either. */
const POLICY_REFUSALS: readonly CertificateProblemCode[] = ['FileNotAllowed', 'SecretNotAllowed', 'Pkcs11ModuleNotAllowed', 'SecretNamespaceNotAllowed', 'IdentityPatternNotAllowed'];

/**
 * Which part of a SAN names the tenant decides which grant is checked, so it is the operator's
 * choice: a manifest's own pattern could pick a granted name out of another tenant's SAN (its
 * trust domain, a device name) and connect with that tenant's key.
 */
function identityPatternRefusal(runtime: Runtime, spec: CertificateSpec): LoadedCertificate | undefined {
  const custom = spec.identity?.dnsPattern !== undefined || (spec.identity?.uriPattern !== undefined && spec.identity.uriPattern !== DEFAULT_URI_PATTERN);
  if (!custom || runtime.policy.certificates.allowIdentityPatterns) return undefined;
  return refused(
    'IdentityPatternNotAllowed',
    refusal('spec.identity sets its own pattern for reading the tenant and device from the certificate', '--allow-identity-patterns'),
  );
}

function refused(code: CertificateProblemCode, message: string): LoadedCertificate {
  return { source: 'pem', usable: false, files: [], problems: [problem(code, message)] };
}

/**
 * A namespace presents only the tenants the operator granted it: a usable certificate of another
 * tenant is made unusable here, so no Sink ever gets its key slot.
 */
function enforceTenantGrant(runtime: Runtime, loaded: LoadedCertificate, namespace: string): LoadedCertificate {
  const tenant = loaded.identity?.tenant;
  if (!loaded.usable || tenant === undefined || tenantGranted(runtime.policy.certificates, namespace, tenant)) return loaded;
  const message = refusal(`tenant ${tenant} is not granted to namespace ${namespace}`, `--tenant-grant ${namespace}=${tenant}`);
  return { ...loaded, usable: false, slot: undefined, tls: undefined, problems: [problem('TenantNotGranted', message), ...loaded.problems] };
}

/** What status.nodes[] shows of a Certificate: pkg/pki's secret-free facts plus the chain result. */
function factsOf(loaded: LoadedCertificate): Record<string, unknown> {
  if (!loaded.facts) return {};
  return {
    tenant: null,
    device: null,
    ...certificateStatusFacts(loaded),
    chain: loaded.chain ? (loaded.chain.trusted ? 'trusted' : `untrusted: ${loaded.chain.reason}`) : 'not checked (no caFile)',
  };
}

export function createCertificateReconciler(runtime: Runtime) {
  const watchers = new Map<string, { files: string; watcher: FSWatcher }>();

  const watch = (key: string, files: string[]) => {
    const signature = files.join('\n');
    const current = watchers.get(key);
    if (current?.files === signature) return;
    void current?.watcher.close();
    if (files.length === 0) return void watchers.delete(key);
    // Watching the files (not their folder) follows atomic replacements (write temp + rename).
    const watcher = chokidar.watch(files, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 25 } });
    watcher.on('all', () => runtime.enqueue(key));
    watchers.set(key, { files: signature, watcher });
  };

  const forget = (key: string) => {
    void watchers.get(key)?.watcher.close();
    watchers.delete(key);
    runtime.certificates.delete(key);
  };

  const policy = runtime.policy.certificates;
  const load = async (resource: StoredResource<'Certificate'>): Promise<LoadedCertificate> => {
    const spec = resource.object!.spec;
    const patternRefusal = identityPatternRefusal(runtime, spec);
    if (patternRefusal) return patternRefusal;
    if (!spec.secretRef) {
      return loadCertificate(spec, { now: new Date(), access: manifestSecretAccess(policy.directories), pkcs11Modules: policy.pkcs11Modules });
    }
    if (!runtime.secrets) return refused('KeySlotUnavailable', 'spec.secretRef needs cluster mode (--kubeconfig or --in-cluster)');
    if (!runtime.secrets.namespaces.includes(resource.namespace)) {
      return refused(
        'SecretNamespaceNotAllowed',
        refusal(`spec.secretRef: the agent does not read Secrets in namespace ${resource.namespace} (it reads: ${runtime.secrets.namespaces.join(', ') || 'none'})`, '--secret-namespaces'),
      );
    }
    const material = materialFromSecret(spec, resource.namespace, runtime.secrets.get(resource.namespace, spec.secretRef.name));
    // The spec and env here are built from the Secret, in memory: no file is opened.
    return loadCertificate(material.spec, { now: new Date(), readFile: material.readFile, env: material.env, access: { envPrefix: SECRET_ENV_PREFIX } });
  };

  return async function reconcileCertificate(key: string): Promise<ReconcileResult> {
    const resource = runtime.store.get<'Certificate'>(key) as StoredResource<'Certificate'> | undefined;
    if (!resource) {
      forget(key);
      runtime.status.delete(key);
      return {};
    }
    if (resource.errors.length > 0 || !resource.object) {
      forget(key);
      runtime.status.update(key, {
        observedGeneration: resource.generation,
        conditions: [{ type: 'Ready', status: 'False', reason: resource.errors[0]?.reason ?? 'InvalidSpec', message: invalidMessage(resource) }],
      });
      return {};
    }
    const loaded = enforceTenantGrant(runtime, await load(resource), resource.namespace);
    // Secret-backed material is watched by the cluster source, not the file system; refused files are not watched.
    const refusedByPolicy = loaded.problems.some((item) => POLICY_REFUSALS.includes(item.code));
    watch(key, resource.object.spec.secretRef || refusedByPolicy ? [] : loaded.files);
    const previous = runtime.certificates.get(key);
    const keptPrevious = !loaded.usable && previous?.identity !== undefined && previous.generation === resource.generation;
    const unchanged = loaded.usable && previous?.identity?.fingerprint === loaded.facts?.fingerprint && previous?.generation === resource.generation;
    if (unchanged) {
      // Same certificate as before: keep the identity object, so the Sinks do not reconnect.
    } else if (loaded.usable && loaded.identity && loaded.slot) {
      const oldFingerprint = previous?.identity?.fingerprint;
      if (oldFingerprint !== undefined && oldFingerprint !== loaded.facts?.fingerprint) {
        runtime.logger.info(
          { component: 'certificate', certificate: `${resource.namespace}/${resource.name}`, oldFingerprint, newFingerprint: loaded.facts?.fingerprint, notAfter: loaded.facts?.notAfter },
          `certificate ${resource.namespace}/${resource.name} rotated: the Sinks using it reconnect with the new one`,
        );
      }
      runtime.certificates.set(key, {
        key,
        generation: resource.generation,
        labels: resource.labels,
        identity: {
          tenant: loaded.identity.tenant,
          device: loaded.identity.device,
          keySlot: loaded.slot,
          certificate: resource.name,
          fingerprint: loaded.facts?.fingerprint,
        },
      });
    } else if (!keptPrevious) {
      runtime.certificates.set(key, { key, generation: resource.generation, labels: resource.labels });
    }
    runtime.status.update(key, { observedGeneration: resource.generation, conditions: conditionsOf(loaded, keptPrevious), facts: factsOf(loaded) });
    const untilRenew = loaded.renewAt ? loaded.renewAt.getTime() - Date.now() : RECHECK_MS;
    return { requeueAfter: Math.max(1000, Math.min(RECHECK_MS, untilRenew)) };
  };
}
