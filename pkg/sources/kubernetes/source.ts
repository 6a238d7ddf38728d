// The cluster source: Sensors, Sinks and Certificates from the Kubernetes API, plus the agent's own
// Node (for `spec.nodeSelector`) and the Secrets Certificates may reference.
//
// Usage (cluster mode only — this module loads @kubernetes/client-node, ~80 MB RSS, on first call):
//
//   const { createKubernetesSource } = await import('../sources/kubernetes/source.js');
//   const source = await createKubernetesSource({ kubeconfigFile, /* or inCluster: true */ namespace, nodeName, logger });
//   await source.start(listener);            // listener.replace(origin, docs) per object, listener.synced()
//   source.nodeLabels();                     // the Node's labels now ({} until the Node is seen)
//   const off = source.onNodeLabels((labels) => ...);       // label set changed: re-match nodeSelectors
//   source.secret('ns', 'name');             // { type, data: { 'tls.crt': Buffer, ... } } or undefined
//   source.onSecretChange(({ namespace, name }) => ...);    // added, changed or deleted: reload the cert
//   await source.resync();                   // SIGHUP / POST /reload: relist everything
//   await source.stop();
//
// Origins: one per object, `k8s:Sensor/<namespace>/<name>`; `replace(origin, [])` when it is deleted.
// Each SourceDocument carries `origin: { file: 'k8s:Sensor/<ns>/<name>' }` and the object reduced to
// apiVersion, kind, metadata (name, namespace, labels, annotations, generation, uid,
// creationTimestamp) and spec. Status is left out on purpose: our own status writes would otherwise
// look like changes; an update that leaves the reduced document equal is not reported.
// Node selection is the consumer's job (match `spec.nodeSelector` against `nodeLabels()`).
//
// Secrets are watched only in the namespaces the operator lists (`secretsNamespaces`, default: the
// agent's own: `namespace`, else the namespace of the kubeconfig context / the pod, else `default`);
// RBAC grants Secrets only there (a Role per namespace), never cluster-wide.
// `synced()` fires once the three kinds, the Node and the Secrets have all been listed.
import { API_GROUP, API_VERSION, KINDS, type Kind } from '../../api/schemas.js';
import { KIND_NAMES } from '../../api/crds.js';
import type { Logger } from '../../observability/logger.js';
import type { ResourceSource, SourceDocument, SourceListener } from '../source.js';
import { connectKubernetes, type ConnectOptions, type KubernetesConnection } from './connection.js';
import { SupervisedInformer, type BackoffOptions } from './informer.js';
import type { KubernetesObject } from '@kubernetes/client-node';

export type { KubernetesConnection } from './connection.js';
export { connectKubernetes } from './connection.js';

export interface KubernetesSourceOptions extends ConnectOptions {
  /** An existing connection (shared with the status writer); else one is made from kubeconfigFile/inCluster. */
  connection?: KubernetesConnection;
  /** Watch Sensors, Sinks and Certificates only in this namespace; default: all namespaces. */
  namespace?: string;
  /** Where Secrets are watched (see above); [] watches none. */
  secretsNamespaces?: readonly string[];
  /** This agent's Node (downward API `spec.nodeName`). */
  nodeName: string;
  logger: Logger;
  /** Full relist period; default 10 minutes; 0 disables. */
  resyncIntervalMs?: number;
  /** Restart backoff of every informer; default 500 ms doubling to 30 s. */
  backoff?: BackoffOptions;
}

export interface SecretData {
  namespace: string;
  name: string;
  /** `kubernetes.io/tls`, `Opaque`... */
  type: string;
  /** Decoded values of `data` (and `stringData` if a server ever returns it). */
  data: Record<string, Buffer>;
  resourceVersion: string | undefined;
}

export interface SecretRef {
  namespace: string;
  name: string;
}

export interface KubernetesSource extends ResourceSource {
  nodeLabels(): Record<string, string>;
  /** The uid of this agent's Node once seen (objects about the node name it as their owner). */
  nodeUid(): string | undefined;
  /** Called with the new labels whenever the Node's label set changes (also when the Node appears or goes). */
  onNodeLabels(callback: (labels: Record<string, string>) => void): () => void;
  secret(namespace: string, name: string): SecretData | undefined;
  /** Called when a watched Secret is added, changed (data or type) or deleted. */
  onSecretChange(callback: (ref: SecretRef) => void): () => void;
  /** The namespaces whose Secrets are visible. */
  readonly secretsNamespaces: readonly string[];
  readonly connection: KubernetesConnection;
}

