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

export interface ClusterMode {
  source: ResourceSource;
  nodeLabels(): Record<string, string>;
  onNodeLabels(callback: (labels: Record<string, string>) => void): void;
  /** With --admin-token-review: admin API clients authenticated by the API server. */
  tokenReview?: Authenticator;
  close(): Promise<void>;
}

export async function startClusterMode(options: AgentOptions, runtime: Runtime, logger: Logger): Promise<ClusterMode> {
  const { connectKubernetes, createKubernetesSource } = await import('../sources/kubernetes/source.js');
  const { createKubernetesStatusWriter } = await import('../controller/status-writer-kubernetes.js');
  const connection = await connectKubernetes({ kubeconfigFile: options.kubeconfig, inCluster: options.inCluster });
  const source = await createKubernetesSource({
    connection,
    namespace: options.namespace,
    // Only the namespaces the operator lists (--secret-namespaces); default: the agent's own.
    secretsNamespaces: runtime.policy.certificates.secretNamespaces,
    nodeName: options.nodeName,
    logger,
  });
  const writer = await createKubernetesStatusWriter({ connection, nodeName: options.nodeName, logger: logger.child({ component: 'status-writer' }) });

  // Each agent writes only its own status.nodes[] entry; writes never block the data path. An entry
  // that goes while its object stays (the nodeSelector stopped matching this node) is withdrawn on
  // the server too, or a stale Ready=True from this node would remain there for ever.
  runtime.status.onChange((key, entry, conditionFlipped) => {
    const { kind, namespace, name } = parseKey(key);
    if (entry) writer.write({ kind, namespace, name }, entry, conditionFlipped);
    else if (runtime.store.get(key)) writer.withdraw({ kind, namespace, name });
    else writer.forget({ kind, namespace, name });
  });

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
    close: async () => {
      await trust?.stop();
      await writer.close();
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
