// Cluster mode wiring, loaded only when the agent runs against a Kubernetes API server: it brings
// @kubernetes/client-node (~80 MB of RSS), which standalone mode must never pay for.
import { parseKey } from '../api/resource.js';
import type { Runtime } from '../controller/runtime.js';
import type { Logger } from '../observability/logger.js';
import type { ResourceSource } from '../sources/source.js';
import type { AgentOptions } from './agent.js';
import type { KubernetesConnection } from '../sources/kubernetes/connection.js';
import { secretTrustStore } from '../ota/trust.js';
import type { Authenticator } from '../admin/auth.js';
import { tokenReviewAuthenticator } from '../admin/token-review.js';
import { credentialSecretsOf } from '../controller/reconcilers/sink-credentials.js';
import type { Fleet } from '../fleet/fleet.js';

export interface ClusterMode {
  source: ResourceSource;
  nodeLabels(): Record<string, string>;
  onNodeLabels(callback: (labels: Record<string, string>) => void): void;
  /** With --admin-token-review: admin API clients authenticated by the API server. */
  tokenReview?: Authenticator;
  /** This agent's part of the fleet roll-up. */
  fleet: Fleet;
  close(): Promise<void>;
}

export async function startClusterMode(options: AgentOptions, runtime: Runtime, logger: Logger): Promise<ClusterMode> {
  const { connectKubernetes, createKubernetesSource } = await import('../sources/kubernetes/source.js');
  const { startFleet } = await import('../fleet/fleet.js');
  const { fleetTimings, TEST_TIMINGS_ENV } = await import('../fleet/timings.js');
  const { outcomeOf } = await import('../fleet/rollup.js');
  const connection = await connectKubernetes({ kubeconfigFile: options.kubeconfig, inCluster: options.inCluster });
  const source = await createKubernetesSource({
    connection,
    namespace: options.namespace,
    // Only the namespaces the operator lists (--secret-namespaces); default: the agent's own.
    secretsNamespaces: runtime.policy.certificates.secretNamespaces,
    nodeName: options.nodeName,
    logger,
  });
  // The fleet: this node's state goes into one NodeReport (at most one write per 10 s whatever the
  // node runs) next to a heartbeat Lease; the elected agent rolls the reports up into each
  // resource's status. Reports, heartbeats and the election live in the agent's own namespace.
  const { timings, overridden } = fleetTimings();
  if (overridden) logger.warn({ env: TEST_TIMINGS_ENV, timings }, 'fleet timings overridden for a test or benchmark');
  const fleet = startFleet({
    connection,
    namespace: runtime.policy.firmware.agentNamespace ?? connection.contextNamespace ?? 'default',
    nodeName: options.nodeName,
    nodeUid: () => source.nodeUid(),
    resources: { list: () => runtime.store.list() },
    timings,
    logger: logger.child({ component: 'fleet' }),
  });
  // An entry that goes (the object was deleted, or its nodeSelector stopped matching this node)
  // leaves the report, so the roll-up stops counting this node for it.
  runtime.status.onChange((key, entry) => {
    const { kind, namespace, name } = parseKey(key);
    fleet.report.set({ kind, namespace, name }, entry ? outcomeOf(entry as Parameters<typeof outcomeOf>[0]) : undefined);
  });
  for (const key of runtime.status.keys()) {
    const entry = runtime.status.nodeEntry(key);
    if (entry) fleet.report.set(parseKey(key), outcomeOf(entry as Parameters<typeof outcomeOf>[0]));
  }

  // Certificates may take their material from Secrets; a Secret update rotates like a file change.
  runtime.secrets = { namespaces: source.secretsNamespaces, get: (namespace, name) => source.secret(namespace, name) };
  source.onSecretChange(({ namespace, name }) => {
    for (const certificate of runtime.store.list('Certificate')) {
      if (certificate.namespace === namespace && certificate.object?.spec.secretRef?.name === name) runtime.enqueue(certificate.key);
    }
    // Sinks whose broker credentials come from it reconnect with the new values.
    for (const sink of runtime.store.list('Sink')) {
      if (sink.namespace === namespace && sink.object && credentialSecretsOf(sink.object.spec).includes(name)) runtime.enqueue(sink.key);
    }
  });

  const trust = await startFirmwareTrust(runtime, connection, logger);

  return {
    source,
    nodeLabels: () => source.nodeLabels(),
    onNodeLabels: (callback) => void source.onNodeLabels(callback),
    tokenReview: options.policy?.admin.tokenReview ? tokenReviewAuthenticator(connection) : undefined,
    fleet,
    close: async () => {
      await trust?.stop();
      await fleet.close();
    },
  };
}

/**
 * --firmware-trust-secret: the keys that verify Firmware come from that one Secret in the agent's
 * own namespace (--agent-namespace, else POD_NAMESPACE, else the service account's), never from
 * a namespace a manifest author can write to. Listed before the first Firmware is reconciled.
 */
async function startFirmwareTrust(runtime: Runtime, connection: KubernetesConnection, logger: Logger) {
  const name = runtime.policy.firmware.trustSecret;
  if (!name || !runtime.ota) return undefined;
  const namespace = runtime.policy.firmware.agentNamespace ?? connection.contextNamespace;
  if (!namespace) throw new Error("--firmware-trust-secret needs the agent's namespace: --agent-namespace NS, or POD_NAMESPACE from the downward API");
  const { watchSecret } = await import('../sources/kubernetes/secret-watch.js');
  const secret = watchSecret({ connection, namespace, name, logger: logger.child({ component: 'firmware-trust' }) });
  const callbacks: (() => void)[] = [];
  secret.onChange(() => callbacks.forEach((callback) => callback()));
  runtime.ota.trust = secretTrustStore(namespace, name, () => secret.data());
  runtime.ota.onTrustChange = (callback) => void callbacks.push(callback);
  await secret.start();
  logger.info({ namespace, secret: name }, 'Firmware trust store: Secret');
  return secret;
}