export const DEFAULT_RESYNC_INTERVAL_MS = 10 * 60_000;

export function originFor(kind: string, namespace: string, name: string): string {
  return `k8s:${kind}/${namespace}/${name}`;
}

/** Reduces an API object to what the store needs; stable key order so equal documents compare equal. */
export function toDeclaredObject(kind: Kind, object: KubernetesObject & { spec?: unknown }): Record<string, unknown> {
  const metadata = object.metadata ?? {};
  const reducedMetadata: Record<string, unknown> = { name: metadata.name, namespace: metadata.namespace ?? 'default' };
  if (metadata.labels && Object.keys(metadata.labels).length > 0) reducedMetadata.labels = metadata.labels;
  if (metadata.annotations && Object.keys(metadata.annotations).length > 0) reducedMetadata.annotations = metadata.annotations;
  if (metadata.generation !== undefined) reducedMetadata.generation = metadata.generation;
  if (metadata.uid) reducedMetadata.uid = metadata.uid;
  if (metadata.creationTimestamp) reducedMetadata.creationTimestamp = String(metadata.creationTimestamp);
  const declared: Record<string, unknown> = { apiVersion: API_VERSION, kind, metadata: reducedMetadata };
  if (object.spec !== undefined) declared.spec = object.spec;
  return declared;
}

export async function createKubernetesSource(options: KubernetesSourceOptions): Promise<KubernetesSource> {
  const connection = options.connection ?? (await connectKubernetes(options));
  const logger = options.logger.child({ component: 'kubernetes-source' });
  const secretsNamespaces = [...new Set(options.secretsNamespaces ?? [options.namespace ?? connection.contextNamespace ?? 'default'])];
  const resyncIntervalMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;

  let listener: SourceListener | undefined;
  let syncedReported = false;
  let resyncTimer: NodeJS.Timeout | undefined;
  /** origin → JSON of the last document delivered, to skip updates that change nothing we pass on. */
  const delivered = new Map<string, string>();
  let labels: Record<string, string> = {};
  let nodeUid: string | undefined;
  const labelCallbacks = new Set<(labels: Record<string, string>) => void>();
  const secrets = new Map<string, SecretData>();
  const secretCallbacks = new Set<(ref: SecretRef) => void>();

  const informers: SupervisedInformer[] = [];
  const reportSyncedWhenAll = () => {
    if (syncedReported || !listener || !informers.every((informer) => informer.synced)) return;
    syncedReported = true;
    logger.info({ namespace: options.namespace ?? '(all)', secretsNamespaces, node: options.nodeName }, 'cluster source synced');
    listener.synced();
  };
  const informer = (
    path: string,
    handlers: { upsert(o: KubernetesObject): void; remove(o: KubernetesObject): void },
    fieldSelector?: string,
    tolerateMissing = false,
  ) => {
    const created = new SupervisedInformer({
      connection,
      path,
      fieldSelector,
      tolerateMissing,
      handlers,
      logger: logger.child({ path }),
      backoff: options.backoff,
      onSynced: reportSyncedWhenAll,
    });
    informers.push(created);
    return created;
  };

  // Sensors, Sinks, Certificates: one origin per object.
  for (const kind of KINDS) {
    const plural = KIND_NAMES[kind].plural;
    const scope = options.namespace ? `/namespaces/${encodeURIComponent(options.namespace)}` : '';
    informer(`/apis/${API_GROUP}/v1alpha1${scope}/${plural}`, {
      upsert(object) {
        const name = object.metadata?.name;
        if (!name) return;
        const namespace = object.metadata?.namespace ?? 'default';
        const origin = originFor(kind, namespace, name);
        const declared = toDeclaredObject(kind, object);
        const text = JSON.stringify(declared);
        if (delivered.get(origin) === text) return;
        delivered.set(origin, text);
        const document: SourceDocument = { origin: { file: origin }, object: declared };
        listener?.replace(origin, [document]);
      },
      remove(object) {
        const name = object.metadata?.name;
        if (!name) return;
        const origin = originFor(kind, object.metadata?.namespace ?? 'default', name);
        if (!delivered.delete(origin)) return;
        listener?.replace(origin, []);
      },
    }, undefined, true);
  }

  // The agent's own Node, by field selector (RBAC: list/watch nodes is needed for this informer).
  const setLabels = (next: Record<string, string>) => {
    if (sameLabels(labels, next)) return;
    labels = { ...next };
    logger.info({ node: options.nodeName, labels }, 'node labels changed');
    for (const callback of labelCallbacks) safely(logger, 'node label callback', () => callback({ ...labels }));
  };
  informer(
    '/api/v1/nodes',
    {
      upsert: (object) => {
        if (object.metadata?.name !== options.nodeName) return;
        nodeUid = object.metadata.uid;
        setLabels(object.metadata.labels ?? {});
      },
      remove: (object) => {
        if (object.metadata?.name !== options.nodeName) return;
        nodeUid = undefined;
        setLabels({});
      },
    },
    `metadata.name=${options.nodeName}`,
  );

  // Secrets, one informer per listed namespace (a namespaced list/watch: what a Role allows).
  for (const secretsNamespace of secretsNamespaces) informer(`/api/v1/namespaces/${encodeURIComponent(secretsNamespace)}/secrets`, {
    upsert(object) {
      const next = toSecretData(object as KubernetesObject & SecretWire);
      if (!next) return;
      const key = `${next.namespace}/${next.name}`;
      const previous = secrets.get(key);
      secrets.set(key, next);
      if (previous && sameSecret(previous, next)) return;
      for (const callback of secretCallbacks) safely(logger, 'secret callback', () => callback({ namespace: next.namespace, name: next.name }));
    },
    remove(object) {
      const namespace = object.metadata?.namespace ?? secretsNamespace;
      const name = object.metadata?.name ?? '';
      if (!secrets.delete(`${namespace}/${name}`)) return;
      for (const callback of secretCallbacks) safely(logger, 'secret callback', () => callback({ namespace, name }));
    },
  });

  const resync = async () => {
    logger.info('full resync');
    await Promise.all(informers.map((each) => each.relist()));
  };

  return {
    connection,
    secretsNamespaces,
    async start(next) {
      listener = next;
      if (resyncIntervalMs > 0) {
        resyncTimer = setInterval(() => void resync().catch((error) => logger.warn({ err: String(error) }, 'resync failed')), resyncIntervalMs);
        resyncTimer.unref();
      }
      // Informers retry on their own; start resolves once each made its first attempt.
      await Promise.all(informers.map((each) => each.start()));
    },
    resync,
    async stop() {
      clearInterval(resyncTimer);
      await Promise.all(informers.map((each) => each.stop()));
      listener = undefined;
    },
    nodeLabels: () => ({ ...labels }),
    nodeUid: () => nodeUid,
    onNodeLabels(callback) {
      labelCallbacks.add(callback);
      return () => labelCallbacks.delete(callback);
    },
    secret: (namespace, name) => secrets.get(`${namespace}/${name}`),
    onSecretChange(callback) {
      secretCallbacks.add(callback);
      return () => secretCallbacks.delete(callback);
    },
  };
}

interface SecretWire {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

function toSecretData(object: KubernetesObject & SecretWire): SecretData | undefined {
  const name = object.metadata?.name;
  const namespace = object.metadata?.namespace;
  if (!name || !namespace) return undefined;
  const data: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries(object.data ?? {})) data[key] = Buffer.from(value, 'base64');
  for (const [key, value] of Object.entries(object.stringData ?? {})) data[key] = Buffer.from(value, 'utf8');
  return { namespace, name, type: object.type ?? 'Opaque', data, resourceVersion: object.metadata?.resourceVersion };
}

function sameSecret(a: SecretData, b: SecretData): boolean {
  const keys = Object.keys(a.data);
  return (
    a.type === b.type &&
    keys.length === Object.keys(b.data).length &&
    keys.every((key) => b.data[key] !== undefined && a.data[key].equals(b.data[key]))
  );
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

function safely(logger: Logger, what: string, callback: () => void): void {
  try {
    callback();
  } catch (error) {
    logger.error({ err: String(error) }, `${what} threw`);
  }
}
